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

from benchmark.metrics import fan
from benchmark.metrics.registry import Clip, Metric, MetricResult, frames_mean, register_metric
from gsbench.errors import DependencyError, InputError, WeightsError
from gsbench.metric_table import MetricInfo
from tracking.landmarks import IBUG68_MOUTH, to_ibug68

LMD_DETECTORS = ("mediapipe", "fan")  # MediaPipe FaceMesh (offline default) or face_alignment's 2D-FAN


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


def check_detector(name: str) -> None:
    if name not in LMD_DETECTORS:
        raise InputError(f"unknown LMD detector {name!r}", fix=f"choose from {', '.join(LMD_DETECTORS)}")


def compute_lmd(clip: Clip) -> dict[str, MetricResult]:
    """``lmd`` (mouth) and ``lmd_face`` on the clip's MediaPipe landmarks, or on 2D-FAN points
    (``clip.lmd_detector == "fan"``) in the MediaPipe face boxes of each frame."""
    resolution = f"{clip.gt.shape[2]}x{clip.gt.shape[1]}"
    pred_landmarks, gt_landmarks = clip.pred_landmarks, clip.gt_landmarks
    if clip.lmd_detector != "fan":
        found = lmd_from_mediapipe(pred_landmarks[0], pred_landmarks[1], gt_landmarks[0], gt_landmarks[1])
        return _lmd_results(found, resolution, "mediapipe-facemesh-478")
    try:
        weight = clip.weights.find(fan.FAN_2D.name)
        model = fan.build_fan(weight.path)
    except (WeightsError, DependencyError) as error:
        return {n: MetricResult(n, None, "missing", str(error)) for n in ("lmd", "lmd_face")}
    pred68 = fan.fan_landmarks(model, clip.pred_u8, fan.boxes_from_mediapipe(*pred_landmarks))
    gt68 = fan.fan_landmarks(model, clip.gt_u8, fan.boxes_from_mediapipe(*gt_landmarks))
    found = lmd_from_ibug68(pred68[0], pred68[1], gt68[0], gt68[1])
    detector = f"2D-FAN-4 (face-alignment {fan.fan_version()}), boxes: {fan.BOX_RULE}"
    return _lmd_results(found, resolution, detector, weight.weight_id)


def _lmd_results(found: dict, resolution: str, detector: str, weight_id: str | None = None) -> dict:
    counts = {key: found[key] for key in ("failed_pred", "failed_gt", "failed_either")}
    counts["frames"] = int(len(found["scored"]))
    out = {}
    for name, key, subset in (
        ("lmd", "mouth", "iBUG 48-67 (20 mouth points)"),
        ("lmd_face", "face", "iBUG 0-67"),
    ):
        if not found["scored"].any():
            out[name] = MetricResult(
                name,
                None,
                "missing",
                "no frame with a face detected in both prediction and ground truth",
                weight_id,
                dict(counts),
            )
            continue
        out[name] = frames_mean(
            name,
            found[key],
            weight_id,
            subset=subset,
            detector=detector,
            units="pixels at evaluation resolution",
            resolution=resolution,  # W x H of the scored frames: LMD is in their pixels
            **counts,
        )
    return out


LMD = register_metric(
    Metric(
        name="lmd",
        outputs=(
            MetricInfo(
                "lmd",
                "lower",
                "LMD mouth (px)",
                column=100,
                convention="LMD (`lmd` mouth, iBUG 48-67; `lmd_face`, 0-67): each point set centred on its "
                "own centroid, no scale normalisation, in pixels of the evaluation frames (resolution "
                "below). Detector: MediaPipe FaceMesh mapped to iBUG-68, not the papers' face_alignment "
                "2D-FAN: same definition, other detector.",
            ),
            MetricInfo("lmd_face", "lower", "LMD face (px)", column=110),
        ),
        compute=compute_lmd,
        order=40,
        networks=(fan.FAN_2D,),
    )
)
