"""What several stages read the same way: the rig summary in their inputs, the frame-file check, the
background plates."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from capture_tools import frames as fr
from capture_tools.ingest import Context
from gsbench.errors import MediaError


def rig_summary(ctx: Context) -> dict:
    """The parts of rig.yaml that stages' results depend on (a key of their inputs)."""
    rig = ctx.rig
    return {
        "fps": rig.fps,
        "sample_rate": rig.sample_rate,
        "frontal": rig.frontal_camera,
        "cameras": [dataclasses.asdict(c) for c in rig.cameras],
        "takes": [dataclasses.asdict(t) for t in rig.takes],
        "calibration": dataclasses.asdict(rig.calibration) if rig.calibration else None,
        "background": rig.background,
    }


def camera_intrinsics(calibration: dict) -> dict:
    """Raw-image K, dist and size per camera of the calibrate stage's result (what undistortion reads)."""
    return {c: {k: v[k] for k in ("K", "dist", "width", "height")} for c, v in calibration["cameras"].items()}


def background_plate_sha256(probe: dict) -> dict:
    return {k: v["sha256"] for k, v in probe["files"].items() if k.startswith("background/")}


def all_frames_exist(folder: Path, num_frames: int, suffix: str) -> bool:
    """Every frame file ``00000 ... num_frames - 1`` is in ``folder`` (one listing, not one stat per
    frame): the same check ``benchmark.dataset`` makes before a run, so that a frame deleted from a
    finished dataset makes ingest redo the stage that writes it, as the run's error message advises."""
    try:
        present = set(os.listdir(folder))
    except OSError:
        return False
    return all(f"{index:05d}{suffix}" in present for index in range(num_frames))


def read_plate(camera: str, path: Path, calibration: dict) -> np.ndarray:
    """A camera's clean plate as RGB; it must have the camera's raw video size."""
    plate = fr.read_image(path)
    if plate.shape[:2] != (calibration["height"], calibration["width"]):
        raise MediaError(
            f"camera {camera}: background plate is {plate.shape[1]}x{plate.shape[0]}, the "
            f"videos are {calibration['width']}x{calibration['height']}",
            path=path,
            fix="re-export the plate at the video resolution",
        )
    return plate


def undistorter(calibration: dict, size: tuple[int, int]) -> fr.Undistorter:
    """The undistort-and-resize map of one camera (calibrate result entry) to the dataset size."""
    c = calibration
    return fr.Undistorter(np.asarray(c["K"]), np.asarray(c["dist"]), c["width"], c["height"], tuple(size))
