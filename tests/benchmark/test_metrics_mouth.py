"""Mouth-region metrics: the lip box from ground-truth landmarks, and PSNR/SSIM/LPIPS inside it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchvision

from benchmark.metrics import compute_metrics, mouth
from benchmark.weights import REGISTRY, WeightRegistry
from gsbench.io import sha256_file
from tracking.landmarks import IBUG68_MOUTH, MEDIAPIPE_TO_IBUG68

H, W, T = 160, 192, 4


def _landmarks(centres: list[tuple[float, float]], half_w: float = 20.0, half_h: float = 8.0):
    """MediaPipe points [T, 478, 2] whose iBUG mouth points span [cx +- half_w] x [cy +- half_h]; the other
    points sit far away (they must not move the box)."""
    points = np.full((len(centres), 478, 2), 5.0, np.float32)
    mouth_ids = MEDIAPIPE_TO_IBUG68[IBUG68_MOUTH]
    for t, (cx, cy) in enumerate(centres):
        ring = np.linspace(0, 2 * np.pi, len(mouth_ids), endpoint=False)  # 18 deg steps: 0, 90, 180, 270 in
        points[t, mouth_ids, 0] = cx + half_w * np.cos(ring)
        points[t, mouth_ids, 1] = cy + half_h * np.sin(ring)
    return points, np.ones(len(centres), bool)


def test_lip_box_by_hand():
    points, detected = _landmarks([(100.0, 110.0), (185.0, 5.0), (100.0, 110.0)])
    detected[2] = False
    extents = mouth.mouth_extent(points, detected)
    np.testing.assert_allclose(extents, [40.0, 40.0])
    size = mouth.mouth_box_size(extents, (H, W))
    assert size == round(1.6 * 40)  # 64
    boxes = mouth.mouth_boxes(points, detected, size, (H, W))
    assert boxes.corners[0].tolist() == [100 - 32, 110 - 32]
    assert boxes.corners[1].tolist() == [W - 64, 0]  # shifted inside the frame, not shrunk
    assert boxes.valid.tolist() == [True, True, False]
    assert mouth.mouth_box_size([400.0], (H, W)) == H  # never larger than the frame
    assert mouth.mouth_box_size([], (H, W)) == 0


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    gt = rng.random((T, H, W, 3)).astype(np.float32) * 0.8 + 0.1
    points, detected = _landmarks([(90.0 + 3 * t, 100.0) for t in range(T)])
    return gt, (points, detected)


def test_mouth_psnr_ssim_only_see_the_lip_box(frames):
    gt, landmarks = frames
    boxes = mouth.mouth_boxes(*landmarks, 64, (H, W))
    inside = np.zeros((T, H, W), bool)
    for t, (x, y) in enumerate(boxes.corners):
        inside[t, y : y + 64, x : x + 64] = True
    outside_error = gt.copy()
    outside_error[~inside] = np.clip(outside_error[~inside] + 0.05, 0, 1)
    results = compute_metrics(outside_error, gt, gt_landmarks=landmarks, metrics=["psnr", "ssim"])
    assert np.isinf(results["psnr_mouth"].value)  # the error lies outside every lip box
    assert results["ssim_mouth"].value == pytest.approx(1.0)
    assert results["psnr"].value < 30 and results["psnr_mouth"].details["box_size_px"] == 64
    inside_error = gt.copy()
    inside_error[inside] += 0.1  # MSE in the box = 0.01 -> PSNR 20 dB exactly
    results = compute_metrics(inside_error, gt, gt_landmarks=landmarks, metrics=["psnr"])
    assert results["psnr_mouth"].value == pytest.approx(20.0, abs=1e-4)
    # full frame: the same error over 64*64 of 160*192 pixels
    assert results["psnr"].value == pytest.approx(20.0 - 10 * np.log10(64 * 64 / (H * W)), abs=1e-4)
    # the dataset's fixed size wins over the clip's own, and an undetected GT frame is not scored
    points, detected = landmarks
    detected = detected.copy()
    detected[1] = False
    results = compute_metrics(
        inside_error, gt, gt_landmarks=(points, detected), metrics=["psnr"], mouth_box_size=32
    )
    assert results["psnr_mouth"].details["box_size_px"] == 32
    assert results["psnr_mouth"].details["frames_scored"] == T - 1
    assert np.isnan(results["psnr_mouth"].details["per_frame"][1])


def test_mouth_lpips_and_missing_cases(frames, tmp_path):
    gt, landmarks = frames
    torch.manual_seed(0)
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    spec = dataclasses.replace(
        REGISTRY["lpips-alexnet"], expected_sha256=sha256_file(path), sha256_prefix=None
    )
    registry = WeightRegistry([tmp_path], specs={"lpips-alexnet": spec})
    boxes = mouth.mouth_boxes(*landmarks, 64, (H, W))
    pred = gt.copy()
    pred[:, :20] = 0.0  # far from the lip boxes (rows 68..164)
    assert (boxes.corners[:, 1] >= 20).all()
    results = compute_metrics(pred, gt, gt_landmarks=landmarks, weights=registry, metrics=["lpips"])
    assert results["lpips"].value > 0 and results["lpips_mouth"].value == 0.0
    assert results["lpips_mouth"].weight_id == results["lpips"].weight_id
    small = compute_metrics(
        pred, gt, gt_landmarks=landmarks, weights=registry, metrics=["lpips"], mouth_box_size=16
    )
    assert small["lpips_mouth"].status == "missing" and "16 px" in small["lpips_mouth"].reason
    nobody = compute_metrics(pred, gt, gt_landmarks=(landmarks[0], np.zeros(T, bool)), metrics=["psnr"])
    assert nobody["psnr_mouth"].status == "missing" and "no lip box" in nobody["psnr_mouth"].reason
