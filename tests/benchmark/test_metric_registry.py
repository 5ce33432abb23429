"""Registries: a metric or a pretrained network declared in one module (this test module) reaches
compute_metrics, the metric table, results entries, the leaderboard and the weight registry with no other
edit; the one state-dict reader."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from benchmark.cli import cli
from benchmark.metrics import all_metrics, compute_metrics
from benchmark.metrics.registry import (
    Metric,
    MetricResult,
    frames_mean,
    missing,
    register_metric,
    unregister_metric,
)
from benchmark.results import metric_entry
from benchmark.weights import REGISTRY, WeightRegistry, declared_networks
from gsbench.errors import WeightsError
from gsbench.io import sha256_file, write_json
from gsbench.metric_table import METRICS, MetricInfo, metric_info
from gsbench.pretrained import (
    PretrainedNetwork,
    check_state_dict,
    declare,
    read_checkpoint,
    read_state_dict,
    undeclare,
)
from leaderboards.publish import columns, publish

PROTOCOL = "registry-test"  # a protocol only this test's metric ranks
PROBE_SHAPES = {"scale": (3,)}


def check_probe(path) -> str | None:
    return check_state_dict(path, PROBE_SHAPES, "probe")


PROBE = PretrainedNetwork(
    name="probe-net",
    filename="probe.pt",
    url="https://example.org/probe.pt",
    description="per-channel scale of the mae-scaled metric (test only)",
    used_by="metric mae (tests/benchmark/test_metric_registry.py)",
    check=check_probe,
)


def compute_mae(clip) -> dict[str, MetricResult]:
    """Mean absolute error per frame, each channel scaled by the registered ``probe-net`` (if found)."""
    per_frame = np.abs(clip.pred - clip.gt).mean(axis=(1, 2, 3)).astype(np.float64)
    out = {"mae": frames_mean("mae", per_frame)}
    try:
        weight = clip.weights.find(PROBE.name)
    except WeightsError as error:
        out["mae_scaled"] = missing("mae_scaled", str(error))
        return out
    scale = read_state_dict(weight.path)["scale"].numpy()
    scaled = (np.abs(clip.pred - clip.gt) * scale).mean(axis=(1, 2, 3)).astype(np.float64)
    out["mae_scaled"] = frames_mean("mae_scaled", scaled, weight.weight_id)
    return out


MAE = Metric(
    name="mae",
    outputs=(
        MetricInfo("mae", "lower", "MAE", digits=3, ranks=(PROTOCOL,), convention="MAE: test metric."),
        MetricInfo("mae_scaled", "lower", "MAE scaled", leaderboard=False),
    ),
    compute=compute_mae,
    order=60,
    networks=(PROBE,),
)


@pytest.fixture()
def mae_metric():
    register_metric(MAE)
    yield MAE
    unregister_metric(MAE.name)


def _frames(offset: float, num: int = 3) -> tuple[np.ndarray, np.ndarray]:
    gt = np.full((num, 24, 24, 3), 0.25, np.float32)
    pred = gt + np.float32(offset)
    return pred, gt


NO_FACE = (np.full((3, 478, 2), np.nan, np.float32), np.zeros(3, bool))


def test_a_registered_metric_is_computed_in_its_order(mae_metric, tmp_path):
    assert "mae" in all_metrics()
    pred, gt = _frames(0.1)
    results = compute_metrics(
        pred, gt, metrics=["mae", "psnr"], weights=WeightRegistry([tmp_path]), gt_landmarks=NO_FACE
    )
    # psnr's lip-box output is missing first (no face), then the metrics in declared order
    assert list(results) == ["psnr_mouth", "psnr", "mae", "mae_scaled"]
    assert results["mae"].value == pytest.approx(0.1, abs=1e-6)
    assert results["psnr"].value == pytest.approx(20.0, abs=1e-4)  # -10 log10(0.1^2)
    assert (
        results["mae_scaled"].status == "missing"
        and "probe.pt (probe-net) not found" in results["mae_scaled"].reason
    )
    entry = metric_entry(results["mae"])
    assert entry["direction"] == "lower" and entry["value"] == pytest.approx(0.1, abs=1e-6)


def test_a_registered_metric_uses_the_network_it_declares(mae_metric, tmp_path):
    torch.save({"scale": torch.tensor([2.0, 2.0, 2.0])}, tmp_path / "probe.pt")
    assert declared_networks()["probe-net"] is PROBE and REGISTRY["probe-net"].used_by.startswith(
        "metric mae"
    )
    pred, gt = _frames(0.1)
    results = compute_metrics(pred, gt, metrics=["mae"], weights=WeightRegistry([tmp_path]))
    assert results["mae_scaled"].value == pytest.approx(0.2, abs=1e-6)
    assert results["mae_scaled"].weight_id == f"probe-net:{sha256_file(tmp_path / 'probe.pt')[:12]}"
    torch.save({"scale": torch.ones(4)}, tmp_path / "probe.pt")  # other architecture: rejected, not used
    results = compute_metrics(pred, gt, metrics=["mae"], weights=WeightRegistry([tmp_path]))
    assert results["mae_scaled"].status == "missing"
    assert "not a probe state dict: scale has shape (4,), expected (3,)" in results["mae_scaled"].reason


def test_a_registered_metric_is_in_the_table_and_the_cli_choices(mae_metric):
    assert METRICS["mae"].direction == "lower" and metric_info("mae").arrow == "↓"
    assert list(METRICS).index("mae") > list(METRICS).index("lse_c_video")  # default column: after built-ins
    assert "mae ↓" in columns() and "mae_scaled ↓" not in columns()
    result = CliRunner().invoke(cli, ["metrics", "a", "b", "--metric", "nope"])
    assert result.exit_code == 2 and "mae" in result.output  # the choices listed include it


def test_unregistered_metrics_leave_no_trace(mae_metric):
    unregister_metric("mae")
    assert "mae" not in all_metrics() and "mae" not in METRICS and "mae ↓" not in columns()
    assert "probe-net" not in declared_networks()
    assert metric_info("mae").label == "mae (direction unknown)"
    register_metric(MAE)  # for the fixture's clean-up


def _write(runs, method: str, subject: str, mae: float) -> None:
    write_json(
        runs / "ds" / PROTOCOL / method / subject / "results.json",
        {
            "schema": "gsbench.results",
            "schema_version": 1,
            "status": "ok",
            "error": None,
            "dataset": {"name": "ds", "hash": "d" * 64, "subjects": ["a", "b"]},
            "protocol": PROTOCOL,
            "method": method,
            "subject": subject,
            "budget": "smoke",
            "metrics": {
                "mae": {"value": mae, "status": "ok", "reason": "", "direction": "lower", "details": {}},
                "psnr": {
                    "value": 100 + mae,
                    "status": "ok",
                    "reason": "",
                    "direction": "higher",
                    "details": {},
                },
            },
        },
    )


def test_a_registered_metric_gets_a_leaderboard_column_and_ranks_lower_first(mae_metric, tmp_path):
    runs = tmp_path / "runs"
    for method, (a, b) in {"worst": (0.5, 0.7), "best": (0.1, 0.2), "middle": (0.3, 0.3)}.items():
        _write(runs, method, "a", a)
        _write(runs, method, "b", b)
    (board,) = publish(runs, tmp_path / "out", plot=False)
    with board.csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames
        means = {r["method"]: r for r in reader if r["row_type"] == "mean"}
    assert header.index("mae ↓") == header.index("lse_c_video ↑") + 1  # after the built-in metric columns
    # means 0.15 < 0.3 < 0.6: lower is better, so best, middle, worst (ranking by psnr = 100 + mae, or
    # mae taken as higher-better, would invert it)
    assert {m: (r["rank"], r["rank_by"], r["mae ↓"]) for m, r in means.items()} == {
        "best": ("1", "mae", "0.150"),
        "middle": ("2", "mae", "0.300"),
        "worst": ("3", "mae", "0.600"),
    }
    assert "- MAE: test metric." in board.markdown_path.read_text()


def test_a_board_published_before_a_metric_was_added_still_merges(tmp_path):
    runs = tmp_path / "runs"
    _write(runs, "best", "a", 0.1)
    _write(runs, "best", "b", 0.2)
    (board,) = publish(runs, tmp_path / "out", plot=False)  # no mae column: the metric is not registered
    assert "mae ↓" not in board.csv_path.read_text().splitlines()[0]
    register_metric(MAE)
    try:
        _write(runs, "other", "a", 0.3)
        _write(runs, "other", "b", 0.3)
        (board,) = publish(runs, tmp_path / "out", plot=False)
        rows = {(r["method"], r["subject"]): r for r in csv.DictReader(board.csv_path.open(encoding="utf-8"))}
    finally:
        unregister_metric(MAE.name)
    assert rows[("other", "mean")]["mae ↓"] == "0.300" and rows[("best", "mean")]["mae ↓"] == "0.150"


def test_a_network_declared_anywhere_is_listed_added_and_found(tmp_path):
    declare(PROBE)
    try:
        source = tmp_path / "src" / "probe.pt"
        source.parent.mkdir()
        torch.save({"scale": torch.ones(3)}, source)
        pinned = dataclasses.replace(PROBE, expected_sha256="0" * 64)
        with pytest.raises(WeightsError, match="sha256"):
            WeightRegistry([tmp_path / "store"], specs={"probe-net": pinned}).add(
                "probe-net", source, tmp_path / "store"
            )
        registry = WeightRegistry([tmp_path / "store"])
        assert "probe-net" in registry.names()
        other = tmp_path / "src" / "other.pt"
        torch.save({"scale": torch.ones(2, 3)}, other)
        with pytest.raises(WeightsError, match=r"not a probe state dict: scale has shape \(2, 3\)"):
            registry.add("probe-net", other, tmp_path / "store")
        added = registry.add("probe-net", source, tmp_path / "store")
        assert WeightRegistry([tmp_path / "store"]).find("probe-net").weight_id == added.weight_id
        listing = CliRunner().invoke(cli, ["weights", "list"])
        assert listing.exit_code == 0, listing.output
        assert "probe-net" in listing.output and "metric mae" in listing.output
    finally:
        undeclare(PROBE.name)
    with pytest.raises(WeightsError, match="unknown weight name 'probe-net'"):
        WeightRegistry([tmp_path / "store"]).find("probe-net")


def test_every_network_a_method_lists_is_declared():
    from benchmark.methods import registry

    declared = declared_networks()
    imported_features = {"deepspeech-0.1.0"}  # imported per dataset (gsbench audio import-features)
    for name, spec in registry().items():
        for network in spec.load().pretrained_networks:
            assert network in declared or network in imported_features, (name, network)


def test_the_state_dict_reader_unwraps_and_names_bad_files(tmp_path):
    weights = {"conv.weight": torch.arange(6.0).reshape(2, 3)}
    torch.save({"state_dict": {f"module.{k}": v for k, v in weights.items()}}, tmp_path / "wrapped.pt")
    torch.save(weights, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)  # not memory-mappable
    for name in ("wrapped.pt", "legacy.pt"):
        state = read_state_dict(tmp_path / name)
        assert list(state) == ["conv.weight"] and torch.equal(state["conv.weight"], weights["conv.weight"])
    assert check_state_dict(tmp_path / "legacy.pt", {"conv.weight": (2, 3)}, "conv") is None
    assert check_state_dict(tmp_path / "legacy.pt", {"conv.bias": (2,)}, "conv") == (
        "not a conv state dict: missing key conv.bias"
    )
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="expected a state dict, found list"):
        read_checkpoint(tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text(json.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="text.pt: cannot read as a torch state dict"):
        read_state_dict(tmp_path / "text.pt")
