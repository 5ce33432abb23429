"""Leaderboard publishing from results files: merging, idempotence, ranking, oracle and reference rows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gsbench.errors import ConfigError
from gsbench.io import write_json
from leaderboards.publish import COLUMNS, load_reference, publish


def write_results(
    runs: Path,
    method: str,
    subject: str,
    psnr: float | None,
    *,
    protocol: str = "mono-front",
    status: str = "ok",
    oracle: bool = False,
    lpips: float | None = None,
) -> Path:
    metrics = {}
    for name, value, direction in (("psnr", psnr, "higher"), ("lpips", lpips, "lower")):
        metrics[name] = {
            "value": value,
            "status": "ok" if value is not None else "missing",
            "reason": "" if value is not None else "weights missing",
            "direction": direction,
            "weight_id": "lpips-alexnet:abc" if name == "lpips" and value is not None else None,
            "details": {},
        }
    path = runs / "ds" / protocol / method / subject / "results.json"
    write_json(
        path,
        {
            "schema": "gsbench.results",
            "schema_version": 1,
            "status": status,
            "error": None if status == "ok" else "RuntimeError: boom",
            "dataset": {"name": "ds", "hash": "d" * 64, "subjects": ["a", "b"]},
            "protocol": protocol,
            "method": method,
            "subject": subject,
            "budget": "smoke",
            "seed": 0,
            "method_info": {"oracle": oracle, "audio_encoder": "mfcc50"},
            "config_hash": "c" * 64,
            "compositing": {"rule": "alpha * head_rgb + (1 - alpha) * gt * (1 - mask)"},
            "metrics": metrics,
            "weights": {"lpips": "lpips-alexnet:abc"} if lpips is not None else {},
            "timing": {"train_seconds": 1.0, "render_fps": 10.0},
            "num_gaussians": None,
            "device": "cpu",
            "gsbench_version": "0.1.0",
            "git_commit": "abc",
        },
    )
    return path


def read_rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        return {(r["method"], r["subject"]): r for r in reader}


def test_rank_direction_oracle_and_means(tmp_path):
    runs = tmp_path / "runs"
    for subject, (good, bad) in {"a": (30.0, 20.0), "b": (32.0, 22.0)}.items():
        write_results(runs, "good", subject, good, lpips=0.1)
        write_results(runs, "bad", subject, bad, lpips=0.2)
        write_results(runs, "cheat", subject, 50.0, oracle=True)
    write_results(runs, "half", "a", 40.0)  # subject b missing: no complete mean, never ranked
    (board,) = publish(runs, tmp_path / "out", plot=False)
    rows = read_rows(board.csv_path)
    assert rows[("good", "mean")]["psnr ↑"] == "31.0000" and rows[("good", "mean")]["rank"] == "1"
    assert rows[("bad", "mean")]["rank"] == "2"
    assert rows[("cheat", "mean")]["oracle"] == "yes" and rows[("cheat", "mean")]["rank"] == ""
    assert (
        rows[("half", "mean")]["status"].startswith("incomplete: 1/2")
        and rows[("half", "mean")]["rank"] == ""
    )
    assert rows[("good", "a")]["weight_ids"] == "lpips=lpips-alexnet:abc"
    assert "lpips ↓" in COLUMNS and "psnr ↑" in COLUMNS
    markdown = board.markdown_path.read_text()
    assert "cheat (oracle)" in markdown and "Paper-reported reference" in markdown
    assert "Weights: lpips: `lpips-alexnet`." in markdown


def test_markdown_names_a_syncnet_trained_here(tmp_path):
    from leaderboards.publish import _weights_line

    rows = [{"weight_ids": "lse_c=syncnet-gsbench-76c3e1d7:76c3;lse_d=syncnet-gsbench-76c3e1d7:76c3"}, {}]
    line = _weights_line(rows)
    assert line.startswith("Weights: lse_c, lse_d: `syncnet-gsbench-76c3e1d7` (our SyncNet")
    assert "not the official syncnet_v2" in line


def test_publish_twice_is_identical_and_merging_keeps_rows(tmp_path):
    runs_a, runs_b, out = tmp_path / "a", tmp_path / "b", tmp_path / "out"
    write_results(runs_a, "m1", "a", 30.0)
    write_results(runs_a, "m1", "b", 31.0)
    publish(runs_a, out)
    csv_path = out / "ds" / "mono-front.csv"
    first = csv_path.read_bytes()
    assert (out / "ds" / "mono-front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    publish(runs_a, out)
    assert csv_path.read_bytes() == first
    write_results(runs_b, "m2", "a", 25.0)  # other runs folder: its rows are merged in, m1's kept
    publish(runs_b, out)
    rows = read_rows(csv_path)
    assert {("m1", "a"), ("m1", "b"), ("m1", "mean"), ("m2", "a"), ("m2", "mean")} == set(rows)
    write_results(runs_b, "m2", "a", 26.0)  # the same job re-run: replaces its row, no duplicate
    publish(runs_b, out)
    rows = read_rows(csv_path)
    assert len(rows) == 5 and rows[("m2", "a")]["psnr ↑"] == "26.0000"
    assert rows[("m1", "mean")]["rank"] == "1"


def test_failed_job_row_and_unreadable_existing_csv(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    write_results(runs, "m1", "a", None, status="failed")
    (board,) = publish(runs, out, plot=False)
    assert read_rows(board.csv_path)[("m1", "a")]["status"] == "failed: RuntimeError: boom"
    board.csv_path.write_text("some,other,schema\n1,2,3\n")
    with pytest.raises(ConfigError, match="another schema"):
        publish(runs, out, plot=False)


def test_no_results_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no results.json found"):
        publish(tmp_path / "empty", tmp_path / "out")


def test_reference_rows_hold_the_papers_numbers():
    rows = load_reference()

    def find(paper, dataset_prefix, method):
        (row,) = [
            r
            for r in rows
            if r["paper"] == paper and r["dataset"].startswith(dataset_prefix) and r["method"] == method
        ]
        return row

    hicode = find("HiCoDe", "HDTF", "HiCoDe (Ours)")
    assert (hicode["psnr ↑"], hicode["ssim ↑"], hicode["lpips ↓"], hicode["lmd ↓"], hicode["lse_c ↑"]) == (
        "37.767",
        "0.983",
        "0.013",
        "1.819",
        "8.428",
    )
    plane = find("Audio-Plane", "Test Set A", "Audio-Plane (Ours)")
    assert (plane["psnr ↑"], plane["lpips ↓"], plane["lse_c ↑"], plane["render_fps"]) == (
        "31.69",
        "0.035",
        "6.700",
        "43",
    )
    speech = find("GaussianSpeech", "GaussianSpeech", "GaussianSpeech (Ours)")
    assert (speech["lse_d ↓"], speech["psnr ↑"], speech["ssim ↑"]) == ("11.25", "24.73", "0.9362")
    assert {r["protocol_like"] for r in rows} <= {"mono-front", "multiview", "cross-id"}


def _set_dataset_hash(path: Path, dataset_hash: str) -> None:
    import json

    data = json.loads(path.read_text())
    data["dataset"]["hash"] = dataset_hash
    write_json(path, data)


def test_two_versions_of_a_dataset_are_refused_naming_both_hashes(tmp_path):
    runs = tmp_path / "runs"
    write_results(runs, "good", "a", 30.0)
    _set_dataset_hash(write_results(runs, "good", "b", 31.0), "e" * 64)
    with pytest.raises(ConfigError, match="2 versions of dataset 'ds'") as error:
        publish(runs, tmp_path / "out", plot=False)
    assert "d" * 16 in str(error.value) and "e" * 16 in str(error.value)
    assert not (tmp_path / "out").exists()


def test_a_board_of_another_dataset_version_is_not_merged_into(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    write_results(old, "good", "a", 30.0)
    (board,) = publish(old, tmp_path / "out", plot=False)
    before = board.csv_path.read_bytes()
    _set_dataset_hash(write_results(new, "other", "a", 25.0), "e" * 64)
    with pytest.raises(ConfigError, match="another version of dataset 'ds'") as error:
        publish(new, tmp_path / "out", plot=False)
    assert "d" * 16 in str(error.value) and "e" * 16 in str(error.value)
    assert board.csv_path.read_bytes() == before


def test_bad_results_files_are_named_skipped_and_the_rest_published(tmp_path, capsys):
    import json

    runs = tmp_path / "runs"
    write_results(runs, "good", "a", 30.0)
    write_results(runs, "good", "b", 32.0)
    wrong_type = write_results(runs, "typo", "a", 20.0)
    data = json.loads(wrong_type.read_text())
    data["metrics"]["psnr"]["value"] = "twenty"  # a string where a number belongs
    write_json(wrong_type, data)
    truncated = write_results(runs, "cut", "a", 20.0)
    truncated.write_bytes(truncated.read_bytes()[:100])
    (board,) = publish(runs, tmp_path / "out", plot=False)
    rows = read_rows(board.csv_path)
    assert {method for method, _ in rows} == {"good"}
    assert rows[("good", "mean")]["psnr ↑"] == "31.0000"
    err = capsys.readouterr().err
    for path in (wrong_type, truncated):
        assert f"skipped: {path}" in " ".join(err.split())
