"""The 2D-FAN LMD backend (face_alignment's own pipeline, registered weights, MediaPipe boxes)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from benchmark.metrics import compute_metrics, fan
from benchmark.weights import REGISTRY, WeightRegistry
from gsbench.io import sha256_file

pytest.importorskip("face_alignment")

SIZE = 192


class RedDotHeatmaps(torch.nn.Module):
    """Stands in for the FAN: every one of the 68 heatmaps peaks where the crop is red (R - G), so the
    landmarks must come back at the red dot's image position if crop and decoding are right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, 256, 256] in [0, 1]
        redness = torch.nn.functional.avg_pool2d(x[:, :1] - x[:, 1:2], 4)  # [B, 1, 64, 64]
        return redness.repeat(1, 68, 1, 1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from face_alignment.models import FAN

    folder = tmp_path_factory.mktemp("weights")
    path = folder / REGISTRY["fan-2d"].filename
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), path)  # random weights, the real file's layout
    spec = dataclasses.replace(REGISTRY["fan-2d"], sha256_prefix=None, expected_sha256=sha256_file(path))
    return WeightRegistry([folder], specs={"fan-2d": spec})


def _frames_with_dot(dots: list[tuple[int, int]]) -> np.ndarray:
    frames = np.full((len(dots), SIZE, SIZE, 3), 128, np.uint8)
    for frame, (x, y) in zip(frames, dots, strict=True):
        frame[y - 3 : y + 3, x - 3 : x + 3] = (255, 0, 0)
    return frames


@pytest.mark.slow  # the first landmark call compiles face_alignment's numba kernels: ~33 s on 2 cores
def test_landmarks_come_back_where_the_heatmaps_point(registry):
    model = fan.build_fan(registry.find("fan-2d").path)
    model.face_alignment_net = RedDotHeatmaps()
    dots = [(100, 90), (70, 120)]
    boxes = np.array([[48.0, 48.0, 144.0, 144.0], [30.0, 60.0, 130.0, 160.0]])
    points, detected = fan.fan_landmarks(model, _frames_with_dot(dots), boxes)
    assert detected.all() and points.shape == (2, 68, 2)
    # dot centres are at (x - 0.5, y - 0.5); one heatmap bin is ~3 image pixels here (200 * scale / 64)
    np.testing.assert_allclose(points[:, 0], np.array(dots, float) - 0.5, atol=2.0)
    none, found = fan.fan_landmarks(model, _frames_with_dot(dots[:1]), np.full((1, 4), np.nan))
    assert not found.any() and np.isnan(none).all()


def test_boxes_from_mediapipe_points():
    points = np.zeros((2, 478, 2))
    points[0, :, 0], points[0, :, 1] = np.linspace(10, 50, 478), np.linspace(20, 80, 478)
    boxes = fan.boxes_from_mediapipe(points, np.array([True, False]))
    np.testing.assert_allclose(boxes[0], [10, 20, 50, 80])
    assert np.isnan(boxes[1]).all()


def test_weights_are_checked_and_missing_weights_reported(registry, tmp_path):
    assert registry.status("fan-2d")[0] == "ok"
    bad = tmp_path / REGISTRY["fan-2d"].filename
    torch.save({"conv1.weight": torch.zeros(3)}, bad)
    assert "missing" in fan.check_fan_state_dict(bad) or "shape" in fan.check_fan_state_dict(bad)
    frames = _frames_with_dot([(100, 90)] * 3).astype(np.float32) / 255
    landmarks = (np.zeros((3, 478, 2), np.float32) + 96, np.ones(3, bool))
    results = compute_metrics(
        frames, frames, gt_landmarks=landmarks, weights=WeightRegistry([tmp_path / "none"]),
        metrics=["lmd"], lmd_detector="fan",
    )  # fmt: skip
    assert results["lmd"].status == "missing" and "fan-2d" in results["lmd"].reason
    with pytest.raises(Exception, match="unknown LMD detector"):
        compute_metrics(frames, frames, metrics=["lmd"], lmd_detector="dlib")


@pytest.mark.slow  # numba compilation, as above
def test_compute_metrics_names_the_fan_detector(registry, monkeypatch):
    import tracking.landmarks

    model = fan.build_fan(registry.find("fan-2d").path)
    model.face_alignment_net = RedDotHeatmaps()
    monkeypatch.setattr(fan, "build_fan", lambda path: model)
    dots = [(100, 90), (96, 94), (104, 88)]
    frames = _frames_with_dot(dots).astype(np.float32) / 255
    square = np.stack(np.meshgrid(np.linspace(48, 144, 22), np.linspace(48, 144, 22)), -1).reshape(-1, 2)[
        :478
    ]
    landmarks = (np.repeat(square[None], 3, 0).astype(np.float32), np.ones(3, bool))
    monkeypatch.setattr(tracking.landmarks, "detect_landmarks", lambda images: landmarks)
    results = compute_metrics(
        frames, frames, gt_landmarks=landmarks, weights=registry, metrics=["lmd"], lmd_detector="fan"
    )
    assert results["lmd"].status == "ok" and results["lmd"].value == pytest.approx(0.0, abs=1e-6)
    assert results["lmd"].details["detector"].startswith("2D-FAN-4 (face-alignment 1.5.0), boxes: MediaPipe")
    assert results["lmd"].weight_id.startswith("fan-2d:")


def test_run_options_carry_the_lmd_detector(tiny_dataset_master, tmp_path):
    from benchmark.runner import RunOptions, job_config, plan_jobs

    plan = plan_jobs(
        tiny_dataset_master,
        tmp_path,
        RunOptions(methods="retrieval", protocols=("mono-front",), lmd_detector="fan", device="cpu"),
    )
    assert {j.lmd_detector for j in plan.jobs} == {"fan"}
    assert job_config(plan.jobs[0], {})["lmd_detector"] == "fan"  # part of the config hash
