"""``generate_session``: a synthetic raw rig session (DESIGN.md "Raw rig session") + ``ground_truth/``.

Layout written under ``out``::

    rig.yaml
    takes/<take>/<cam>.mp4         h264 yuv420p, the camera's own mic as an AAC track
    takes/<take>/audio.wav         master microphone, 16 kHz 16-bit
    calibration/<cam>.mp4          ChArUco board moved through the volume (+ claps on the mic track)
    background/<cam>.png           clean plates
    contact_sheet.png              one frame of the first take from every camera
    ground_truth/                  see docs/interfaces.md (never read by ingest)

Timing model: camera ``c`` starts recording ``time_offset_s[c]`` after the master audio's start
(negative: before), so its frame ``k`` shows master time ``k / fps + time_offset_s[c]`` and sample
``n`` of its mic track holds master-time sample ``n + time_offset_s[c] * 16000``. Every random draw
comes from ``numpy.random.SeedSequence(seed)`` children keyed by what they generate, so the same
seed gives the same files whatever the number of worker processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from capture_tools.synth._kernel import load_kernel
from capture_tools.synth.motion import ExpressionMap, Performance, PerformanceStyle
from capture_tools.synth.posing import SubjectPoser
from capture_tools.synth.presets import SynthPreset, get_preset
from capture_tools.synth.rig import SynthCamera, build_rig
from capture_tools.synth.scene import BoardRenderer, board_trajectory, build_studio
from capture_tools.synth.speech import SAMPLE_RATE, Speaker, random_sentence, synthesize, timeline_to_json
from gsbench import __version__, media
from gsbench.errors import InputError
from gsbench.io import atomic_path, save_npz, write_json, write_text
from gsbench.progress import log, track

GENERATOR = "gsbench-synth"
# seed-sequence keys, one stream per kind of thing generated
_KEY_RIG, _KEY_STUDIO, _KEY_SUBJECT, _KEY_TAKE, _KEY_CALIBRATION = 1, 2, 3, 4, 5


@dataclasses.dataclass(frozen=True)
class Subject:
    id: str
    shape: np.ndarray  # [S]
    tint: np.ndarray  # [3] albedo multiplier
    speaker: Speaker
    style: PerformanceStyle
    height_offset_m: float

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape.tolist(),
            "albedo_tint": self.tint.tolist(),
            "speaker": dataclasses.asdict(self.speaker),
            "style": dataclasses.asdict(self.style),
            "height_offset_m": self.height_offset_m,
        }


@dataclasses.dataclass(frozen=True)
class SessionSummary:
    root: Path
    preset: str
    seed: int
    cameras: list[str]
    frontal_camera: str
    takes: list[str]
    num_frames: int  # camera frames over all takes and cameras (calibration excluded)
    seconds: float


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *key])))


def build_head(seed: int):
    """The shipped head model (``gsbench-head``) for a session seed."""
    from tracking.head import build_default_head

    return build_default_head(seed=seed)


def _make_subjects(preset: SynthPreset, seed: int, num_shape: int) -> list[Subject]:
    subjects = []
    for index in range(preset.num_subjects):
        rng = _rng(seed, _KEY_SUBJECT, index)
        female = index % 2 == 1
        shape = np.zeros(num_shape)
        shape[: min(num_shape, 20)] = rng.normal(0.0, 0.5, min(num_shape, 20))
        tint = np.array([1.0, rng.uniform(0.85, 1.05), rng.uniform(0.75, 1.0)]) * rng.uniform(0.75, 1.1)
        speaker = Speaker(
            f0_hz=float(rng.uniform(185, 225) if female else rng.uniform(100, 130)),
            formant_scale=float(rng.uniform(1.12, 1.2) if female else rng.uniform(0.95, 1.05)),
            rate=float(rng.uniform(0.9, 1.1)),
            breathiness=float(rng.uniform(0.02, 0.06)),
        )
        style = PerformanceStyle(
            articulation=float(rng.uniform(0.9, 1.15)),
            head_motion_deg=float(rng.uniform(2.0, 4.0)),
            head_motion_m=float(rng.uniform(0.004, 0.008)),
            blink_interval_s=float(rng.uniform(2.0, 4.0)),
            gaze_deg=float(rng.uniform(2.5, 5.0)),
        )
        subjects.append(Subject(f"s{index + 1:02d}", shape, tint, speaker, style, float(rng.normal(0, 0.01))))
    return subjects


def _check_output(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", path=out, fix="pass a new or empty folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "ground_truth" / "session.json").is_file():
        raise InputError(
            "output folder is not empty and is not a synthetic session",
            path=out,
            fix="pass a new or empty folder (an earlier gsbench synth output is overwritten)",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".gsbench-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise InputError(
            f"cannot write the session here ({error.strerror or error})",
            path=out,
            fix="choose a folder you can write to",
        ) from None


@dataclasses.dataclass(frozen=True)
class _Context:
    """Everything a worker needs; sent once per worker process."""

    out: Path
    seed: int
    preset: SynthPreset
    cameras: list[SynthCamera]
    plates: list[np.ndarray]  # linear RGB per camera
    subjects: dict[str, Subject]
    head: Any  # tracking.head_model.HeadModel
    threads: int


_WORKER_STATE: dict[str, Any] = {}  # per worker process: the context and lazily built head/renderers


def _init_worker(context: _Context) -> None:
    _WORKER_STATE.clear()
    _WORKER_STATE["context"] = context


def _worker_head():
    return _WORKER_STATE["context"].head


def _views(context: _Context):
    from capture_tools.synth.render import CameraView

    if "views" not in _WORKER_STATE:
        views = []
        for camera, plate in zip(context.cameras, context.plates, strict=True):
            origin, directions = camera.pixel_rays()
            views.append(CameraView(camera, origin.astype(np.float32), directions.astype(np.float32), plate))
        _WORKER_STATE["views"] = views
    return _WORKER_STATE["views"]


def _camera_encoding(context: _Context) -> media.VideoEncoding:
    return dataclasses.replace(media.CAMERA_ENCODING, threads=context.threads)


def _camera_mic(
    speech: np.ndarray, camera: SynthCamera, num_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """The camera's mic track: master-time speech shifted by the camera's start offset, with its own
    gain and noise. (No room reflection: one at a pitch-period delay skews the broad correlation peak
    of voiced speech by a sample.)"""
    shift = int(round(camera.time_offset_s * SAMPLE_RATE))
    index = np.arange(num_samples) + shift
    valid = (index >= 0) & (index < len(speech))
    track = np.zeros(num_samples, np.float32)
    track[valid] = speech[index[valid]]
    track = camera.mic_gain * track
    return (track + rng.normal(0.0, camera.mic_noise, num_samples)).astype(np.float32)


def _render_take(job: dict[str, Any]) -> dict[str, Any]:
    from capture_tools.synth.render import HeadRenderer, SensorNoise, camera_response

    context: _Context = _WORKER_STATE["context"]
    head = _worker_head()
    views = _views(context)
    preset, cameras = context.preset, context.cameras
    subject = context.subjects[job["subject"]]
    take_id: str = job["take"]
    rng = _rng(context.seed, _KEY_TAKE, job["index"])
    duration = float(rng.uniform(*preset.take_duration_s))
    timeline = random_sentence(rng, subject.speaker, duration)
    speech = synthesize(timeline, subject.speaker, rng, duration)
    num_frames = int(np.floor(duration * preset.fps))
    num_samples = int(round(num_frames / preset.fps * SAMPLE_RATE))
    master = np.zeros(num_samples, np.float32)
    master[: min(num_samples, len(speech))] = speech[:num_samples]
    master_mic = master + rng.normal(0, 0.0015, num_samples).astype(np.float32)

    performance = Performance(
        timeline,
        rng,
        subject.style,
        ExpressionMap.for_names(head.expr_names, head.num_expr),
        base_translation=job["base_translation"],
    )
    frame_times = np.arange(num_frames) / preset.fps
    master_params = performance.flame_params(frame_times)
    camera_times = frame_times[None, :] + np.array([c.time_offset_s for c in cameras])[:, None]  # [C, T]
    params = performance.flame_params(camera_times.T.reshape(-1))  # frame-major: [T * C, ...]
    poser = SubjectPoser(head, subject.shape)
    # one renderer per subject and worker (its texture pyramid and tables take ~0.5 s to build)
    renderer = _WORKER_STATE.get(f"renderer {subject.id}")
    if renderer is None:
        renderer = _WORKER_STATE[f"renderer {subject.id}"] = HeadRenderer(head, views, tint=subject.tint)
    frames = np.zeros((len(cameras), num_frames, preset.height, preset.width, 3), np.uint8)
    landmarks3d = np.zeros((num_frames, len(cameras), 68, 3), np.float32)
    noise = [
        SensorNoise(_rng(context.seed, _KEY_TAKE, job["index"], 1000 + c), views[c].plate.shape)
        for c in range(len(cameras))
    ]
    linear = np.empty((len(cameras), preset.height, preset.width, 3), np.float32)
    for k in range(num_frames):
        # the head at every camera's own time of frame k
        at_k = {name: value[k * len(cameras) : (k + 1) * len(cameras)] for name, value in params.items()}
        points, landmarks3d[k] = poser.pose_points(**at_k)
        renderer.render(points.transpose(0, 2, 1), at_k["expr"], out=linear)
        for c, camera in enumerate(cameras):
            frames[c, k] = camera_response(linear[c], camera, noise[c].draw())
    landmarks3d = landmarks3d.transpose(1, 0, 2, 3)  # [C, T, 68, 3]

    take_dir = context.out / "takes" / take_id
    take_dir.mkdir(parents=True, exist_ok=True)
    media.write_wav(take_dir / "audio.wav", master_mic, precision=np.float32)  # float32 scaling: same bytes
    mic_rng = _rng(context.seed, _KEY_TAKE, job["index"], 2000)
    for c, camera in enumerate(cameras):
        mic = _camera_mic(master, camera, num_samples, mic_rng)
        media.write_video(
            take_dir / f"{camera.id}.mp4", frames[c], preset.fps, mic, encoding=_camera_encoding(context)
        )

    gt_dir = context.out / "ground_truth" / "takes" / take_id
    save_npz(
        gt_dir / "flame.npz",
        **master_params,
        shape=subject.shape.astype(np.float32),
        frame_times_s=frame_times,
    )
    landmarks2d = {
        camera.id: camera.project(landmarks3d[c].reshape(-1, 3)).reshape(num_frames, 68, 2).astype(np.float32)
        for c, camera in enumerate(cameras)
    }
    save_npz(
        gt_dir / "landmarks.npz",
        **landmarks2d,
        **{f"{c.id}_frame_times_s": camera_times[i] for i, c in enumerate(cameras)},
    )
    phonemes = timeline_to_json(timeline, subject.speaker)
    phonemes.update({"take": take_id, "subject": subject.id, "duration_s": num_frames / preset.fps})
    write_json(gt_dir / "phonemes.json", phonemes)
    middle = num_frames // 2
    return {
        "take": take_id,
        "num_frames": num_frames,
        "contact": frames[:, middle].copy() if job["index"] == 0 else None,
    }


def _render_calibration(job: dict[str, Any]) -> dict[str, Any]:
    from capture_tools.synth.render import SensorNoise, camera_response

    context: _Context = _WORKER_STATE["context"]
    preset, cameras = context.preset, context.cameras
    views = _views(context)
    rng = _rng(context.seed, _KEY_CALIBRATION)
    # texture pre-filtered to about one texel per image pixel on the board: one antialiased lookup per pixel
    board = BoardRenderer(preset.board, filtered_pixels_per_m=preset.width / preset.field_of_view_m)
    pose = board_trajectory(
        rng, preset.board, preset.calibration_duration_s, [c.azimuth_deg for c in cameras]
    )
    num_frames = int(round(preset.calibration_duration_s * preset.fps))
    num_samples = int(round(num_frames / preset.fps * SAMPLE_RATE))
    # master-time "claps" so the calibration videos can be synchronized by audio as well
    claps = np.zeros(num_samples, np.float32)
    for clap_time in (0.3, 0.3 + 0.45 * preset.calibration_duration_s):
        start = int(clap_time * SAMPLE_RATE)
        length = min(1600, num_samples - start)
        if length > 0:
            envelope = np.exp(-np.arange(length) / 180.0)
            claps[start : start + length] += (0.6 * envelope * rng.normal(0, 1, length)).astype(np.float32)
    out_dir = context.out / "calibration"
    out_dir.mkdir(parents=True, exist_ok=True)
    poses = {}
    for c, (camera, view) in enumerate(zip(cameras, views, strict=True)):
        noise = SensorNoise(_rng(context.seed, _KEY_CALIBRATION, 1000 + c), view.plate.shape)
        times = np.arange(num_frames) / preset.fps + camera.time_offset_s
        frames = np.zeros((num_frames, preset.height, preset.width, 3), np.uint8)
        camera_poses = np.zeros((num_frames, 4, 4))
        for k, t in enumerate(times):
            board_to_world = pose(float(t))
            camera_poses[k] = board_to_world
            if k == 0 or not np.array_equal(board_to_world, camera_poses[k - 1]):
                # a held board (half the frames) has the very same pose as the frame before: shade once
                colour, hit = board.shade(board_to_world, view.origin, view.directions)
            frames[k] = camera_response(np.where(hit[..., None], colour, view.plate), camera, noise.draw())
        poses[camera.id] = camera_poses
        mic = _camera_mic(claps, camera, num_samples, _rng(context.seed, _KEY_CALIBRATION, 2000 + c))
        media.write_video(
            out_dir / f"{camera.id}.mp4", frames, preset.fps, mic, encoding=_camera_encoding(context)
        )
    save_npz(
        context.out / "ground_truth" / "calibration" / "board_poses.npz",
        **{f"{cid}_board_to_world": value for cid, value in poses.items()},
    )
    return {"take": "calibration", "num_frames": num_frames, "contact": None}


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "calibration":
        return _render_calibration(job)
    return _render_take(job)


def _contact_sheet(frames: np.ndarray, cameras: list[SynthCamera], frontal: str) -> np.ndarray:
    columns = int(np.ceil(np.sqrt(len(frames))))
    rows = int(np.ceil(len(frames) / columns))
    height, width = frames.shape[1:3]
    scale = max(1, 256 // width)
    sheet = np.full((rows * height * scale, columns * width * scale, 3), 20, np.uint8)
    for index, (frame, camera) in enumerate(zip(frames, cameras, strict=True)):
        tile = cv2.resize(frame, (width * scale, height * scale), interpolation=cv2.INTER_NEAREST)
        label = f"{camera.id} az {camera.azimuth_deg:+.0f} el {camera.elevation_deg:+.0f}"
        if camera.id == frontal:
            label += " (frontal)"
        cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
        r, c = divmod(index, columns)
        sheet[r * height * scale : (r + 1) * height * scale, c * width * scale : (c + 1) * width * scale] = (
            tile
        )
    return sheet


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise InputError("cannot write PNG", path=path, fix="check the folder is writable")


def generate_session(
    out: str | Path, preset: str | SynthPreset = "default", seed: int = 0, workers: int | None = None
) -> SessionSummary:
    """Write a synthetic raw rig session with ground truth into ``out`` (see the module docstring)."""
    started = time.perf_counter()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    out = Path(out)
    _check_output(out)
    for stale in ("takes", "calibration", "background", "ground_truth"):
        if (out / stale).is_dir():
            shutil.rmtree(out / stale)

    head = build_head(seed)
    cameras, frontal = build_rig(
        _rng(seed, _KEY_RIG),
        preset.num_cameras,
        preset.width,
        preset.height,
        preset.fps,
        preset.distance_m,
        preset.field_of_view_m,
    )
    studio = build_studio(_rng(seed, _KEY_STUDIO))
    plates = []
    for camera in cameras:
        origin, directions = camera.pixel_rays()
        plates.append(studio.shade(origin, directions).astype(np.float32))
    subjects = _make_subjects(preset, seed, head.num_shape)

    # head placement: the face (landmark centroid, half-way back in depth) at the rig centre
    zeros = np.zeros((1, 3))
    _, neutral = SubjectPoser(head, np.zeros(head.num_shape))(
        np.zeros((1, head.num_expr)), zeros, zeros, zeros, np.zeros((1, 6)), zeros
    )
    face_centre = neutral[0].astype(np.float64).mean(0)
    face_centre[2] *= 0.5

    jobs: list[dict[str, Any]] = [{"kind": "calibration"}]
    takes = []
    for s_index, subject in enumerate(subjects):
        for t_index in range(preset.takes_per_subject):
            take_id = f"{subject.id}_t{t_index:02d}"
            base = -face_centre + np.array([0.0, subject.height_offset_m, 0.0])
            jobs.append(
                {
                    "kind": "take",
                    "take": take_id,
                    "subject": subject.id,
                    "index": s_index * preset.takes_per_subject + t_index,
                    "base_translation": base,
                }
            )
            takes.append({"id": take_id, "subject": subject.id})
    # the calibration job is the longest: start it first so that the takes fill the other workers meanwhile
    jobs.sort(key=lambda job: job["kind"] != "calibration")
    load_kernel()  # build the renderer's C++ kernel (first use) once here, not in every worker

    workers = workers if workers is not None else min(len(jobs), os.cpu_count() or 1, 4)
    # one x264 thread whatever the worker count: more threads change the bitstream (x264's settings SEI,
    # frame-threaded motion search), and the same seed must give the same bytes
    threads = 1
    context = _Context(out, seed, preset, cameras, plates, {s.id: s for s in subjects}, head, threads)
    results: list[dict[str, Any]] = []
    if workers <= 1:
        _init_worker(context)
        for job in track(jobs, "synth: rendering takes"):
            results.append(_run_job(job))
    else:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_init_worker, initargs=(context,)
        ) as pool:
            futures = [pool.submit(_run_job, job) for job in jobs]
            for future in track(
                concurrent.futures.as_completed(futures), "synth: rendering takes", total=len(futures)
            ):
                results.append(future.result())

    for camera, plate in zip(cameras, plates, strict=True):
        from capture_tools.synth.render import camera_response

        _write_png(out / "background" / f"{camera.id}.png", camera_response(plate, camera, None))
    contact = next(r["contact"] for r in results if r["contact"] is not None)
    _write_png(out / "contact_sheet.png", _contact_sheet(contact, cameras, frontal))

    rig = {
        "schema_version": 1,
        "name": out.name or "session",
        "fps": preset.fps,
        "frontal_camera": frontal,
        "audio": {"sample_rate": SAMPLE_RATE, "master": "audio.wav"},
        "cameras": [{"id": camera.id, "video": f"{camera.id}.mp4"} for camera in cameras],
        "takes": takes,
        "calibration": {"folder": "calibration", "board": preset.board.to_rig_yaml()},
        "background": "background",
    }
    write_text(out / "rig.yaml", yaml.safe_dump(rig, sort_keys=False))
    gt = out / "ground_truth"
    write_json(gt / "cameras.json", {camera.id: camera.to_json() for camera in cameras})
    write_json(gt / "subjects.json", {
        "head_model": {"name": head.name, "builder": "tracking.head.build_default_head", "seed": seed},
        "subjects": {subject.id: subject.to_json() for subject in subjects},
    })  # fmt: skip
    num_frames = sum(r["num_frames"] for r in results if r["take"] != "calibration") * len(cameras)
    seconds = time.perf_counter() - started
    write_json(gt / "session.json", {
        "generator": GENERATOR, "gsbench_version": __version__, "preset": dataclasses.asdict(preset),
        "seed": seed, "frontal_camera": frontal, "takes": [t["id"] for t in takes],
        "timing_model": "camera frame k shows master time k/fps + time_offset_s; mic sample n holds "
                        "master sample n + time_offset_s*16000",
    })  # fmt: skip
    log(f"synth: wrote {len(takes)} takes x {len(cameras)} cameras to {out} in {seconds:.1f} s")
    return SessionSummary(
        out,
        preset.name,
        seed,
        [c.id for c in cameras],
        frontal,
        [t["id"] for t in takes],
        num_frames,
        seconds,
    )
