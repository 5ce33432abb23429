"""LMD, landmark distance (Chen et al. 2018; the ``LMDMeter`` of RAD-NeRF / ER-NeRF / SyncTalk /
TalkingGaussian), on MediaPipe landmarks mapped to iBUG-68.

Definition, per frame ``t`` where a face is detected in both the prediction and the ground truth::

    P = pred landmarks of the subset [K, 2],  G = ground-truth landmarks of the subset [K, 2]   (pixels)
    P' = P - mean(P),  G' = G - mean(G)          (each set's own centroid; no scale normalisation)
    LMD_t = (1/K) sum_k || P'_k - G'_k ||_2

and LMD = mean of LMD_t over the scored frames. Subsets: ``lmd`` = mouth, iBUG 48..67 (K = 20, what the
talking-head papers report as LMD); ``lmd_face`` = all 68 points. Pixels are those of the evaluation
frames (no resizing). Frames where either detection fails are not scored; how many failed (pred, gt,
either) is reported with the value, and a clip where no frame can be scored has no LMD.
Detector: MediaPipe FaceMesh (``tracking.landmarks``) instead of 2D-FAN; see that module for the mapping.
"""

from __future__ import annotations

import numpy as np

from tracking.landmarks import IBUG68_MOUTH, to_ibug68


def lmd_per_frame(
    pred_points: np.ndarray, gt_points: np.ndarray, subset: np.ndarray | None = None
) -> np.ndarray:
    """[T] LMD of iBUG-68 points ``[T, 68, 2]`` (NaN where either frame has NaN points).

    ``subset`` selects iBUG indices (e.g. :data:`IBUG68_MOUTH`); None uses all 68.
    """
    pred = np.asarray(pred_points, np.float64)
    gt = np.asarray(gt_points, np.float64)
    if subset is not None:
        pred, gt = pred[:, subset], gt[:, subset]
    pred = pred - pred.mean(axis=1, keepdims=True)
    gt = gt - gt.mean(axis=1, keepdims=True)
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=1)


def lmd_from_mediapipe(
    pred_points: np.ndarray, pred_detected: np.ndarray, gt_points: np.ndarray, gt_detected: np.ndarray
) -> dict[str, object]:
    """Mouth and full-face LMD from MediaPipe points ``[T, 478, 2]`` and detection flags ``[T]``.

    Returns ``{"mouth": per-frame [T] (NaN unscored), "face": per-frame [T], "scored": [T] bool,
    "failed_pred": int, "failed_gt": int, "failed_either": int}``.
    """
    return lmd_from_ibug68(to_ibug68(pred_points), pred_detected, to_ibug68(gt_points), gt_detected)


def lmd_from_ibug68(
    pred68: np.ndarray, pred_detected: np.ndarray, gt68: np.ndarray, gt_detected: np.ndarray
) -> dict[str, object]:
    """:func:`lmd_from_mediapipe` for iBUG-68 points ``[T, 68, 2]`` of any detector (e.g. 2D-FAN)."""
    pred_detected = np.asarray(pred_detected, bool)
    gt_detected = np.asarray(gt_detected, bool)
    scored = pred_detected & gt_detected
    mouth = np.full(len(scored), np.nan)
    face = np.full(len(scored), np.nan)
    if scored.any():
        mouth[scored] = lmd_per_frame(pred68[scored], gt68[scored], IBUG68_MOUTH)
        face[scored] = lmd_per_frame(pred68[scored], gt68[scored])
    return {
        "mouth": mouth,
        "face": face,
        "scored": scored,
        "failed_pred": int((~pred_detected).sum()),
        "failed_gt": int((~gt_detected).sum()),
        "failed_either": int((~scored).sum()),
    }
