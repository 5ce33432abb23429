"""Calibrate: every camera's K, distortion and pose in the rig's world frame. With a calibration take:
ChArUco detection and bundle adjustment (:mod:`capture_tools.calibrate`) on the take's frames placed on
the frontal camera's clock (:func:`capture_tools.take_sync.calibration_offsets`); without one: structure
from motion (:mod:`capture_tools.sfm`) on synchronized instants of the takes (:mod:`capture_tools.instants`).
Writes ``reports/calibration.json`` + ``calibration.png``."""

from __future__ import annotations

import dataclasses

import numpy as np

from capture_tools import calibrate as cal
from capture_tools.ingest import Context, Stage, need, run_jobs
from capture_tools.instants import evenly_spaced_instants, grey_motion, stillest_instants
from capture_tools.plots import plot_calibration
from capture_tools.sfm import InstantChoice, SfmParams, candidate_instants, sfm_calibrate
from capture_tools.stages.common import rig_summary
from capture_tools.take_sync import calibration_offsets
from gsbench import media
from gsbench.progress import log

SFM_INSTANTS = InstantChoice()  # which synchronized instants structure from motion reconstructs


def _sfm_takes(ctx: Context, choice: InstantChoice) -> list[str]:
    if choice.resolved(ctx.rig.intrinsics is not None) == "first_take":
        return [ctx.rig.takes[0].id]
    return [take.id for take in ctx.rig.takes]


def inputs(ctx: Context) -> dict:
    probe = need(ctx, "probe")
    inputs = {
        "rig": {
            "calibration": rig_summary(ctx)["calibration"],
            "frontal": ctx.rig.frontal_camera,
            "cameras": ctx.rig.camera_ids,
            "fps": ctx.rig.fps,
        },
        "videos": {k: v for k, v in probe["videos"].items() if k.startswith("calibration/")},
    }
    if ctx.rig.calibration is None:  # SfM on synchronized frames of the takes
        takes = _sfm_takes(ctx, SFM_INSTANTS)
        sync = need(ctx, "sync")["takes"]
        inputs["sfm"] = {
            "sync": {take: sync[take] for take in takes},
            "videos": {
                k: v["sha256"]
                for k, v in probe["videos"].items()
                if k.startswith("takes/") and k.split("/")[1] in takes
            },
            "baseline": dataclasses.asdict(ctx.rig.baseline) if ctx.rig.baseline else None,
            "instants": dataclasses.asdict(SFM_INSTANTS),
            "params": dataclasses.asdict(SfmParams()),
        }
        if ctx.rig.intrinsics is not None:  # the file's content, not its path (a moved copy resumes)
            inputs["sfm"]["intrinsics_sha256"] = ctx.rig.intrinsics.sha256
    return inputs


def _first_take_instants(ctx: Context, count: int) -> list[dict]:
    """``count`` instants evenly spaced over the first take, each camera at its nearest frame."""
    rig = ctx.rig
    take = rig.takes[0].id
    sync = ctx.results["sync"]["takes"][take]["cameras"]
    infos = {c: ctx.results["probe"]["videos"][f"takes/{take}/{c}"] for c in rig.camera_ids}
    return evenly_spaced_instants(
        take,
        {c: sync[c]["offset_s"] for c in rig.camera_ids},
        {c: infos[c]["num_frames"] for c in rig.camera_ids},
        {c: infos[c]["fps"] for c in rig.camera_ids},
        count,
    )


def _still_instants(ctx: Context, choice: InstantChoice) -> list[dict]:
    """The stillest instants of all takes (:func:`capture_tools.instants.stillest_instants`), scored by
    the frontal camera's image change, decoded one take per job."""
    rig, videos, sync = ctx.rig, ctx.results["probe"]["videos"], ctx.results["sync"]["takes"]
    cameras, frontal = rig.camera_ids, rig.frontal_camera
    candidates = {}
    for take in rig.takes:
        infos = [videos[f"takes/{take.id}/{c}"] for c in cameras]
        candidates[take.id] = candidate_instants(
            np.array([sync[take.id]["cameras"][c]["offset_s"] for c in cameras]),
            np.array([info["num_frames"] for info in infos]),
            infos[0]["fps"],
        )
    jobs = [
        {
            "take": take.id, "camera": frontal, "video": str(rig.take_video(take.id, frontal)),
            "info": videos[f"takes/{take.id}/{frontal}"], "width": choice.motion_width,
        }
        for take in rig.takes
    ]  # fmt: skip
    motion = {}
    for take, _, values in run_jobs(ctx, _motion_job, jobs, "calibrate: stillness of the takes"):
        frames = candidates[take][1]
        motion[take] = values[frames[:, cameras.index(frontal)]]
    return stillest_instants(candidates, motion, cameras, choice, rig.rig_file)


def _motion_job(job: dict) -> tuple[str, str, np.ndarray]:
    """One camera of one take: :func:`capture_tools.instants.grey_motion` of its frames."""
    info = job["info"]
    frames = media.read_frames(job["video"], info["width"], info["height"])
    return job["take"], job["camera"], grey_motion(frames, job["width"])


def _views_job(job: dict) -> tuple[str, str, np.ndarray]:
    """One camera of one take: its frames ``indices`` (``[N, H, W, 3]``)."""
    info = job["info"]
    frames = media.read_frames(job["video"], info["width"], info["height"])
    return job["take"], job["camera"], frames[np.clip(job["indices"], 0, len(frames) - 1)]


def _calibrate_sfm(ctx: Context, choice: InstantChoice) -> dict:
    rig = ctx.rig
    videos = ctx.results["probe"]["videos"]
    mode = choice.resolved(rig.intrinsics is not None)
    if mode == "first_take":
        instants = _first_take_instants(ctx, choice.count)
    else:
        instants = _still_instants(ctx, choice)
    takes = list(dict.fromkeys(instant["take"] for instant in instants))
    jobs = [
        {
            "take": take, "camera": c, "video": str(rig.take_video(take, c)),
            "info": videos[f"takes/{take}/{c}"],
            "indices": [i["frames"][c] for i in instants if i["take"] == take],
        }
        for take in takes
        for c in rig.camera_ids
    ]  # fmt: skip
    views = {}
    for take, camera, frames in run_jobs(
        ctx, _views_job, jobs, "calibrate: frames for structure from motion"
    ):
        views[take, camera] = frames
    # instants are grouped by take in `instants`, so concatenating per take keeps their order
    images = {c: np.concatenate([views[take, c] for take in takes]) for c in rig.camera_ids}
    paths = {c: str(rig.take_video(takes[0], c)) for c in rig.camera_ids}
    calibrations, diagnostics = sfm_calibrate(
        images, rig.baseline, rig.frontal_camera, rig.rig_file, paths, intrinsics=rig.intrinsics
    )
    plot_calibration(ctx.reports / "calibration.png", calibrations)
    return {
        "method": "sfm",
        "cameras": {c: calibrations[c].to_dict() for c in rig.camera_ids},
        "diagnostics": diagnostics,
        "instants": {
            "choice": dataclasses.asdict(choice),
            "mode": mode,
            "chosen": [{k: v for k, v in i.items() if k != "frames"} for i in instants],
        },
        "rms_px": float(np.sqrt(np.nanmean([calibrations[c].rms_px ** 2 for c in rig.camera_ids]))),
    }


def run(ctx: Context) -> dict:
    rig, params = ctx.rig, ctx.params.calibration
    if rig.calibration is None:
        return _calibrate_sfm(ctx, SFM_INSTANTS)
    if rig.intrinsics is not None:
        log(
            f"calibrate: rig.yaml key 'intrinsics' ({rig.intrinsics.path}) ignored: the calibration take "
            "calibrates the intrinsics"
        )
    videos = ctx.results["probe"]["videos"]
    offsets, sync_method = calibration_offsets(rig, videos, ctx.params.sync)
    jobs = [
        {
            "video": str(rig.calibration_video(camera)),
            "info": videos[f"calibration/{camera}"],
            "offset_s": offsets[camera],
            "board": rig.calibration.board,
            "min_corners": params.min_corners,
        }
        for camera in rig.camera_ids
    ]
    detections = run_jobs(ctx, _detect_board_job, jobs, "calibrate: board detection")
    views = dict(zip(rig.camera_ids, detections, strict=True))
    sizes = {
        c: (job["info"]["width"], job["info"]["height"]) for c, job in zip(rig.camera_ids, jobs, strict=True)
    }
    slotted, counts = cal.assign_slots(
        views, rig.fps, params.static_px, params.max_pair_mismatch_frames, min_corners=params.min_corners
    )
    paths = {c: str(rig.calibration_video(c)) for c in rig.camera_ids}
    calibrations, diagnostics = cal.calibrate_rig(
        slotted,
        sizes,
        rig.calibration.board,
        rig.frontal_camera,
        params,
        paths,
        map_jobs=lambda function, jobs: run_jobs(ctx, function, jobs, "calibrate: intrinsics"),
    )
    diagnostics.update(
        {
            "board_poses": counts,
            "calibration_sync": sync_method,
            "calibration_offsets_s": offsets,
            "detections_per_camera": {c: len(v) for c, v in views.items()},
        }
    )
    result = {
        "method": "charuco",
        "cameras": {c: calibrations[c].to_dict() for c in rig.camera_ids},
        "diagnostics": diagnostics,
        "rms_px": float(np.sqrt(np.mean([calibrations[c].rms_px ** 2 for c in rig.camera_ids]))),
    }
    plot_calibration(ctx.reports / "calibration.png", calibrations)
    return result


def _detect_board_job(job: dict) -> list[cal.BoardView]:
    """One camera's calibration video: ChArUco corners of every frame, frames placed on the calibration
    clock by the camera's offset."""
    info = job["info"]
    frames = media.read_frames(job["video"], info["width"], info["height"])
    times = np.arange(len(frames)) / info["fps"] + job["offset_s"]
    return cal.detect_board(frames, cal.make_board(job["board"]), times, job["min_corners"])


STAGE = Stage(
    "calibrate",
    run,
    inputs,
    lambda p: {"calibration": dataclasses.asdict(p.calibration), "sync": dataclasses.asdict(p.sync)},
    report="calibration",
    outputs=("reports/calibration.png",),
)
