"""Frames: each take's audio cut to the sequence and every camera's frames placed on the master timeline,
undistorted and resized (:mod:`capture_tools.frames`), one camera of one take per job."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from capture_tools import frames as fr
from capture_tools.ingest import Context, Stage, clear_dir, need, run_jobs
from capture_tools.stages.common import all_frames_exist, camera_intrinsics, undistorter
from gsbench import media
from gsbench.errors import StageError


def inputs(ctx: Context) -> dict:
    sync = need(ctx, "sync")
    calibration = need(ctx, "calibrate")
    probe = need(ctx, "probe")
    return {
        "sync": sync["takes"],
        "cameras": camera_intrinsics(calibration),
        "videos": {k: v["sha256"] for k, v in probe["videos"].items() if k.startswith("takes/")},
        "audio": probe["audio"],
        "image_size": probe["image_size"],
    }


def outputs_exist(ctx: Context, result: dict) -> bool:
    for take_id, info in result["sequences"].items():
        for camera in ctx.rig.camera_ids:
            if not all_frames_exist(
                ctx.sequence_dir(take_id) / "images" / camera, info["num_frames"], ".jpg"
            ):
                return False
        if not (ctx.sequence_dir(take_id) / "audio.wav").exists():
            return False
    return True


def _frames_job(job: dict) -> tuple[str, str, int]:
    """One camera of one take: decode, place on the master timeline, undistort, resize, write JPEGs."""
    info, cal = job["info"], job["calibration"]
    undistort = undistorter(cal, job["size"])
    raw = media.read_frames(job["video"], info["width"], info["height"])
    plan = fr.sample_plan(
        job["num_out"], job["fps_out"], job["offset_s"], info["fps"], len(raw), job["interpolation"]
    )
    folder = Path(job["folder"])
    for index, image in enumerate(fr.resample(raw, plan)):
        fr.write_jpeg(folder / f"{index:05d}.jpg", undistort(image), job["jpeg_quality"])
    return job["take"], job["camera"], plan.clamped


def run(ctx: Context) -> dict:
    rig, params = ctx.rig, ctx.params.frames
    sync = ctx.results["sync"]["takes"]
    calibration = ctx.results["calibrate"]["cameras"]
    videos = ctx.results["probe"]["videos"]
    fps_out = ctx.fps_out()
    size = ctx.size_out()
    sequences: dict[str, dict] = {}
    jobs = []
    for take in rig.takes:
        offsets = {c: sync[take.id]["cameras"][c]["offset_s"] for c in rig.camera_ids}
        infos = {c: videos[f"takes/{take.id}/{c}"] for c in rig.camera_ids}
        num_out = fr.num_sequence_frames(
            fps_out,
            sync[take.id]["audio_duration_s"],
            offsets,
            {c: i["num_frames"] for c, i in infos.items()},
            {c: i["fps"] for c, i in infos.items()},
        )
        if num_out == 0:
            raise StageError(
                f"take {take.id}: the cameras and the master audio do not overlap in time",
                path=rig.take_audio(take.id),
                fix="check the take's files and the sync report",
            )
        sequence_dir = ctx.sequence_dir(take.id)
        clear_dir(sequence_dir / "images")
        audio = media.read_audio(rig.take_audio(take.id), 16000)
        num_samples = int(round(num_out / fps_out * 16000))
        audio = np.pad(audio[:num_samples], (0, max(0, num_samples - len(audio))))
        media.write_wav(sequence_dir / "audio.wav", audio, 16000)
        sequences[take.id] = {"num_frames": num_out, "clamped_frames": {}}
        for camera in rig.camera_ids:
            jobs.append({
                "take": take.id, "camera": camera, "video": str(rig.take_video(take.id, camera)),
                "info": infos[camera], "calibration": calibration[camera], "size": list(size),
                "num_out": num_out, "fps_out": fps_out, "offset_s": offsets[camera],
                "interpolation": params.interpolation, "jpeg_quality": params.jpeg_quality,
                "folder": str(sequence_dir / "images" / camera),
            })  # fmt: skip
    for take_id, camera, clamped in run_jobs(ctx, _frames_job, jobs, "frames"):
        sequences[take_id]["clamped_frames"][camera] = clamped
    for info in sequences.values():
        info["clamped_frames"] = dict(sorted(info["clamped_frames"].items()))
    return {
        "fps": fps_out,
        "image_size": list(size),  # [width, height] inside ingest; dataset.json stores [height, width]
        "interpolation": params.interpolation,
        "sequences": sequences,
    }


STAGE = Stage(
    "frames",
    run,
    inputs,
    lambda p: dataclasses.asdict(p.frames),
    outputs_exist,
    outputs=("sequences/{sequence}/audio.wav", "sequences/{sequence}/images/{camera}/{frame:05d}.jpg"),
)
