"""``compute_metrics``: every metric of the benchmark on one clip, with the weights that produced it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

import numpy as np

from benchmark.metrics import fan, image, lmd, lpips_metric, mouth, s3fd, syncnet
from gsbench.errors import DependencyError, InputError, WeightsError
from gsbench.metric_table import metric_info

ALL_METRICS = ("psnr", "ssim", "lpips", "lmd", "lse_d", "lse_c")
LMD_DETECTORS = ("mediapipe", "fan")  # MediaPipe FaceMesh (offline default) or face_alignment's 2D-FAN
LSE_BOXES = ("mediapipe", "s3fd")  # SyncNet crop boxes: MediaPipe landmarks (default) or run_pipeline's S3FD
MASKED_METRICS = ("psnr_masked", "ssim_masked", "lpips_masked")
MOUTH_METRICS = ("psnr_mouth", "ssim_mouth", "lpips_mouth")  # inside the lip box (benchmark.metrics.mouth)
HIGHER_IS_BETTER = {
    name: metric_info(name).higher_is_better
    for name in (*ALL_METRICS, "lmd_face", *MASKED_METRICS, *MOUTH_METRICS)
}


@dataclasses.dataclass
class MetricResult:
    """One metric on one clip. ``value`` is None exactly when ``status == "missing"``."""

    name: str
    value: float | None
    status: Literal["ok", "missing"]
    reason: str = ""
    weight_id: str | None = None
    details: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _missing(name: str, reason: str, weight_id: str | None = None) -> MetricResult:
    return MetricResult(name, None, "missing", reason, weight_id)


def _frames_mean(name: str, per_frame: np.ndarray, weight_id: str | None = None, **details) -> MetricResult:
    valid = ~np.isnan(per_frame)
    if not valid.any():
        return _missing(name, "no frame could be scored (empty masks?)", weight_id)
    value = float(np.mean(per_frame[valid]))
    return MetricResult(
        name,
        value,
        "ok",
        "",
        weight_id,
        {"per_frame": per_frame.tolist(), "frames_scored": int(valid.sum()), **details},
    )


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)


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
        metrics: subset of ``psnr ssim lpips lmd lse_d lse_c`` to compute (None: all). ``lmd`` also
            gives ``lmd_face``; ``lse_d`` and ``lse_c`` come together.
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
    wanted = set(ALL_METRICS if metrics is None else metrics)
    unknown = wanted - set(ALL_METRICS)
    if unknown:
        raise InputError(f"unknown metric(s) {sorted(unknown)}", fix=f"choose from {', '.join(ALL_METRICS)}")
    if lse_boxes not in LSE_BOXES:
        raise InputError(f"unknown LSE face boxes {lse_boxes!r}", fix=f"choose from {', '.join(LSE_BOXES)}")
    if lmd_detector not in LMD_DETECTORS:
        raise InputError(
            f"unknown LMD detector {lmd_detector!r}", fix=f"choose from {', '.join(LMD_DETECTORS)}"
        )
    if {"lse_d", "lse_c"} & wanted:
        wanted |= {"lse_d", "lse_c"}
    registry = weights if weights is not None else WeightRegistry()
    results: dict[str, MetricResult] = {}
    if gt_landmarks is None and wanted & {"psnr", "ssim", "lpips", "lmd"}:
        from tracking.landmarks import detect_landmarks

        gt_landmarks = detect_landmarks(_to_uint8(gt))
    boxes = None
    if wanted & {"psnr", "ssim", "lpips"}:
        size = mouth_box_size
        if size is None:
            size = mouth.mouth_box_size(mouth.mouth_extent(*gt_landmarks), gt.shape[1:3])
        if size > 0:
            boxes = mouth.mouth_boxes(gt_landmarks[0], gt_landmarks[1], size, gt.shape[1:3])
        if boxes is None or not boxes.valid.any():
            reason = "no face detected in any ground-truth frame: no lip box"
            for name in ("psnr", "ssim", "lpips"):
                if name in wanted:
                    results[f"{name}_mouth"] = _missing(f"{name}_mouth", reason)
            boxes = None

    if "psnr" in wanted:
        results["psnr"] = _frames_mean("psnr", image.psnr_per_frame(pred, gt))
        if masks is not None:
            results["psnr_masked"] = _frames_mean("psnr_masked", image.psnr_per_frame(pred, gt, masks))
        if boxes is not None:
            results["psnr_mouth"] = _mouth_mean("psnr_mouth", image.psnr_per_frame, pred, gt, boxes)
    if "ssim" in wanted:
        rule = {
            "window": "gaussian 11x11 sigma 1.5",
            "border": "valid (= skimage mean)",
            "channels": "mean of the R, G, B SSIM maps",
        }
        results["ssim"] = _frames_mean("ssim", image.ssim_per_frame(pred, gt), **rule)
        if masks is not None:
            results["ssim_masked"] = _frames_mean(
                "ssim_masked", image.ssim_per_frame(pred, gt, masks), **rule
            )
        if boxes is not None:
            results["ssim_mouth"] = _mouth_mean("ssim_mouth", image.ssim_per_frame, pred, gt, boxes, **rule)
    if "lpips" in wanted:
        results.update(_lpips(registry, pred, gt, masks, boxes))

    pred_landmarks = None
    if "lmd" in wanted or "lse_d" in wanted:
        from tracking.landmarks import detect_landmarks

        pred_u8 = _to_uint8(pred)
        pred_landmarks = detect_landmarks(pred_u8)
    if "lmd" in wanted:
        resolution = f"{gt.shape[2]}x{gt.shape[1]}"
        if lmd_detector == "fan":
            results.update(
                _lmd_fan(registry, pred_u8, _to_uint8(gt), pred_landmarks, gt_landmarks, resolution)
            )
        else:
            results.update(_lmd(pred_landmarks, gt_landmarks, resolution))
    if "lse_d" in wanted:
        results.update(_lse(registry, _to_uint8(pred), pred_landmarks, audio, fps, lse_boxes))
    return results


def _mouth_mean(name, per_frame_fn, pred, gt, boxes, weight_id=None, **details) -> MetricResult:
    """``per_frame_fn`` on the lip-box crops; frames without a ground-truth face are NaN (unscored)."""
    values = np.asarray(per_frame_fn(boxes.crop(pred), boxes.crop(gt)), np.float64)
    values[~boxes.valid] = np.nan
    return _frames_mean(
        name,
        values,
        weight_id,
        box_size_px=boxes.size,
        box="square around the GT mouth centroid (iBUG 48-67), fixed side",
        **details,
    )


def _lpips(registry, pred, gt, masks, boxes=None) -> dict[str, MetricResult]:
    names = ["lpips"] + (["lpips_masked"] if masks is not None else [])
    names += ["lpips_mouth"] if boxes is not None else []
    try:
        weight = registry.find("lpips-alexnet")
    except WeightsError as error:
        return {n: _missing(n, str(error)) for n in names}
    model = lpips_metric.build_lpips_alex(weight.path)
    info = {"net": "alex", "version": "0.1", "inputs": "[-1,1] (normalize=True)"}
    out = {
        "lpips": _frames_mean(
            "lpips", lpips_metric.lpips_per_frame(model, pred, gt), weight.weight_id, **info
        )
    }
    if masks is not None:
        out["lpips_masked"] = _frames_mean(
            "lpips_masked",
            lpips_metric.lpips_masked_per_frame(model, pred, gt, masks),
            weight.weight_id,
            **info,
        )
    if boxes is not None:
        if boxes.size < mouth.LPIPS_MIN_SIDE:
            out["lpips_mouth"] = _missing(
                "lpips_mouth",
                f"lip box of {boxes.size} px < {mouth.LPIPS_MIN_SIDE} px (AlexNet)",
                weight.weight_id,
            )
        else:
            out["lpips_mouth"] = _mouth_mean(
                "lpips_mouth",
                lambda p, g: lpips_metric.lpips_per_frame(model, p, g),
                pred,
                gt,
                boxes,
                weight.weight_id,
                **info,
            )
    return out


def _lmd_fan(registry, pred_u8, gt_u8, pred_landmarks, gt_landmarks, resolution) -> dict[str, MetricResult]:
    """LMD on 2D-FAN points, the boxes from the MediaPipe detections of each frame."""
    names = ("lmd", "lmd_face")
    try:
        weight = registry.find(fan.FAN_WEIGHT)
        model = fan.build_fan(weight.path)
    except (WeightsError, DependencyError) as error:
        return {n: _missing(n, str(error)) for n in names}
    pred68 = fan.fan_landmarks(model, pred_u8, fan.boxes_from_mediapipe(*pred_landmarks))
    gt68 = fan.fan_landmarks(model, gt_u8, fan.boxes_from_mediapipe(*gt_landmarks))
    found = lmd.lmd_from_ibug68(pred68[0], pred68[1], gt68[0], gt68[1])
    detector = f"2D-FAN-4 (face-alignment {fan.fan_version()}), boxes: {fan.BOX_RULE}"
    return _lmd_results(found, resolution, detector, weight.weight_id)


def _lmd(pred_landmarks, gt_landmarks, resolution: str) -> dict[str, MetricResult]:
    found = lmd.lmd_from_mediapipe(pred_landmarks[0], pred_landmarks[1], gt_landmarks[0], gt_landmarks[1])
    return _lmd_results(found, resolution, "mediapipe-facemesh-478")


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
        out[name] = _frames_mean(
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


def _lse(registry, pred_u8, pred_landmarks, audio, fps, boxes: str = "mediapipe") -> dict[str, MetricResult]:
    names = ("lse_d", "lse_c")
    if audio is None:
        return {n: _missing(n, "no audio given") for n in names}
    try:
        weight = registry.find(registry.syncnet)
    except WeightsError as error:
        return {n: _missing(n, str(error)) for n in names}
    points, detected = pred_landmarks
    frames = syncnet.resample_frames_to_25fps(pred_u8, fps)
    index = syncnet.resample_frames_to_25fps(np.arange(len(pred_u8)), fps)
    if boxes == "s3fd":
        try:
            boxes_weight = registry.find(s3fd.S3FD_WEIGHT)
            detector = s3fd.build_s3fd(boxes_weight.path)
            track, box_details = s3fd.track_from_detections(s3fd.detect_faces(detector, frames), len(frames))
            box_details["face_boxes_weight_id"] = boxes_weight.weight_id
        except (WeightsError, DependencyError, InputError) as error:
            return {n: _missing(n, str(error), weight.weight_id) for n in names}
    elif not np.asarray(detected).any():
        return {
            n: _missing(n, "no face detected in any predicted frame: no face track to crop", weight.weight_id)
            for n in names
        }
    else:
        track = syncnet.face_boxes_from_landmarks(points[index], detected[index])
        box_details = {
            "face_crop": "MediaPipe landmark box, syncnet_python crop rule (not S3FD)",
            "frames_without_face": int((~np.asarray(detected)).sum()),
        }
    model = syncnet.load_syncnet(weight.path)
    crops = syncnet.crop_faces(frames, track)
    try:
        result = syncnet.lse_from_crops(model, crops, audio)
    except InputError as error:
        return {n: _missing(n, str(error), weight.weight_id) for n in names}
    details = {
        "offset_frames": result.offset,
        "windows": result.num_windows,
        "mdist": result.mdist.tolist(),
        "weights_origin": weight.origin,
        "weights_default_filled": len(model.default_filled_keys),  # BatchNorm counters the file lacked
        **box_details,
        "fps_in": fps,
    }
    return {
        "lse_d": MetricResult("lse_d", result.lse_d, "ok", "", weight.weight_id, dict(details)),
        "lse_c": MetricResult("lse_c", result.lse_c, "ok", "", weight.weight_id, dict(details)),
    }
