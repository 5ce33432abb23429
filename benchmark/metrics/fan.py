"""LMD on 2D-FAN landmarks (Bulat & Tzimiropoulos 2017), the detector of the talking-head papers' LMD.

ER-NeRF, GeneFace, SyncTalk and TalkingGaussian compute LMD on the 68 iBUG points of ``face_alignment``'s
2D-FAN (``FaceAlignment(LandmarksType.TWO_D)``, network 2DFAN-4). This backend runs that package's own
``get_landmarks_from_image`` (crop around the face box, 256x256 input, horizontal-flip averaging,
``get_preds_fromhm`` sub-pixel decoding) with the FAN weights of the weight registry (``fan-2d``: the
package's ``2DFAN4-11f355bf06.pth.tar``, accepted only with that sha256 prefix), never downloaded at run
time. MediaPipe (``tracking.landmarks``) stays the offline default.

Face boxes: the papers' code runs S3FD; here the box of each frame is the bounding box of its MediaPipe
landmarks (prediction: detected on the rendered frame; ground truth: the dataset's), passed to
``get_landmarks_from_image(detected_faces=...)``, so no detector weights are needed; the box rule is
recorded with every figure. The first landmark call of a process compiles the package's numba kernels
(measured: 33 s on the 2-core machine; later calls: 24 ms a frame at 192x192 with the stand-in network,
the 2DFAN-4 forward itself not measured here, no weights). ``face-alignment`` is installed without its
dependencies (its requirements
pull numpy 2 and a second OpenCV wheel, ``opencv-python``, beside our ``opencv-contrib-python``): see
``scripts/setup.sh``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gsbench.errors import DependencyError, WeightsError
from gsbench.pretrained import PretrainedNetwork, check_state_dict, read_state_dict

FAN_WEIGHT = "fan-2d"
NETWORK_SIZE = 4
BOX_RULE = "MediaPipe landmark bounding box (the papers: S3FD)"


def _face_alignment():
    try:
        import face_alignment
    except ImportError as error:
        raise DependencyError(
            f"the FAN backend needs the face-alignment package ({error})",
            fix="pip install --no-deps face-alignment==1.5.0 numba (scripts/setup.sh does)",
        ) from error
    return face_alignment


def fan_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("face-alignment")


def expected_fan_shapes() -> dict[str, tuple[int, ...]]:
    from face_alignment.models import FAN

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in FAN(NETWORK_SIZE).state_dict().items()}


def check_fan_state_dict(path: Path) -> str | None:
    """None if ``path`` is a 2DFAN-4 state dict (every key and shape of ``face_alignment.models.FAN(4)``)."""
    try:
        _face_alignment()
    except DependencyError as error:
        return str(error)
    return check_state_dict(path, expected_fan_shapes(), "2DFAN-4")


FAN_2D = PretrainedNetwork(
    name=FAN_WEIGHT,
    filename="2DFAN4-11f355bf06.pth.tar",
    url="https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",
    description="face_alignment 1.5.0's 2DFAN-4 (68 iBUG points): the LMD detector of ER-NeRF, "
    "GeneFace, SyncTalk, TalkingGaussian (gsbench metrics/run --lmd-detector fan)",
    used_by="metric lmd with --lmd-detector fan (benchmark.metrics.fan)",
    sha256_prefix="11f355bf06",
    checksum_note="full sha256 unpublished; the file name's sha256 prefix (torch hub convention) is "
    "checked, and every key and shape of face_alignment.models.FAN(4)",
    check=check_fan_state_dict,
)


def build_fan(path: Path, device: str = "cpu"):
    """``face_alignment.FaceAlignment`` (2D, 2DFAN-4, flip averaging) with the registered weights at
    ``path`` instead of a download, and the box-reading ``folder`` detector (boxes are passed in)."""
    fa = _face_alignment()
    from face_alignment.models import FAN

    problem = check_fan_state_dict(Path(path))
    if problem is not None:
        raise WeightsError(
            problem, path=path, fix="register the face_alignment 2DFAN4 file: gsbench weights add fan-2d FILE"
        )

    class RegisteredFAN(fa.FaceAlignment):
        def _load_native(self, network_name, network_size, device, dtype):  # the package's, minus the URL
            net = FAN(network_size)
            net.load_state_dict(read_state_dict(path))
            return net.to(device, dtype=dtype).eval()

    return RegisteredFAN(
        fa.LandmarksType.TWO_D,
        network_size=NETWORK_SIZE,
        device=device,
        face_detector="folder",
        compile=False,
    )


def boxes_from_mediapipe(points: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """``[T, 4]`` (x0, y0, x1, y1) bounding boxes of MediaPipe landmarks ``[T, 478, 2]``; NaN where none."""
    boxes = np.full((len(points), 4), np.nan)
    detected = np.asarray(detected, bool)
    if detected.any():
        pts = np.asarray(points, np.float64)[detected]
        boxes[detected] = np.concatenate([np.nanmin(pts, axis=1), np.nanmax(pts, axis=1)], axis=1)
    return boxes


@torch.no_grad()
def fan_landmarks(model, frames: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """iBUG-68 points ``[T, 68, 2]`` (NaN where not detected) and flags ``[T]`` of RGB uint8 frames
    ``[T, H, W, 3]`` with one face box ``[T, 4]`` per frame (NaN: no face)."""
    points = np.full((len(frames), 68, 2), np.nan, np.float32)
    detected = np.zeros(len(frames), bool)
    for t, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        if not np.isfinite(box).all():
            continue
        found = model.get_landmarks_from_image(np.ascontiguousarray(frame), detected_faces=[box])
        if found:
            points[t] = np.asarray(found[0], np.float32)[:, :2]
            detected[t] = True
    return points, detected
