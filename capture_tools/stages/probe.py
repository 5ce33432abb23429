"""Probe: hash every raw file rig.yaml names, probe every video and master audio (``gsbench.media``),
and refuse what later stages cannot use (missing, cut short, other rate or size)."""

from __future__ import annotations

import concurrent.futures
from collections import Counter
from pathlib import Path

import numpy as np

from capture_tools.ingest import Context, Stage, hash_inputs
from capture_tools.rig import RigSpec
from capture_tools.stages.common import rig_summary
from gsbench import media
from gsbench.errors import MediaError
from gsbench.progress import track, warn_once


def inputs(ctx: Context) -> dict:
    return {"rig": rig_summary(ctx), "files": hash_inputs(ctx.rig, ctx.file_hashes)}


def run(ctx: Context) -> dict:
    rig = ctx.rig
    files = hash_inputs(rig, ctx.file_hashes)
    videos: dict[str, dict] = {}
    jobs = []
    for take in rig.takes:
        for camera in rig.camera_ids:
            jobs.append(
                (f"takes/{take.id}/{camera}", rig.take_video(take.id, camera), camera, f"take {take.id}")
            )
    if rig.calibration is not None:
        for camera in rig.camera_ids:
            jobs.append((f"calibration/{camera}", rig.calibration_video(camera), camera, "calibration"))

    def probe_one(job: tuple) -> media.VideoInfo:
        _, path, camera, where = job
        if not path.exists():
            raise MediaError(
                f"camera {camera}, {where}: video file is missing",
                path=path,
                fix="copy the file into the session, or remove the camera/take from rig.yaml",
            )
        try:
            return media.probe_video(path, folder_fps=rig.fps)
        except MediaError as error:
            raise MediaError(f"camera {camera}, {where}: {error}") from error

    # ffmpeg does the work: threads keep `workers` probes running (results and errors in job order).
    with concurrent.futures.ThreadPoolExecutor(max(1, ctx.params.workers)) as pool:
        infos = list(track(pool.map(probe_one, jobs), "probe: videos", total=len(jobs)))
    for (key, path, camera, where), info in zip(jobs, infos, strict=True):
        if abs(info.fps - rig.fps) > 1e-3 * rig.fps:
            raise MediaError(
                f"camera {camera}, {where}: frame rate {info.fps:g} fps differs from rig.yaml's "
                f"fps {rig.fps:g}",
                path=path,
                fix="re-export the video at the rig frame rate",
            )
        entry = info.to_dict()
        entry["path"] = files[key]["path"]
        entry["sha256"] = files[key]["sha256"]
        videos[key] = entry
    _check_take_lengths(rig, jobs, videos)
    # Every camera must deliver the same resolution: the odd ones out are named against the majority.
    sizes = Counter((v["width"], v["height"]) for v in videos.values())
    common = sizes.most_common(1)[0][0]
    for key, _, camera, where in jobs:
        size = (videos[key]["width"], videos[key]["height"])
        if size != common:
            raise MediaError(
                f"camera {camera}, {where}: resolution {size[0]}x{size[1]} differs from the "
                f"{common[0]}x{common[1]} of the other videos",
                path=rig.root / videos[key]["path"],
                fix="export every camera at the same resolution",
            )
    audio = {}
    for take in rig.takes:
        path = rig.take_audio(take.id)
        if not path.exists():
            raise MediaError(
                f"take {take.id}: master audio is missing",
                path=path,
                fix=f"put the master microphone recording at takes/{take.id}/{rig.master_audio}",
            )
        duration, rate = media.probe_audio(path)
        _check_sample_rate(rig, path, take.id, rate)
        audio[take.id] = {
            "duration_s": duration,
            "sample_rate": rate,
            "sha256": files[f"takes/{take.id}/audio"]["sha256"],
        }
    return {"files": files, "videos": videos, "audio": audio, "image_size": list(common)}


MIN_SAMPLE_RATE = 16000  # every audio feature of the benchmark reads 16 kHz (docs/interfaces.md)


def _check_sample_rate(rig: RigSpec, path: Path, take_id: str, rate: int) -> None:
    """The master audio's rate must be the one rig.yaml declares; below 16 kHz it is accepted with a
    warning (ingest resamples to 16 kHz, but nothing above rate / 2 was ever recorded)."""
    if rate != rig.sample_rate:
        raise MediaError(
            f"take {take_id}: master audio is {rate} Hz, rig.yaml says audio.sample_rate: {rig.sample_rate}",
            path=path,
            fix=f"set audio.sample_rate: {rate} in {rig.rig_file} if the file is right, else re-export it",
        )
    if rate < MIN_SAMPLE_RATE:
        warn_once(
            f"{path}: master audio is {rate} Hz, below the {MIN_SAMPLE_RATE} Hz the audio features read; "
            f"it is upsampled, so the dataset audio holds nothing above {rate // 2} Hz (record at >= 16 kHz)"
        )


SHORT_CAMERA_FRACTION = 0.9  # a camera with fewer frames than this x its take's median is cut short


def _check_take_lengths(rig: RigSpec, jobs: list[tuple], videos: dict[str, dict]) -> None:
    """Every camera records the whole take (all start within a fraction of a second): one with far fewer
    frames than the take's other cameras was cut short, even when its own header agrees (a re-muxed or
    re-encoded partial copy), and would silently shorten the sequence to the frames it has."""
    groups: dict[str, list[tuple[str, Path, str, str]]] = {}
    for key, path, camera, where in jobs:
        groups.setdefault(where, []).append((key, path, camera, where))
    for members in groups.values():
        counts = [videos[key]["num_frames"] for key, *_ in members]
        median = float(np.median(counts))
        for key, path, camera, where in members:
            count = videos[key]["num_frames"]
            if count < SHORT_CAMERA_FRACTION * median and median - count > media.MAX_MISSING_FRAMES:
                raise MediaError(
                    f"camera {camera}, {where}: {count} frames, the other cameras of the {where} have "
                    f"{median:g} (median): the file was cut short",
                    path=path,
                    fix="re-copy the camera's whole recording",
                )


STAGE = Stage("probe", run, inputs, lambda p: {}, outputs=())
