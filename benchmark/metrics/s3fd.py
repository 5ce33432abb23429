"""S3FD face boxes for LSE-D / LSE-C, as syncnet_python's ``run_pipeline`` makes them.

The official pipeline crops the SyncNet input around S3FD detections (Zhang et al. 2017, "S3FD: single shot
scale-invariant face detector"): every 25 fps frame is scanned at ``facedet_scale`` 0.25 keeping boxes of
confidence > 0.9, detections are linked into tracks by IoU > 0.5 across gaps of at most
``num_failed_det`` 25 frames, box coordinates are interpolated over the gaps, and tracks whose mean box is
not larger than ``min_face_size`` 100 px are dropped. This module runs exactly that code from PyPI
``syncnet-python`` (``S3FD.detect_faces``, ``SyncNetPipeline._track``) with the registered ``sfd_face.pth``
(weight ``s3fd-sfd-face``, never downloaded), then turns the longest track into the ``(centre x, centre y,
half size)`` face track that :func:`benchmark.metrics.syncnet.crop_faces` crops with run_pipeline's rule
(half size ``max(w, h) / 2``, median filter 13).

Differences from run_pipeline, recorded with each figure: no scene cut (a test clip is one shot);
``min_track`` is 1 (clips shorter than run_pipeline's 100 frames are scored, as with the MediaPipe
boxes); frames outside the track keep the nearest tracked box and are counted.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from gsbench.errors import DependencyError, InputError, WeightsError
from gsbench.pretrained import PretrainedNetwork, check_state_dict, read_state_dict

S3FD_WEIGHT = "s3fd-sfd-face"
FACEDET_SCALE = 0.25
CONF_TH = 0.9
NUM_FAILED_DET = 25
MIN_FACE_SIZE = 100
BOX_MEDFILT = 13


def _detectors():
    try:
        from syncnet_python.detectors.s3fd import S3FD
        from syncnet_python.detectors.s3fd.nets import S3FDNet
        from syncnet_python.syncnet_pipeline import SyncNetPipeline
    except ImportError as error:
        raise DependencyError(
            f"S3FD boxes need the syncnet-python package ({error})", fix="pip install syncnet-python==0.2.3"
        ) from error
    return S3FD, S3FDNet, SyncNetPipeline


def check_s3fd_state_dict(path: Path) -> str | None:
    """None if ``path`` holds every key of syncnet_python's ``S3FDNet`` with the right shape."""
    try:
        _, S3FDNet, _ = _detectors()
    except DependencyError as error:
        return str(error)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in S3FDNet(device="cpu").state_dict().items()}
    return check_state_dict(path, expected, "S3FD")


S3FD_FACE = PretrainedNetwork(
    name=S3FD_WEIGHT,
    filename="sfd_face.pth",
    url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
    description="S3FD face detector of joonson/syncnet_python's run_pipeline: LSE crop boxes "
    "(gsbench metrics/run --lse-boxes s3fd)",
    used_by="metrics lse_d/lse_c with --lse-boxes s3fd (benchmark.metrics.s3fd)",
    checksum_note="no published checksum; accepted only if every key and shape of syncnet_python's "
    "S3FDNet matches",
    check=check_s3fd_state_dict,
)


def build_s3fd(path: Path, device: str = "cpu"):
    """syncnet_python's ``S3FD`` detector with the registered weights at ``path``."""
    S3FD, S3FDNet, _ = _detectors()
    problem = check_s3fd_state_dict(Path(path))
    if problem is not None:
        raise WeightsError(
            problem,
            path=path,
            fix="register syncnet_python's sfd_face.pth: gsbench weights add s3fd-sfd-face FILE",
        )
    net = S3FDNet(device=device)
    net.load_state_dict(read_state_dict(path))
    return S3FD(net=net.eval(), device=device)


def detect_faces(detector, frames: np.ndarray) -> list[list[dict]]:
    """Per frame of RGB uint8 ``[T, H, W, 3]``: ``[{"frame", "bbox": [x1, y1, x2, y2], "conf"}]``."""
    detections = []
    for index, frame in enumerate(frames):
        boxes = detector.detect_faces(np.ascontiguousarray(frame), conf_th=CONF_TH, scales=[FACEDET_SCALE])
        detections.append([{"frame": index, "bbox": b[:-1].tolist(), "conf": float(b[-1])} for b in boxes])
    return detections


def track_from_detections(detections: list[list[dict]], num_frames: int) -> tuple[np.ndarray, dict]:
    """The longest S3FD track as a face track ``[T, 3]`` (centre x, centre y, half size) for
    :func:`benchmark.metrics.syncnet.crop_faces`, and how it was made (details)."""
    from scipy import signal

    _, _, SyncNetPipeline = _detectors()
    # min_track 1: a track needs two detections to be interpolated (run_pipeline: 100 frames)
    cfg = SimpleNamespace(num_failed_det=NUM_FAILED_DET, min_track=1, min_face_size=MIN_FACE_SIZE)
    pipeline = SimpleNamespace(cfg=cfg, _iou=SyncNetPipeline._iou)
    tracks = SyncNetPipeline._track(pipeline, [list(d) for d in detections])
    if not tracks:
        raise InputError(
            f"no S3FD face track (confidence > {CONF_TH}, mean box > {MIN_FACE_SIZE} px) in the frames",
            fix="check that the rendered frames show a face of at least 100 px, or use the MediaPipe boxes",
        )
    track = max(tracks, key=lambda t: len(t["frame"]))
    frames, boxes = np.asarray(track["frame"], int), np.asarray(track["bbox"], np.float64)
    nearest = np.clip(np.searchsorted(frames, np.arange(num_frames)), 0, len(frames) - 1)
    boxes = boxes[nearest]  # frames outside the track hold the nearest tracked box
    face = np.stack(
        [
            (boxes[:, 0] + boxes[:, 2]) / 2,
            (boxes[:, 1] + boxes[:, 3]) / 2,
            np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2,
        ],
        axis=1,
    )
    if len(face) >= BOX_MEDFILT:
        face = np.stack([signal.medfilt(face[:, i], kernel_size=BOX_MEDFILT) for i in range(3)], axis=1)
    details = {
        "face_crop": "S3FD track (syncnet_python detect_faces/_track, scale 0.25, conf 0.9), "
        "run_pipeline crop rule",
        "tracks": len(tracks),
        "frames_outside_track": int(num_frames - len(frames)),
        "frames_without_detection": int(sum(1 for d in detections if not d)),
    }
    return face, details
