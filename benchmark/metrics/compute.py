"""``compute_metrics``: every registered metric on one clip, with the weights that produced it.

The metrics are those declared in ``benchmark/metrics/`` (see :mod:`benchmark.metrics.registry`); this
module only prepares the inputs they share (landmarks, the lip box) and runs them in their declared order.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from benchmark.metrics import mouth
from benchmark.metrics.lmd import LMD_DETECTORS, check_detector
from benchmark.metrics.lse import LSE_BOXES, check_boxes
from benchmark.metrics.registry import Clip, MetricResult, missing, registered_metrics, selectors
from gsbench.errors import InputError
from gsbench.metric_table import metric_info

__all__ = ["LMD_DETECTORS", "LSE_BOXES", "MetricResult", "all_metrics", "compute_metrics", "higher_is_better"]


def all_metrics() -> tuple[str, ...]:
    """The names ``compute_metrics(metrics=...)`` accepts (every registered metric), in compute order."""
    return selectors()


def higher_is_better() -> dict[str, bool]:
    """Direction of every result name the registered metrics write."""
    return {
        info.name: metric_info(info.name).higher_is_better for m in registered_metrics() for info in m.outputs
    }


def _check_inputs(pred: np.ndarray, gt: np.ndarray, masks: np.ndarray | None) -> None:
    if pred.ndim != 4 or pred.shape[-1] != 3:
        raise InputError(f"predictions must be [T,H,W,3], got {pred.shape}", fix="pass RGB frames")
    if pred.shape != gt.shape:
        raise InputError(
            f"prediction {pred.shape} and ground truth {gt.shape} differ in shape",
            fix="render at the evaluation resolution and frame count of the ground truth",
        )
    if masks is not None and masks.shape != pred.shape[:3]:
        raise InputError(
            f"masks {masks.shape} do not match frames {pred.shape[:3]}", fix="pass one [H,W] mask per frame"
        )


def compute_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    masks: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    fps: float = 25.0,
    weights=None,
    metrics: Iterable[str] | None = None,
    gt_landmarks: tuple[np.ndarray, np.ndarray] | None = None,
    mouth_box_size: int | None = None,
    lmd_detector: str = "mediapipe",
    lse_boxes: str = "mediapipe",
) -> dict[str, MetricResult]:
    """All metrics of one clip.

    Args:
        pred, gt: [T, H, W, 3] float32 RGB in [0, 1] at the evaluation resolution.
        masks: [T, H, W] bool head masks; adds ``psnr_masked``, ``ssim_masked``, ``lpips_masked``.
        audio: 16 kHz mono float waveform of the clip (for LSE-D / LSE-C).
        fps: frame rate of ``pred``/``gt`` (SyncNet runs at 25 fps; other rates are resampled).
        weights: :class:`benchmark.weights.WeightRegistry` (None: the default search paths).
        metrics: subset of the registered metrics (built in: ``psnr ssim lpips lmd lse_d lse_c``) to compute
            (None: all). ``lmd`` also gives ``lmd_face``; ``lse_d`` and ``lse_c`` come together.
        gt_landmarks: MediaPipe ``(points [T,478,2], detected [T])`` of ``gt`` when already known
            (e.g. the dataset's ``landmarks.npz`` for the evaluation camera); detected otherwise.
            They also place the lip box of ``psnr_mouth``, ``ssim_mouth``, ``lpips_mouth`` (computed with
            ``psnr``, ``ssim``, ``lpips``; see :mod:`benchmark.metrics.mouth`).
        mouth_box_size: side of the lip box in pixels, fixed per dataset by the caller
            (``mouth.mouth_box_size`` over the dataset); None: from this clip's ground truth.
        lmd_detector: ``mediapipe`` (default, offline) or ``fan`` (face_alignment's 2D-FAN with the
            registered ``fan-2d`` weights, on MediaPipe face boxes; see :mod:`benchmark.metrics.fan`).
        lse_boxes: face boxes of the SyncNet crops: ``mediapipe`` (default) or ``s3fd`` (syncnet_python's
            S3FD tracks with the registered ``s3fd-sfd-face`` weights; see :mod:`benchmark.metrics.s3fd`).

    Returns:
        name -> :class:`MetricResult`. A metric whose weights or inputs are missing has status
        ``missing``, value None and the reason; nothing is substituted.
    """
    from benchmark.weights import WeightRegistry

    pred = np.asarray(pred, np.float32)
    gt = np.asarray(gt, np.float32)
    masks = None if masks is None else np.asarray(masks, bool)
    _check_inputs(pred, gt, masks)
    known = all_metrics()
    wanted = set(known if metrics is None else metrics)
    unknown = wanted - set(known)
    if unknown:
        raise InputError(f"unknown metric(s) {sorted(unknown)}", fix=f"choose from {', '.join(known)}")
    check_boxes(lse_boxes)
    check_detector(lmd_detector)
    chosen = [m for m in registered_metrics() if wanted & set(m.selectors)]
    clip = Clip(
        pred,
        gt,
        masks,
        audio,
        fps,
        weights if weights is not None else WeightRegistry(),
        gt_landmarks_given=gt_landmarks,
        mouth_box_size=mouth_box_size,
        lmd_detector=lmd_detector,
        lse_boxes=lse_boxes,
    )
    results: dict[str, MetricResult] = {}
    with_mouth = [m for m in chosen if m.mouth_output]
    if with_mouth:
        clip.mouth_boxes = _mouth_boxes(clip)
        if clip.mouth_boxes is None:
            reason = "no face detected in any ground-truth frame: no lip box"
            results.update({m.mouth_output: missing(m.mouth_output, reason) for m in with_mouth})
    for metric in chosen:
        results.update(metric.compute(clip))
    return results


def _mouth_boxes(clip: Clip):
    """The lip boxes of the clip's ground truth (``mouth.MouthBoxes``), None when no frame has a face."""
    size = clip.mouth_box_size
    if size is None:
        size = mouth.mouth_box_size(mouth.mouth_extent(*clip.gt_landmarks), clip.gt.shape[1:3])
    boxes = (
        mouth.mouth_boxes(clip.gt_landmarks[0], clip.gt_landmarks[1], size, clip.gt.shape[1:3])
        if size > 0
        else None
    )
    if boxes is None or not boxes.valid.any():
        return None
    return boxes
