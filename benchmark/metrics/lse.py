"""LSE-D and LSE-C, the SyncNet lip-sync metrics, on a rendered clip and its audio.

The definitions are in :mod:`benchmark.metrics.syncnet` (``lse_from_crops``: syncnet_python's
``evaluate``); the face crops come from MediaPipe landmark boxes (default) or syncnet_python's S3FD tracks
(:mod:`benchmark.metrics.s3fd`, ``lse_boxes="s3fd"``). The SyncNet is the weight registry's
``syncnet`` choice: the official ``syncnet-v2`` or one trained here (``syncnet-gsbench-<sha8>``).
"""

from __future__ import annotations

import numpy as np

from benchmark.metrics import s3fd, syncnet
from benchmark.metrics.registry import Clip, Metric, MetricResult, missing, register_metric
from gsbench.errors import DependencyError, InputError, WeightsError
from gsbench.metric_table import MetricInfo

LSE_BOXES = ("mediapipe", "s3fd")  # SyncNet crop boxes: MediaPipe landmarks (default) or run_pipeline's S3FD


def check_boxes(name: str) -> None:
    if name not in LSE_BOXES:
        raise InputError(f"unknown LSE face boxes {name!r}", fix=f"choose from {', '.join(LSE_BOXES)}")


def compute_lse(clip: Clip) -> dict[str, MetricResult]:
    names = ("lse_d", "lse_c")
    if clip.audio is None:
        return {n: missing(n, "no audio given") for n in names}
    registry = clip.weights
    try:
        weight = registry.find(registry.syncnet)
    except WeightsError as error:
        return {n: missing(n, str(error)) for n in names}
    pred_u8 = clip.pred_u8
    points, detected = clip.pred_landmarks
    frames = syncnet.resample_frames_to_25fps(pred_u8, clip.fps)
    index = syncnet.resample_frames_to_25fps(np.arange(len(pred_u8)), clip.fps)
    if clip.lse_boxes == "s3fd":
        try:
            boxes_weight = registry.find(s3fd.S3FD_FACE.name)
            detector = s3fd.build_s3fd(boxes_weight.path)
            track, box_details = s3fd.track_from_detections(s3fd.detect_faces(detector, frames), len(frames))
            box_details["face_boxes_weight_id"] = boxes_weight.weight_id
        except (WeightsError, DependencyError, InputError) as error:
            return {n: missing(n, str(error), weight.weight_id) for n in names}
    elif not np.asarray(detected).any():
        return {
            n: missing(n, "no face detected in any predicted frame: no face track to crop", weight.weight_id)
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
        result = syncnet.lse_from_crops(model, crops, clip.audio)
    except InputError as error:
        return {n: missing(n, str(error), weight.weight_id) for n in names}
    details = {
        "offset_frames": result.offset,
        "windows": result.num_windows,
        "mdist": result.mdist.tolist(),
        "weights_origin": weight.origin,
        "weights_default_filled": len(model.default_filled_keys),  # BatchNorm counters the file lacked
        **box_details,
        "fps_in": clip.fps,
    }
    return {
        "lse_d": MetricResult("lse_d", result.lse_d, "ok", "", weight.weight_id, dict(details)),
        "lse_c": MetricResult("lse_c", result.lse_c, "ok", "", weight.weight_id, dict(details)),
    }


LSE = register_metric(
    Metric(
        name="lse_d",
        also_selected_by=("lse_c",),  # one SyncNet pass gives both
        outputs=(
            MetricInfo(
                "lse_d",
                "lower",
                "LSE-D",
                sync=True,
                column=120,
                convention="LSE-D / LSE-C: SyncNet (weights above) on 224x224 face crops at 25 fps "
                "(syncnet_python's crop rule and `evaluate`), face boxes from the detector below "
                "(syncnet_python uses S3FD). `lse_d`/`lse_c` are frame-weighted over a subject's test "
                "videos (each SyncNet window counts once); `lse_d_video`/`lse_c_video` are the mean of "
                "per-video scores, the averaging of Wav2Lip's and syncnet_python's scripts. Mean rows "
                "average the subjects.",
            ),
            MetricInfo("lse_c", "higher", "LSE-C", sync=True, column=130, ranks=("cross-id",)),
        ),
        compute=compute_lse,
        order=50,
        networks=(syncnet.SYNCNET_V2, s3fd.S3FD_FACE),
        # benchmark.results: the plain mean of the per-video scores (Wav2Lip's / syncnet_python's averaging)
        aggregates=(
            MetricInfo("lse_d_video", "lower", "LSE-D (mean of per-video)", sync=True, column=140),
            MetricInfo("lse_c_video", "higher", "LSE-C (mean of per-video)", sync=True, column=150),
        ),
    )
)
