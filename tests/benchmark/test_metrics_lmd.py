"""LMD: definition on known landmark shifts, and end to end through MediaPipe."""

from __future__ import annotations

import numpy as np

from benchmark.metrics.lmd import lmd_from_mediapipe, lmd_per_frame
from tracking.landmarks import IBUG68_MOUTH, MEDIAPIPE_TO_IBUG68


def _points68(seed, num=4):
    return np.random.default_rng(seed).uniform(0, 256, (num, 68, 2))


def test_identical_is_zero_and_translation_invariant():
    pts = _points68(0)
    np.testing.assert_array_equal(lmd_per_frame(pts, pts, IBUG68_MOUTH), 0)
    np.testing.assert_allclose(lmd_per_frame(pts + [7.0, -3.0], pts), 0, atol=1e-12)


def test_known_mouth_shift():
    gt = _points68(1)
    pred = gt.copy()
    # move the 10 first mouth points by +4 px in y: centroid moves 2 px, so every point is 2 px off
    pred[:, 48:58, 1] += 4.0
    np.testing.assert_allclose(lmd_per_frame(pred, gt, IBUG68_MOUTH), 2.0, atol=1e-12)
    # over all 68 points the centroid moves 40/68 px: 10 points off by 4 - 40/68, 58 by 40/68
    expected = (10 * (4 - 40 / 68) + 58 * (40 / 68)) / 68
    np.testing.assert_allclose(lmd_per_frame(pred, gt), expected, atol=1e-12)
    # LMD grows linearly with the shift
    pred2 = gt.copy()
    pred2[:, 48:58, 1] += 8.0
    np.testing.assert_allclose(lmd_per_frame(pred2, gt, IBUG68_MOUTH), 4.0, atol=1e-12)


def test_failed_detections_are_counted_not_scored():
    gt68 = _points68(2, 5)
    gt = np.full((5, 478, 2), np.nan)
    gt[:, MEDIAPIPE_TO_IBUG68] = gt68
    pred = gt.copy()
    pred[:, MEDIAPIPE_TO_IBUG68[48:58], 0] += 6.0  # mouth LMD 3 px
    pred_det = np.array([True, True, False, True, True])
    gt_det = np.array([True, True, True, False, False])
    pred[~pred_det] = np.nan
    out = lmd_from_mediapipe(pred, pred_det, gt, gt_det)
    assert out["failed_pred"] == 1 and out["failed_gt"] == 2 and out["failed_either"] == 3
    np.testing.assert_allclose(out["mouth"][:2], 3.0, atol=1e-9)
    assert np.isnan(out["mouth"][2:]).all()
