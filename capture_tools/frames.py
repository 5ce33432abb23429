"""Frames on the master timeline: resample each camera at the dataset fps, undistort, resize.

Placement: sequence frame ``k`` is at master time ``t_k = k / fps_out`` (DESIGN.md). Camera ``c`` with
sync offset ``o_c`` (master time of its frame 0) and rate ``fps_c`` holds that instant at fractional
index ``p = (t_k - o_c) · fps_c``. ``nearest`` takes frame ``round(p)`` (a timing error of at most half
a camera frame, no ghosting: the default, as blending two frames of a moving mouth doubles edges);
``linear`` blends frames ``floor(p)`` and ``floor(p) + 1`` with weights ``1 - frac(p)`` and
``frac(p)``. Indices outside the video are clamped to its first/last frame; the number of frames
clamped by more than half a frame is reported.

The number of frames ``T`` of a sequence: every ``t_k`` before the end of the master audio and before
the end of the camera that stops first (``o_c + N_c / fps_c``).

Undistortion keeps the raw camera matrix ``K`` (the undistorted image has the same focal length and
principal point; pixels that map outside the raw image are black), then the image is resized to the
dataset size (area filter when shrinking); :func:`capture_tools.calibrate.undistorted_size_K` gives the
matching intrinsics.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FrameParams:
    fps: float | None = None  # dataset fps; None: the rig fps
    size: tuple[int, int] | None = None  # (width, height); None: the raw size
    jpeg_quality: int = 95
    interpolation: str = "nearest"  # or "linear" (see module docstring)


def num_sequence_frames(
    fps_out: float,
    audio_duration_s: float,
    offsets_s: dict[str, float],
    num_frames: dict[str, int],
    fps_cameras: dict[str, float],
) -> int:
    end = min([audio_duration_s] + [offsets_s[c] + num_frames[c] / fps_cameras[c] for c in offsets_s])
    return max(0, int(np.ceil(end * fps_out - 1e-9)))


@dataclass(frozen=True)
class SamplePlan:
    lower: np.ndarray  # [T] int camera frame index
    upper: np.ndarray  # [T] int
    weight_upper: np.ndarray  # [T] float in [0, 1]
    clamped: int  # frames whose time falls outside the video by more than half a frame


def sample_plan(
    num_out: int, fps_out: float, offset_s: float, fps_camera: float, num_frames: int, interpolation: str
) -> SamplePlan:
    position = (np.arange(num_out) / fps_out - offset_s) * fps_camera
    clamped = int(np.sum((position < -0.5) | (position > num_frames - 0.5)))
    position = np.clip(position, 0.0, num_frames - 1.0)
    if interpolation == "nearest":
        index = np.floor(position + 0.5).astype(np.int64).clip(0, num_frames - 1)
        return SamplePlan(index, index, np.zeros(num_out), clamped)
    if interpolation != "linear":
        raise ValueError(f"unknown interpolation {interpolation!r}")
    lower = np.floor(position).astype(np.int64)
    upper = np.minimum(lower + 1, num_frames - 1)
    return SamplePlan(lower, upper, position - lower, clamped)


def resample(frames: np.ndarray, plan: SamplePlan) -> np.ndarray:
    """``[T_out, H, W, 3] uint8`` from camera frames ``[N, H, W, 3]`` following ``plan``."""
    if not np.any(plan.weight_upper):
        return frames[plan.lower]
    w = plan.weight_upper[:, None, None, None].astype(np.float32)
    blended = frames[plan.lower].astype(np.float32) * (1 - w) + frames[plan.upper].astype(np.float32) * w
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


class Undistorter:
    """Undistort (same K) and resize images of one camera; maps are computed once."""

    def __init__(self, K: np.ndarray, dist: np.ndarray, width: int, height: int, out_size: tuple[int, int]):
        self.map_x, self.map_y = cv2.initUndistortRectifyMap(
            np.asarray(K, np.float64),
            np.asarray(dist, np.float64),
            None,
            np.asarray(K, np.float64),
            (width, height),
            cv2.CV_32FC1,
        )
        self.out_size = out_size
        self.shrink = out_size[0] < width or out_size[1] < height
        self.resize = out_size != (width, height)

    def __call__(self, image: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
        undistorted = cv2.remap(image, self.map_x, self.map_y, interpolation, borderMode=cv2.BORDER_CONSTANT)
        if not self.resize:
            return undistorted
        return cv2.resize(
            undistorted, self.out_size, interpolation=cv2.INTER_AREA if self.shrink else cv2.INTER_LINEAR
        )


def write_jpeg(path, rgb: np.ndarray, quality: int) -> None:
    from gsbench.io import atomic_path

    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {path}")
        tmp.write_bytes(data.tobytes())


def write_png(path, rgb: np.ndarray) -> None:
    """Lossless RGB image (the dataset's clean plates, ``backgrounds/<cam>.png``)."""
    from gsbench.io import atomic_path

    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        tmp.write_bytes(data.tobytes())


def read_image(path) -> np.ndarray:
    """RGB uint8 ``[H,W,3]`` of a JPEG/PNG written by this stage (or a background plate)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        from gsbench.errors import MediaError

        raise MediaError("cannot read image", path=path, fix="re-run the stage that wrote it with --force")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
