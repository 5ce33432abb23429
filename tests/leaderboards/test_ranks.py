"""Leaderboard ranks (issue 25): ties share a rank and the next rank skips ("1, 1, 3"), the protocol's
metric direction decides the order, and the mean row is the plain mean over subjects."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from gsbench.io import write_json
from leaderboards.publish import publish


def _results(
    runs: Path,
    protocol: str,
    method: str,
    subject: str,
    metric: str,
    value: float,
    rule: str = "head-over-plate",
    **extra,
) -> None:
    direction = "lower" if metric in ("lse_d", "lmd", "lpips") else "higher"
    write_json(
        runs / "ds" / protocol / method / subject / "results.json",
        {
            "schema": "gsbench.results",
            "schema_version": 1,
            "status": "ok",
            "dataset": {"name": "ds", "hash": "d" * 64, "subjects": ["a", "b"]},
            "protocol": protocol,
            "method": method,
            "subject": subject,
            "method_info": {"oracle": False},
            "compositing": {"rule": rule},
            "metrics": {
                metric: {"value": value, "status": "ok", "reason": "", "direction": direction, "details": {}}
            },
            **extra,
        },
    )


def _means(board) -> dict[str, dict[str, str]]:
    with open(board.csv_path, newline="", encoding="utf-8") as handle:
        return {r["method"]: r for r in csv.DictReader(handle) if r["subject"] == "mean"}


def _ranks(board) -> dict[str, str]:
    return {method: row["rank"] for method, row in _means(board).items()}


def test_tied_means_share_a_rank_and_the_next_rank_skips(tmp_path):
    runs = tmp_path / "runs"
    # mono-front is ranked by PSNR (higher is better); means over subjects a and b:
    # alpha (30 + 32) / 2 = 31, beta (31 + 31) / 2 = 31 (tie), gamma 29, delta 29 (tie), eps 35
    values = {"alpha": (30, 32), "beta": (31, 31), "gamma": (28, 30), "delta": (29, 29), "eps": (35, 35)}
    for method, (a, b) in values.items():
        _results(runs, "mono-front", method, "a", "psnr", a)
        _results(runs, "mono-front", method, "b", "psnr", b)
    (board,) = publish(runs, tmp_path / "out", plot=False)
    assert _ranks(board) == {"eps": "1", "alpha": "2", "beta": "2", "gamma": "4", "delta": "4"}
    means = _means(board)
    assert means["alpha"]["psnr ↑"] == means["beta"]["psnr ↑"] == "31.0000"
    assert means["gamma"]["psnr ↑"] == "29.0000"


def test_cross_id_ranks_by_lse_c_higher_first_with_ties(tmp_path):
    runs = tmp_path / "runs"
    values = {"one": (7.0, 7.0), "two": (6.0, 8.0), "three": (3.0, 3.0)}
    for method, (a, b) in values.items():
        _results(runs, "cross-id", method, "a", "lse_c", a)
        _results(runs, "cross-id", method, "b", "lse_c", b)
    (board,) = publish(runs, tmp_path / "out", plot=False)
    assert _ranks(board) == {"one": "1", "two": "1", "three": "3"}


def test_a_row_whose_rules_include_the_own_compositor_is_never_ranked(tmp_path):
    runs = tmp_path / "runs"
    for subject in ("a", "b"):
        _results(runs, "mono-front", "shared", subject, "psnr", 20.0)
        _results(runs, "mono-front", "mixed", subject, "psnr", 40.0, rule="head-over-plate;own-compositor")
    (board,) = publish(runs, tmp_path / "out", plot=False)
    assert _ranks(board) == {"shared": "1", "mixed": ""}


def test_mean_rows_by_hand(tmp_path):
    """Without a subject list in the results, the subjects are those of the rows; train time and render
    rate are averaged over subjects (1 digit); a failed subject makes the mean incomplete, naming it."""
    runs = tmp_path / "runs"
    for subject, train_s, fps in (("a", 1.0, 10.0), ("b", 2.0, 15.0)):
        timing = {"timing": {"train_seconds": train_s, "render_fps": fps}}
        _results(runs, "mono-front", "good", subject, "psnr", 30.0 if subject == "a" else 31.0, **timing)
    _results(runs, "mono-front", "half", "a", "psnr", 40.0, status="ok")
    _results(runs, "mono-front", "half", "b", "psnr", 40.0, status="failed", error="RuntimeError: boom")
    for path in runs.rglob("results.json"):  # no subject list: the rows' subjects are expected
        data = json.loads(path.read_text())
        del data["dataset"]["subjects"]
        path.write_text(json.dumps(data))
    (board,) = publish(runs, tmp_path / "out", plot=False)
    means = _means(board)
    good = means["good"]
    assert (good["status"], good["rank"], good["rank_by"]) == ("ok", "1", "psnr")
    assert (good["psnr ↑"], good["train_s"], good["render_fps"]) == ("30.5000", "1.5", "12.5")
    assert means["half"]["status"] == "incomplete: 1/2 subjects ok (missing or failed: b)"
    assert means["half"]["rank"] == "" and means["half"]["psnr ↑"] == ""
