"""Landmarks: MediaPipe's 478 face landmarks (:func:`tracking.landmarks.detect_landmarks`) in every
written frame, one camera of one take per job; ``sequences/<seq>/landmarks.npz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from capture_tools import frames as fr
from capture_tools.ingest import Context, Stage, need, run_jobs
from gsbench.io import save_npz


def inputs(ctx: Context) -> dict:
    return {"frames": need(ctx, "frames")}


def outputs_exist(ctx: Context, result: dict) -> bool:
    return all((ctx.sequence_dir(t) / "landmarks.npz").exists() for t in result["detection_rate"])


def _landmarks_job(job: dict) -> tuple[str, str, np.ndarray, np.ndarray]:
    from tracking.landmarks import detect_landmarks

    folder = Path(job["folder"])
    images = np.stack([fr.read_image(folder / f"{i:05d}.jpg") for i in range(job["num_frames"])])
    points, detected = detect_landmarks(images)
    return job["take"], job["camera"], points.astype(np.float32), detected.astype(bool)


def run(ctx: Context) -> dict:
    frames = ctx.results["frames"]
    jobs = [{"take": take_id, "camera": camera, "num_frames": info["num_frames"],
             "folder": str(ctx.sequence_dir(take_id) / "images" / camera)}
            for take_id, info in frames["sequences"].items() for camera in ctx.rig.camera_ids]  # fmt: skip
    arrays: dict[str, dict[str, np.ndarray]] = {t: {} for t in frames["sequences"]}
    rates: dict[str, dict[str, float]] = {t: {} for t in frames["sequences"]}
    processed = 0
    for take_id, camera, points, detected in run_jobs(ctx, _landmarks_job, jobs, "landmarks"):
        arrays[take_id][camera] = points
        arrays[take_id][f"{camera}_detected"] = detected
        rates[take_id][camera] = float(detected.mean())
        processed += len(detected)
    for take_id, take_arrays in arrays.items():
        save_npz(ctx.sequence_dir(take_id) / "landmarks.npz", **take_arrays)
    return {"detection_rate": {t: dict(sorted(v.items())) for t, v in rates.items()}, "num_frames": processed}


STAGE = Stage(
    "landmarks", run, inputs, lambda p: {}, outputs_exist, outputs=("sequences/{sequence}/landmarks.npz",)
)
