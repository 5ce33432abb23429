"""The built-in ingest stages: probe, sync, calibrate, frames, masks, landmarks (see capture_tools.ingest)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections import Counter
from pathlib import Path

import numpy as np

from capture_tools import calibrate as cal
from capture_tools import frames as fr
from capture_tools import masks as mk
from capture_tools import media
from capture_tools import sync as sy
from capture_tools.ingest import Context, Stage, clear_dir, hash_inputs, need, register_stage
from capture_tools.rig import RigSpec
from capture_tools.sfm import (
    InstantChoice,
    SfmParams,
    candidate_instants,
    frame_motion,
    select_still_instants,
    sfm_calibrate,
)
from gsbench.errors import MediaError, StageError
from gsbench.io import save_npz
from gsbench.progress import log, track, warn_once


def _rig_summary(ctx: Context) -> dict:
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


# ---------------------------------------------------------------- probe
def _probe_inputs(ctx: Context) -> dict:
    return {"rig": _rig_summary(ctx), "files": hash_inputs(ctx.rig, ctx.file_hashes)}


def _probe(ctx: Context) -> dict:
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


# ---------------------------------------------------------------- sync
def _sync_inputs(ctx: Context) -> dict:
    probe = need(ctx, "probe")
    inputs = {
        "rig": {k: v for k, v in _rig_summary(ctx).items() if k not in ("calibration", "background")},
        "videos": {k: v for k, v in probe["videos"].items() if k.startswith("takes/")},
        "audio": probe["audio"],
    }
    if ctx.rig.sync_mode != "audio":  # only then: earlier datasets keep their keys
        inputs["hardware"] = {"mode": ctx.rig.sync_mode, "audio_offset_s": ctx.rig.audio_offset_s}
    return inputs


def _sync(ctx: Context) -> dict:
    rig = ctx.rig
    videos = ctx.results["probe"]["videos"]
    jobs = [
        {
            "rig": rig,
            "params": ctx.params.sync,
            "take": take.id,
            "videos": {c: videos[f"takes/{take.id}/{c}"] for c in rig.camera_ids},
            "plot": take.id == rig.takes[0].id,
        }
        for take in rig.takes
    ]
    out: dict[str, dict] = {}
    plot_data = {}
    for take_id, take_result, take_plot in run_jobs(ctx, _sync_job, jobs, "sync: takes"):
        out[take_id] = take_result
        plot_data.update(take_plot)
    out = {take.id: out[take.id] for take in rig.takes}
    _plot_sync(ctx, plot_data, out)
    return {"takes": out, "convention": "offset_s = master time of the camera's frame 0"}


def _sync_job(job: dict) -> tuple[str, dict, dict]:
    """One take: GCC-PHAT of every camera-mic track against the master, visual events for the rest."""
    rig, params, take_id, videos = job["rig"], job["params"], job["take"], job["videos"]
    fs = 16000
    master = media.read_audio(rig.take_audio(take_id), fs)
    if rig.sync_mode == "hardware":
        return take_id, _hardware_sync(rig, params, videos, take_id, master, fs), {}
    with_audio = [c for c in rig.camera_ids if videos[c]["has_audio"]]
    no_audio = [c for c in rig.camera_ids if not videos[c]["has_audio"]]
    tracks = media.read_audio_many([rig.take_video(take_id, c) for c in with_audio], fs)
    master_spectra: dict[int, np.ndarray] = {}
    cameras: dict[str, dict] = {}
    plot_data = {}
    for camera, track_audio in zip(with_audio, tracks, strict=True):
        path = rig.take_video(take_id, camera)
        result = sy.gcc_phat(track_audio, master, fs, params, master_spectra)
        sy.require_confidence(result, params, f"camera {camera}, take {take_id}", str(path))
        cameras[camera] = {
            "offset_s": result.offset_s,
            "offset_frames": result.offset_s * videos[camera]["fps"],
            "method": "audio",
            "confidence": result.confidence,
            "peak": result.peak,
        }
        if job["plot"]:
            plot_data[camera] = (result.lags_s, result.correlation)
    if no_audio:
        _visual_sync(rig, params, videos, take_id, no_audio, cameras, master, fs)
    take_result = {
        "audio_duration_s": len(master) / fs,
        "cameras": {c: cameras[c] for c in rig.camera_ids},
    }
    return take_id, take_result, plot_data


def _hardware_sync(
    rig: RigSpec, params: sy.SyncParams, videos: dict[str, dict], take_id: str, master: np.ndarray, fs: int
) -> dict:
    """``sync: hardware``: every camera's frame 0 is one instant; the master audio's offset to it is
    rig.yaml's ``audio_offset_s``, else a clap: the master's strongest onset against the median time
    of the brightness step (a flash at the clap) over the cameras that show one."""
    if rig.audio_offset_s is not None:
        offset, method, extra = rig.audio_offset_s, "hardware (given offset)", {}
    else:
        times = []
        for camera in rig.camera_ids:
            info = videos[camera]
            frames = media.read_frames(rig.take_video(take_id, camera), info["width"], info["height"])
            found = sy.find_visual_event(sy.frame_brightness(frames), info["fps"], params)
            if found is not None:
                times.append(found.time_s)
        if not times:
            raise StageError(
                f"take {take_id}: sync: hardware without audio_offset_s needs a flash at the clap "
                "(a brightness step) in the cameras; none found",
                path=rig.take_audio(take_id),
                fix="set sync.audio_offset_s in rig.yaml (master time of the cameras' frame 0)",
            )
        offset = sy.master_onset_s(master, fs) - float(np.median(times))
        method = "hardware (clap)"
        extra = {"event_cameras": len(times), "event_spread_s": float(np.ptp(times))}
    cameras = {
        c: {
            "offset_s": offset,
            "offset_frames": offset * videos[c]["fps"],
            "method": method,
            "confidence": 1.0,
            **extra,
        }
        for c in rig.camera_ids
    }
    return {"audio_duration_s": len(master) / fs, "cameras": cameras}


def _visual_sync(
    rig: RigSpec,
    params: sy.SyncParams,
    videos: dict[str, dict],
    take_id: str,
    cameras_without_audio: list[str],
    cameras: dict[str, dict],
    master: np.ndarray,
    fs: int,
) -> None:
    def event(camera: str) -> sy.VisualEvent | None:
        info = videos[camera]
        frames = media.read_frames(rig.take_video(take_id, camera), info["width"], info["height"])
        return sy.find_visual_event(sy.frame_brightness(frames), info["fps"], params)

    references = []
    for camera in [c for c in rig.camera_ids if c in cameras][:3]:
        found = event(camera)
        if found is not None:
            references.append(found.time_s + cameras[camera]["offset_s"])
    master_event = float(np.median(references)) if references else sy.master_onset_s(master, fs)
    for camera in cameras_without_audio:
        found = event(camera)
        path = rig.take_video(take_id, camera)
        if found is None:
            raise StageError(
                f"camera {camera}, take {take_id}: no camera-mic track and no visual event "
                "(flash or brightness step) to synchronize on",
                path=path,
                fix="record the camera's audio, or fire a flash visible to all cameras during the take",
            )
        offset = master_event - found.time_s
        cameras[camera] = {
            "offset_s": offset,
            "offset_frames": offset * videos[camera]["fps"],
            "method": "visual",
            "confidence": float(min(1.0, found.snr / (4 * params.min_event_snr))),
            "event_step": found.step,
            "event_reference": "audio-synced cameras" if references else "master audio onset",
        }


def _plot_sync(ctx: Context, plot_data: dict, takes: dict) -> None:
    """Two panels (few axes keep matplotlib's tick layout cheap): the GCC-PHAT correlation around the
    peak of every camera of the first take, stacked and scaled to its peak, and the offsets per take."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gsbench.io import atomic_path

    cameras = ctx.rig.camera_ids
    figure, (peaks, offsets) = plt.subplots(1, 2, figsize=(11, 0.3 * len(cameras) + 2.5))
    for row, camera in enumerate(cameras):
        if camera in plot_data:
            lags, corr = plot_data[camera]
            corr = np.asarray(corr, np.float64)
            scale = float(np.abs(corr).max()) or 1.0
            peaks.plot(np.asarray(lags) * 1000, row - 0.8 * corr / scale, lw=0.8)  # y axis runs down
    peaks.set_yticks(range(len(cameras)), cameras, fontsize=7)
    peaks.invert_yaxis()
    peaks.set_xlabel("lag (ms)", fontsize=8)
    peaks.set_title(f"GCC-PHAT correlation around the peak (take {ctx.rig.takes[0].id})", fontsize=9)
    for take_id, take in takes.items():
        offsets.plot(
            range(len(cameras)),
            [take["cameras"][c]["offset_frames"] for c in cameras],
            "o-",
            ms=2,
            lw=0.5,
            label=take_id,
        )
    offsets.set_xticks(range(len(cameras)), cameras, fontsize=6, rotation=90)
    offsets.set_ylabel("offset (frames)", fontsize=8)
    offsets.set_title("offset per camera, one line per take", fontsize=9)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.92, wspace=0.2)
    with atomic_path(ctx.reports / "sync.png") as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


# ---------------------------------------------------------------- calibrate
SFM_INSTANTS = InstantChoice()  # which synchronized instants structure from motion reconstructs


def _sfm_takes(ctx: Context, choice: InstantChoice) -> list[str]:
    if choice.resolved(ctx.rig.intrinsics is not None) == "first_take":
        return [ctx.rig.takes[0].id]
    return [take.id for take in ctx.rig.takes]


def _calibrate_inputs(ctx: Context) -> dict:
    probe = need(ctx, "probe")
    inputs = {
        "rig": {
            "calibration": _rig_summary(ctx)["calibration"],
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
    start = max(sync[c]["offset_s"] for c in rig.camera_ids)
    end = min(sync[c]["offset_s"] + (infos[c]["num_frames"] - 1) / infos[c]["fps"] for c in rig.camera_ids)
    instants = []
    for time_s in np.linspace(start, end, count):
        frames = {}
        for c in rig.camera_ids:
            nearest = np.round((time_s - sync[c]["offset_s"]) * infos[c]["fps"])
            frames[c] = int(np.clip(nearest, 0, infos[c]["num_frames"] - 1))
        instants.append({"take": take, "time_s": float(time_s), "frames": frames})
    return instants


def _still_instants(ctx: Context, choice: InstantChoice) -> list[dict]:
    """The stillest instants of all takes (:func:`capture_tools.sfm.select_still_instants`).

    Score of an instant: the frontal camera's image change around it (:func:`capture_tools.sfm.frame_motion`)
    times the spread of the cameras' frame times (frames): a head moving by ``v`` per frame is misplaced
    by about ``v x spread`` between the views that SfM treats as one instant, while the studio behind it
    is not. The frontal camera alone: on the default session its ranking picked instants of slower head
    motion (ground truth, rotation + jaw + translation) than the sum over it and the baseline pair or over
    all 16 cameras (mean over the 16 picked: 4.7 vs 7.1 and 6.9 deg/s; 2.8 for a pick by ground truth,
    20.7 the median instant), and decoding one camera per take costs ~2 s instead of ~30 s."""
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
    scores = {take: motion[take] * spread for take, (_, _, spread) in candidates.items()}
    instants = []
    for take, index in select_still_instants(scores, choice):
        times, frames, spread = candidates[take]
        instants.append({
            "take": take, "time_s": float(times[index]),
            "frames": {c: int(frames[index, k]) for k, c in enumerate(cameras)},
            "motion": float(motion[take][index]), "spread_frames": spread,
        })  # fmt: skip
    if not instants:
        raise StageError(
            "no instant at which every camera has a frame, in any take",
            path=rig.rig_file,
            fix="check the sync report: the cameras' videos do not overlap in time",
        )
    return instants


def _motion_job(job: dict) -> tuple[str, str, np.ndarray]:
    """One camera of one take: :func:`capture_tools.sfm.frame_motion` of its grey frames ``width`` wide."""
    import cv2

    info = job["info"]
    width = min(job["width"], info["width"])
    size = (width, max(1, round(info["height"] * width / info["width"])))
    grey = [
        cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
        for frame in media.read_frames(job["video"], info["width"], info["height"])
    ]
    return job["take"], job["camera"], frame_motion(np.stack(grey))


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
    _plot_calibration(ctx, calibrations)
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


def _calibrate(ctx: Context) -> dict:
    rig, params = ctx.rig, ctx.params.calibration
    if rig.calibration is None:
        return _calibrate_sfm(ctx, SFM_INSTANTS)
    if rig.intrinsics is not None:
        log(
            f"calibrate: rig.yaml key 'intrinsics' ({rig.intrinsics.path}) ignored: the calibration take "
            "calibrates the intrinsics"
        )
    videos = ctx.results["probe"]["videos"]
    fs = 16000
    # Calibration clock: the frontal camera's; other cameras placed on it by their mic tracks (claps).
    offsets = {c: 0.0 for c in rig.camera_ids}
    sync_method = "assumed simultaneous (no mic tracks)"
    if all(videos[f"calibration/{c}"]["has_audio"] for c in rig.camera_ids):
        # one ffmpeg run decodes every mic track; the frontal track's spectrum is computed once
        tracks = media.read_audio_many([rig.calibration_video(c) for c in rig.camera_ids], fs)
        audio = dict(zip(rig.camera_ids, tracks, strict=True))
        reference_spectra: dict[int, np.ndarray] = {}
        confidences = {}
        for camera in rig.camera_ids:
            if camera == rig.frontal_camera:
                continue
            result = sy.gcc_phat(
                audio[camera], audio[rig.frontal_camera], fs, ctx.params.sync, reference_spectra
            )
            sy.require_confidence(
                result,
                ctx.params.sync,
                f"camera {camera}, calibration take",
                str(rig.calibration_video(camera)),
            )
            offsets[camera] = result.offset_s
            confidences[camera] = result.confidence
        sync_method = "GCC-PHAT of the camera-mic tracks against the frontal camera's"
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
    _plot_calibration(ctx, calibrations)
    return result


def _detect_board_job(job: dict) -> list[cal.BoardView]:
    """One camera's calibration video: ChArUco corners of every frame, frames placed on the calibration
    clock by the camera's offset."""
    info = job["info"]
    frames = media.read_frames(job["video"], info["width"], info["height"])
    times = np.arange(len(frames)) / info["fps"] + job["offset_s"]
    return cal.detect_board(frames, cal.make_board(job["board"]), times, job["min_corners"])


def _plot_calibration(ctx: Context, calibrations: dict[str, cal.CameraCalibration]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gsbench.io import atomic_path

    figure = plt.figure(figsize=(11, 4.5))
    axis = figure.add_subplot(1, 2, 1, projection="3d")
    for camera, c in calibrations.items():
        cam_to_world = np.linalg.inv(c.world_to_cam)
        centre = cam_to_world[:3, 3]
        forward = cam_to_world[:3, 2] * 0.15
        axis.scatter(*centre, s=8)
        axis.plot(*np.stack([centre, centre + forward]).T, lw=1)
        axis.text(*centre, camera, fontsize=6)
    axis.scatter(0, 0, 0, marker="x", c="k")
    axis.set_xlabel("x (m)")
    axis.set_ylabel("y (m)")
    axis.set_zlabel("z (m)")
    axis.set_title("rig (world frame: y up, frontal camera on +z)", fontsize=9)
    bars = figure.add_subplot(1, 2, 2)
    names = list(calibrations)
    bars.bar(range(len(names)), [calibrations[n].rms_px for n in names])
    bars.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    bars.set_ylabel("reprojection RMS (px)")
    bars.set_title("per-camera reprojection error after bundle adjustment", fontsize=9)
    figure.tight_layout()
    with atomic_path(ctx.reports / "calibration.png") as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


# ---------------------------------------------------------------- frames
def _frames_inputs(ctx: Context) -> dict:
    sync = need(ctx, "sync")
    calibration = need(ctx, "calibrate")
    probe = need(ctx, "probe")
    return {
        "sync": sync["takes"],
        "cameras": {
            c: {k: v[k] for k in ("K", "dist", "width", "height")} for c, v in calibration["cameras"].items()
        },
        "videos": {k: v["sha256"] for k, v in probe["videos"].items() if k.startswith("takes/")},
        "audio": probe["audio"],
        "image_size": probe["image_size"],
    }


def _all_frames_exist(folder: Path, num_frames: int, suffix: str) -> bool:
    """Every frame file ``00000 ... num_frames - 1`` is in ``folder`` (one listing, not one stat per
    frame): the same check ``benchmark.dataset`` makes before a run, so that a frame deleted from a
    finished dataset makes ingest redo the stage that writes it, as the run's error message advises."""
    try:
        present = set(os.listdir(folder))
    except OSError:
        return False
    return all(f"{index:05d}{suffix}" in present for index in range(num_frames))


def _frames_exist(ctx: Context, result: dict) -> bool:
    for take_id, info in result["sequences"].items():
        for camera in ctx.rig.camera_ids:
            if not _all_frames_exist(
                ctx.sequence_dir(take_id) / "images" / camera, info["num_frames"], ".jpg"
            ):
                return False
        if not (ctx.sequence_dir(take_id) / "audio.wav").exists():
            return False
    return True


def _frames_job(job: dict) -> tuple[str, str, int]:
    """One camera of one take: decode, place on the master timeline, undistort, resize, write JPEGs."""
    info, cal = job["info"], job["calibration"]
    undistort = fr.Undistorter(
        np.asarray(cal["K"]), np.asarray(cal["dist"]), cal["width"], cal["height"], tuple(job["size"])
    )
    raw = media.read_frames(job["video"], info["width"], info["height"])
    plan = fr.sample_plan(
        job["num_out"], job["fps_out"], job["offset_s"], info["fps"], len(raw), job["interpolation"]
    )
    folder = Path(job["folder"])
    for index, image in enumerate(fr.resample(raw, plan)):
        fr.write_jpeg(folder / f"{index:05d}.jpg", undistort(image), job["jpeg_quality"])
    return job["take"], job["camera"], plan.clamped


def _frames(ctx: Context) -> dict:
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


# ---------------------------------------------------------------- masks
def _masks_inputs(ctx: Context) -> dict:
    frames = need(ctx, "frames")
    probe = need(ctx, "probe")
    return {
        "frames": frames,
        "background": {k: v["sha256"] for k, v in probe["files"].items() if k.startswith("background/")},
    }


def _masks_exist(ctx: Context, result: dict) -> bool:
    frames = ctx.results.get("frames")
    if frames is None:
        return False
    for take_id, info in frames["sequences"].items():
        for camera in ctx.rig.camera_ids:
            if not _all_frames_exist(
                ctx.sequence_dir(take_id) / "masks" / camera, info["num_frames"], ".png"
            ):
                return False
    return True


def _masks_job(job: dict) -> tuple[str, str, str, float]:
    """One camera of one take: a mask per written frame (plate differencing, else selfie segmentation)."""
    folder = Path(job["folder"])
    params = mk.MaskParams(**job["params"])
    plate = None
    segmenter = None
    if job["plate"] is not None:
        cal = job["calibration"]
        raw_plate = fr.read_image(job["plate"])
        plate = fr.Undistorter(
            np.asarray(cal["K"]), np.asarray(cal["dist"]), cal["width"], cal["height"], tuple(job["size"])
        )(raw_plate)
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


def _masks(ctx: Context) -> dict:
    rig = ctx.rig
    frames = ctx.results["frames"]
    calibration = ctx.results["calibrate"]["cameras"]
    for camera in rig.camera_ids:
        path = rig.background_plate(camera)
        if path is None:
            continue
        plate = fr.read_image(path)
        c = calibration[camera]
        if plate.shape[:2] != (c["height"], c["width"]):
            raise MediaError(
                f"camera {camera}: background plate is {plate.shape[1]}x{plate.shape[0]}, the "
                f"videos are {c['width']}x{c['height']}",
                path=path,
                fix="re-export the plate at the video resolution",
            )
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


# ---------------------------------------------------------------- backgrounds
def _backgrounds_inputs(ctx: Context) -> dict:
    calibration = need(ctx, "calibrate")
    probe = need(ctx, "probe")
    return {
        "image_size": need(ctx, "frames")["image_size"],
        "cameras": {
            c: {k: v[k] for k in ("K", "dist", "width", "height")} for c, v in calibration["cameras"].items()
        },
        "background": {k: v["sha256"] for k, v in probe["files"].items() if k.startswith("background/")},
    }


def _backgrounds_exist(ctx: Context, result: dict) -> bool:
    return all((ctx.out / "backgrounds" / f"{c}.png").is_file() for c in result["cameras"])


def _backgrounds(ctx: Context) -> dict:
    """The rig's clean plates into the dataset as ``backgrounds/<cam>.png``, undistorted and resized
    exactly as the frames are (same maps, same filters), so that the harness can composite a method's
    head over what the camera saw behind the head (benchmark.protocols)."""
    rig = ctx.rig
    calibration = ctx.results["calibrate"]["cameras"]
    size = tuple(ctx.results["frames"]["image_size"])
    folder = ctx.out / "backgrounds"
    clear_dir(folder)
    written, without = [], []
    for camera in rig.camera_ids:
        path = rig.background_plate(camera)
        if path is None:
            without.append(camera)
            continue
        c = calibration[camera]
        plate = fr.read_image(path)
        if plate.shape[:2] != (c["height"], c["width"]):
            raise MediaError(
                f"camera {camera}: background plate is {plate.shape[1]}x{plate.shape[0]}, the "
                f"videos are {c['width']}x{c['height']}",
                path=path,
                fix="re-export the plate at the video resolution",
            )
        undistort = fr.Undistorter(np.asarray(c["K"]), np.asarray(c["dist"]), c["width"], c["height"], size)
        fr.write_png(folder / f"{camera}.png", undistort(plate))
        written.append(camera)
    return {"cameras": written, "without_plate": without}


# ---------------------------------------------------------------- landmarks
def _landmarks_inputs(ctx: Context) -> dict:
    return {"frames": need(ctx, "frames")}


def _landmarks_exist(ctx: Context, result: dict) -> bool:
    return all((ctx.sequence_dir(t) / "landmarks.npz").exists() for t in result["detection_rate"])


def _landmarks_job(job: dict) -> tuple[str, str, np.ndarray, np.ndarray]:
    from tracking.landmarks import detect_landmarks

    folder = Path(job["folder"])
    images = np.stack([fr.read_image(folder / f"{i:05d}.jpg") for i in range(job["num_frames"])])
    points, detected = detect_landmarks(images)
    return job["take"], job["camera"], points.astype(np.float32), detected.astype(bool)


def _landmarks(ctx: Context) -> dict:
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


def _track_inputs(ctx: Context) -> dict:
    return {
        "landmarks": need(ctx, "landmarks"),
        "calibrate": need(ctx, "calibrate"),
        "frames": need(ctx, "frames"),
        "split_seed": ctx.params.split_seed,
    }


def _track(ctx: Context) -> dict:
    """Multi-view FLAME tracking of every subject (tracking.fit.track_dataset) on the dataset so far."""
    from tracking.fit import track_dataset

    report = track_dataset(ctx.out)
    return {
        "head_model": report["head_model"],
        "head_model_sha256": report["head_model_sha256"],
        "median_reprojection_px": {
            subject: entry["reprojection"]["median_px"]
            for subject, entry in sorted(report["subjects"].items())
            if "reprojection" in entry
        },
        "sequences": sorted(report["sequences"]),
    }


def _track_exist(ctx: Context, result: dict) -> bool:
    return all((ctx.sequence_dir(seq) / "flame.npz").is_file() for seq in result.get("sequences", []))


def run_jobs(ctx: Context, function, jobs: list[dict], description: str):
    """Yield ``function(job)`` for every job, in order, in the run's process pool when
    ``params.workers > 1`` and there are enough jobs to pay for starting it (:meth:`Context.executor`).
    The first failing job (in order) raises; the jobs not started yet are cancelled."""
    workers = ctx.params.workers
    if workers <= 1 or len(jobs) < 4 * workers:
        for job in track(jobs, description):
            yield function(job)
        return
    futures = [ctx.executor().submit(function, job) for job in jobs]
    try:
        for future in track(futures, description):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


for _stage in (
    Stage("probe", _probe, _probe_inputs, lambda p: {}),
    Stage("sync", _sync, _sync_inputs, lambda p: dataclasses.asdict(p.sync)),
    Stage(
        "calibrate",
        _calibrate,
        _calibrate_inputs,
        lambda p: {"calibration": dataclasses.asdict(p.calibration), "sync": dataclasses.asdict(p.sync)},
        report="calibration",
    ),
    Stage("frames", _frames, _frames_inputs, lambda p: dataclasses.asdict(p.frames), _frames_exist),
    Stage("masks", _masks, _masks_inputs, lambda p: dataclasses.asdict(p.masks), _masks_exist),
    Stage("backgrounds", _backgrounds, _backgrounds_inputs, lambda p: {}, _backgrounds_exist),
    Stage("landmarks", _landmarks, _landmarks_inputs, lambda p: {}, _landmarks_exist),
    Stage(
        "track",
        _track,
        _track_inputs,
        lambda p: {},
        _track_exist,
        report="track_stage",
        needs_dataset_files=True,
    ),
):
    register_stage(_stage)
