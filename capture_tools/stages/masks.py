"""Masks: a foreground mask per written frame, by differencing against the camera's clean plate or,
without one, MediaPipe selfie segmentation (:mod:`capture_tools.masks`), one camera of one take per job."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from capture_tools import frames as fr
from capture_tools import masks as mk
from capture_tools.ingest import Context, Stage, clear_dir, need, run_jobs
from capture_tools.stages.common import all_frames_exist, background_plate_sha256, read_plate, undistorter


def inputs(ctx: Context) -> dict:
    frames = need(ctx, "frames")
    probe = need(ctx, "probe")
    return {
        "frames": frames,
        "background": background_plate_sha256(probe),
    }


def outputs_exist(ctx: Context, result: dict) -> bool:
    frames = ctx.results.get("frames")
    if frames is None:
        return False
    for take_id, info in frames["sequences"].items():
        for camera in ctx.rig.camera_ids:
            if not all_frames_exist(ctx.sequence_dir(take_id) / "masks" / camera, info["num_frames"], ".png"):
                return False
    return True


def _masks_job(job: dict) -> tuple[str, str, str, float]:
    """One camera of one take: a mask per written frame (plate differencing, else selfie segmentation)."""
    folder = Path(job["folder"])
    params = mk.MaskParams(**job["params"])
    plate = None
    segmenter = None
    if job["plate"] is not None:
        plate = undistorter(job["calibration"], job["size"])(fr.read_image(job["plate"]))
    else:
        segmenter = mk.SelfieSegmenter(params)
    fractions = []
    try:
        for index in range(job["num_frames"]):
            image = fr.read_image(folder / "images" / job["camera"] / f"{index:05d}.jpg")
            mask = mk.plate_mask(image, plate, params) if plate is not None else segmenter(image)
            fractions.append(float(mask.mean()))
            mk.write_mask(folder / "masks" / job["camera"] / f"{index:05d}.png", mask)
    finally:
        if segmenter is not None:
            segmenter.close()
    method = "background plate" if plate is not None else "mediapipe selfie segmentation"
    return job["take"], job["camera"], method, float(np.mean(fractions))


def run(ctx: Context) -> dict:
    rig = ctx.rig
    frames = ctx.results["frames"]
    calibration = ctx.results["calibrate"]["cameras"]
    for camera in rig.camera_ids:  # every plate checked before any mask is written
        path = rig.background_plate(camera)
        if path is not None:
            read_plate(camera, path, calibration[camera])
    jobs = []
    for take_id, info in frames["sequences"].items():
        clear_dir(ctx.sequence_dir(take_id) / "masks")
        for camera in rig.camera_ids:
            plate = rig.background_plate(camera)
            jobs.append({
                "take": take_id, "camera": camera, "folder": str(ctx.sequence_dir(take_id)),
                "num_frames": info["num_frames"], "plate": str(plate) if plate else None,
                "calibration": calibration[camera], "size": frames["image_size"],
                "params": dataclasses.asdict(ctx.params.masks),
            })  # fmt: skip
    methods: dict[str, str] = {}
    coverage: dict[str, dict[str, float]] = {t: {} for t in frames["sequences"]}
    for take_id, camera, method, fraction in run_jobs(ctx, _masks_job, jobs, "masks"):
        methods[camera] = method
        coverage[take_id][camera] = fraction
    return {
        "method": dict(sorted(methods.items())),
        "foreground_fraction": {t: dict(sorted(v.items())) for t, v in coverage.items()},
    }


STAGE = Stage(
    "masks",
    run,
    inputs,
    lambda p: dataclasses.asdict(p.masks),
    outputs_exist,
    outputs=("sequences/{sequence}/masks/{camera}/{frame:05d}.png",),
)
