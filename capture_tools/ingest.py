"""``gsbench ingest``: a raw rig session -> the dataset layout of DESIGN.md, in resumable stages.

Stages, in order: probe -> sync -> calibrate -> frames -> masks -> backgrounds -> landmarks -> track,
one module each in ``capture_tools/stages/`` (listed in ``capture_tools.stages.ORDER``); more plug in
with :func:`register_stage`. Each stage

* declares its **inputs** (a JSON-able dict: the parts of earlier stages' results it reads, which
  include the sha256 of every raw file) and its **parameters**; their hash is the stage **key**;
* is skipped when its recorded key equals the current one and its outputs exist (``--force`` reruns);
* writes ``reports/<stage>.json`` (``calibration.json`` for calibrate, as DESIGN.md lists it) =
  ``{"result": ..., "params": ..., "seconds": ...}``; the digest of
  ``result`` is what later stages' keys see, so re-running a stage that produces the same result does
  not invalidate what follows;
* on failure removes only its own record (so the next run retries it) and leaves everything earlier
  untouched.

Changing one raw file re-runs probe (it re-hashes every file) and then only the stages whose inputs
include that file: a fixed calibration video re-runs calibrate but not sync.

State lives in ``<dataset>/.ingest/state.json``. ``dataset.json`` and ``cameras.json`` are rewritten at
the end of every run in which the frames stage is up to date. Ingest never reads ``ground_truth/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from capture_tools.calibrate import CalibrationParams, undistorted_size_K
from capture_tools.frames import FrameParams
from capture_tools.masks import MaskParams
from capture_tools.rig import RigSpec, load_rig
from capture_tools.sync import SyncParams
from gsbench import __version__
from gsbench.dataset import SCHEMA_VERSION, write_cameras_json, write_dataset_json
from gsbench.errors import InputError, StageError
from gsbench.io import folder_lock, json_default, remove_stale_temporaries, sha256_file, write_json
from gsbench.progress import log, track
from gsbench.workers import init_worker, terminate_pool


@dataclass(frozen=True)
class IngestParams:
    frames: FrameParams = FrameParams()
    sync: SyncParams = SyncParams()
    calibration: CalibrationParams = CalibrationParams()
    masks: MaskParams = MaskParams()
    split_seed: int = 0
    workers: int = 1  # processes for the per-camera work of frames, masks and landmarks
    # the track stage's tracking.fit.TrackingConfig (gsbench ingest --set tracking.KEY=VALUE); None: its
    # defaults, which leaves the stage key of an ingest without tracking settings as it was
    tracking: Any = None


@dataclass
class Context:
    rig: RigSpec
    out: Path
    params: IngestParams
    results: dict[str, dict] = field(default_factory=dict)  # stage -> its current result
    file_hashes: dict[tuple, str] = field(default_factory=dict)  # (path, size, mtime_ns) -> sha256
    _executor: Any = field(default=None, repr=False)

    def executor(self) -> Any:
        """The pool of ``params.workers`` spawned processes that every stage of this run shares: a
        worker pays for its imports (cv2, mediapipe: seconds) once, not once per stage."""
        if self._executor is None:
            import concurrent.futures
            import multiprocessing

            context = multiprocessing.get_context("spawn")  # mediapipe and torch do not survive fork
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.params.workers,
                mp_context=context,
                initializer=init_worker,  # workers die with this process and leave Ctrl-C to it
                initargs=(os.getpid(),),
            )
        return self._executor

    def close(self, abort: bool = False) -> None:
        """Shut the pool down; ``abort`` (an error or Ctrl-C): kill the workers, do not wait for them."""
        if self._executor is not None:
            if abort:
                terminate_pool(self._executor)
            else:
                self._executor.shutdown(cancel_futures=True)
            self._executor = None

    @property
    def reports(self) -> Path:
        return self.out / "reports"

    def sequence_dir(self, take_id: str) -> Path:
        return self.out / "sequences" / take_id

    def fps_out(self) -> float:
        return self.params.frames.fps or self.rig.fps

    def size_out(self) -> tuple[int, int]:
        if self.params.frames.size is not None:
            return self.params.frames.size
        info = self.results["probe"]["image_size"]
        return int(info[0]), int(info[1])


@dataclass(frozen=True)
class Stage:
    """What a stage declares; the driver (:func:`ingest`) does the rest (keys, skipping, reports)."""

    name: str
    run: Callable[[Context], dict]  # returns the stage's deterministic result (JSON-able)
    inputs: Callable[[Context], Any]  # what the result depends on (besides params)
    params: Callable[[IngestParams], Any]
    outputs_exist: Callable[[Context, dict], bool] = lambda ctx, result: True
    report: str | None = None  # reports/<report>.json; default: the stage name
    needs_dataset_files: bool = False  # dataset.json/cameras.json are written before it runs
    # The files it writes besides its report, relative to the dataset folder; {sequence}, {camera} and
    # {frame:05d} stand for every sequence, camera and frame index, * for any file name.
    outputs: tuple[str, ...] = ()

    @property
    def report_name(self) -> str:
        return self.report or self.name


_REGISTERED: dict[str, Stage] = {}  # stages added with register_stage, run after the built-in ones


def register_stage(stage: Stage) -> None:
    """Add a stage after the built-in ones of ``capture_tools.stages`` (or replace one of the same name)."""
    _REGISTERED[stage.name] = stage


def all_stages() -> dict[str, Stage]:
    """Every stage by name, in the order ingest runs them."""
    from capture_tools.stages import builtin_stages

    stages = {stage.name: stage for stage in builtin_stages()}
    stages.update(_REGISTERED)
    return stages


def stage_names() -> list[str]:
    return list(all_stages())


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=json_default, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class _State:
    def __init__(self, out: Path):
        self.path = out / ".ingest" / "state.json"
        self.records: dict[str, dict] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self) -> None:
        write_json(self.path, self.records)

    def drop(self, name: str) -> None:
        if self.records.pop(name, None) is not None:
            self.save()


def _load_result(ctx: Context, stage: Stage) -> dict | None:
    path = ctx.reports / f"{stage.report_name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["result"]


def parse_stages(text: str | None) -> list[str] | None:
    """``"probe,sync"`` or ``"frames-"`` (from frames on) or ``"-calibrate"`` (up to calibrate)."""
    if text is None or text.strip() in ("", "all"):
        return None
    names = stage_names()
    chosen: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            first, _, last = part.partition("-")
            start = names.index(first) if first else 0
            stop = names.index(last) + 1 if last else len(names)
            if (first and first not in names) or (last and last not in names):
                raise InputError(f"unknown stage in --stages {text!r}", fix=f"stages: {', '.join(names)}")
            chosen.extend(names[start:stop])
        elif part in names:
            chosen.append(part)
        else:
            raise InputError(f"unknown stage {part!r} in --stages", fix=f"stages: {', '.join(names)}")
    return [n for n in names if n in chosen]


@dataclass
class IngestSummary:
    out: Path
    ran: list[str]
    skipped: list[str]
    seconds: dict[str, float]


def ingest(
    session: str | Path,
    out: str | Path,
    params: IngestParams = IngestParams(),
    stages: list[str] | None = None,
    force: bool = False,
) -> IngestSummary:
    """Run the selected stages (default: all) of ``session`` into the dataset folder ``out``."""
    rig = load_rig(session)
    out = Path(out).resolve()
    if out == rig.root or out in rig.root.parents:
        raise InputError(
            "the dataset folder must not be the session folder or contain it",
            path=out,
            fix="write the dataset to a separate folder, e.g. -o data/<name>",
        )
    _check_output(out)
    (out / ".ingest").mkdir(parents=True, exist_ok=True)  # marks the folder as ingest's from the start
    with folder_lock(out / ".ingest" / "lock", f"gsbench ingest into {out}"):
        remove_stale_temporaries(out)  # of a killed earlier run; no other ingest runs here now
        ctx = Context(rig=rig, out=out, params=params)
        try:
            summary = _run_stages(ctx, stages, force)
        except BaseException:
            ctx.close(abort=True)
            raise
        ctx.close()
        return summary


def _check_output(out: Path) -> None:
    """Ingest owns its dataset folder (it clears stages' output folders before rewriting them): it
    writes only into a new or empty folder or into one an earlier ingest made (``.ingest/``)."""
    if out.exists() and not out.is_dir():
        raise InputError(
            "dataset path exists and is not a folder", path=out, fix="pass a new or empty folder"
        )
    if out.is_dir() and not (out / ".ingest").is_dir() and any(out.iterdir()):
        raise InputError(
            "output folder is not empty and is not a gsbench dataset (no .ingest/ from an earlier ingest)",
            path=out,
            fix="pass a new or empty folder; ingest never writes among files it did not make",
        )


def _run_stages(ctx: Context, stages: list[str] | None, force: bool) -> IngestSummary:
    out, params = ctx.out, ctx.params
    state = _State(out)
    registry = all_stages()
    selected = list(registry) if stages is None else stages
    ran, skipped, seconds = [], [], {}
    for name, stage in registry.items():
        try:
            inputs = stage.inputs(ctx)
        except _Missing as missing:
            if name in selected:
                raise StageError(
                    f"stage {name} needs the result of stage {missing.stage}, which has not run "
                    "or is out of date",
                    path=out,
                    fix=f"run with --stages {missing.stage},{name} (or without --stages)",
                ) from None
            continue
        key = _digest(
            {"stage": name, "params": stage.params(params), "inputs": inputs, "version": __version__}
        )
        record = state.records.get(name)
        previous = _load_result(ctx, stage) if record else None
        up_to_date = (
            record is not None
            and record.get("key") == key
            and previous is not None
            and stage.outputs_exist(ctx, previous)
        )
        if name not in selected or (up_to_date and not force):
            if up_to_date:
                ctx.results[name] = previous
                if name in selected:
                    skipped.append(name)
                    log(f"[dim]{name}: up to date[/dim]")
            continue
        state.drop(name)
        if stage.needs_dataset_files:
            write_dataset_files(ctx, state)
        log(f"[bold]{name}[/bold]: running")
        started = time.perf_counter()
        result = stage.run(ctx)
        elapsed = time.perf_counter() - started
        write_json(
            ctx.reports / f"{stage.report_name}.json",
            {
                "stage": name,
                "result": result,
                "params": stage.params(params),
                "seconds": elapsed,
                "gsbench_version": __version__,
            },
        )
        ctx.results[name] = json.loads(json.dumps(result, default=json_default))
        state.records[name] = {
            "key": key,
            "result_sha256": _digest(result),
            "seconds": elapsed,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "params": stage.params(params),
        }
        state.save()
        ran.append(name)
        seconds[name] = elapsed
        log(f"{name}: done in {elapsed:.1f} s")
    if "frames" in ctx.results and "calibrate" in ctx.results and "sync" in ctx.results:
        write_dataset_files(ctx, state)
    return IngestSummary(out=out, ran=ran, skipped=skipped, seconds=seconds)


class _Missing(Exception):
    def __init__(self, stage: str):
        self.stage = stage


def need(ctx: Context, stage: str) -> dict:
    """The current result of an earlier stage (raises inside ``inputs`` when it is missing/stale)."""
    if stage not in ctx.results:
        raise _Missing(stage)
    return ctx.results[stage]


def run_jobs(ctx: Context, function: Callable[[Any], Any], jobs: list, description: str) -> Iterator:
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


def split_sequences(sequences: dict[str, dict], seed: int) -> dict[str, dict[str, list[str]]]:
    """Per subject, seeded: shuffle; 1/6 (at least 1) test, 1 val when >= 4 sequences, rest train."""
    by_subject: dict[str, list[str]] = {}
    for seq, info in sorted(sequences.items()):
        by_subject.setdefault(info["subject"], []).append(seq)
    splits = {}
    for subject, seqs in sorted(by_subject.items()):
        rng = np.random.default_rng([seed, zlib.crc32(subject.encode())])
        order = [seqs[i] for i in rng.permutation(len(seqs))]
        num_test = max(1, len(seqs) // 6)
        num_val = 1 if len(seqs) >= 4 else 0
        splits[subject] = {
            "train": sorted(order[num_test + num_val :]),
            "val": sorted(order[num_test : num_test + num_val]),
            "test": sorted(order[:num_test]),
        }
    return splits


def write_dataset_files(ctx: Context, state: _State) -> None:
    rig = ctx.rig
    calibration = ctx.results["calibrate"]["cameras"]
    frames = ctx.results["frames"]
    width, height = frames["image_size"]
    cameras = {}
    for camera in rig.camera_ids:
        cal = calibration[camera]
        K = undistorted_size_K(np.asarray(cal["K"]), cal["width"], cal["height"], width, height)
        cameras[camera] = {
            "K": K.tolist(),
            "world_to_cam": cal["world_to_cam"],
            "width": width,
            "height": height,
        }
    write_cameras_json(ctx.out, cameras)
    sequences = {
        take.id: {
            "subject": take.subject,
            "num_frames": frames["sequences"][take.id]["num_frames"],
            "duration_s": frames["sequences"][take.id]["num_frames"] / frames["fps"],
        }
        for take in rig.takes
    }
    inputs = {}
    probe = ctx.results["probe"]
    for entry in probe["files"].values():
        inputs[entry["path"]] = entry["sha256"]
    dataset = {
        "schema_version": SCHEMA_VERSION,
        "name": rig.name,
        "fps": frames["fps"],
        "image_size": [height, width],  # [H, W], as benchmark.dataset reads it
        "frontal_camera": rig.frontal_camera,
        "cameras": rig.camera_ids,
        "subjects": sorted({t.subject for t in rig.takes}),
        "sequences": sequences,
        "splits": split_sequences(sequences, ctx.params.split_seed),
        "split_seed": ctx.params.split_seed,
        "provenance": {
            "gsbench_version": __version__,
            "source": str(rig.root),
            "inputs_sha256": inputs,
            "stages": {
                name: {
                    "params": record.get("params"),
                    "key": record["key"],
                    "result_sha256": record["result_sha256"],
                    "seconds": record["seconds"],
                    "finished": record["finished"],
                }
                for name, record in state.records.items()
            },
        },
    }
    write_dataset_json(ctx.out, dataset)


def hash_inputs(rig: RigSpec, cache: dict[tuple, str] | None = None) -> dict[str, dict]:
    """sha256 of every raw file rig.yaml points at: ``{id: {"path": relative, "sha256": ...}}``.

    Missing files get ``sha256: None`` (the probe stage reports them). ``cache`` (keyed by path, size
    and mtime) avoids hashing a file twice in one run."""
    files: dict[str, Path] = {"rig.yaml": rig.rig_file}
    for take in rig.takes:
        files[f"takes/{take.id}/audio"] = rig.take_audio(take.id)
        for camera in rig.camera_ids:
            files[f"takes/{take.id}/{camera}"] = rig.take_video(take.id, camera)
    if rig.calibration is not None:
        for camera in rig.camera_ids:
            files[f"calibration/{camera}"] = rig.calibration_video(camera)
    for camera in rig.camera_ids:
        plate = rig.background_plate(camera)
        if plate is not None:
            files[f"background/{camera}"] = plate
    cache = {} if cache is None else cache

    def digest(path: Path) -> str | None:
        if not path.exists():
            return None
        if path.is_dir():  # a camera stored as an image folder: the digest of its files' digests
            files = sorted(p for p in path.iterdir() if p.is_file())
            return hashlib.sha256("".join(f"{p.name}:{digest(p)}\n" for p in files).encode()).hexdigest()
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in cache:
            cache[key] = sha256_file(path)
        return cache[key]

    return {
        key: {
            "path": str(path.relative_to(rig.root)) if path.is_relative_to(rig.root) else str(path),
            "sha256": digest(path),
        }
        for key, path in files.items()
    }


def clear_dir(path: Path) -> None:
    """Remove a stage's own output folder before rewriting it (never an earlier stage's)."""
    if path.exists():
        shutil.rmtree(path)


__all__ = [
    "IngestParams",
    "Stage",
    "Context",
    "ingest",
    "register_stage",
    "all_stages",
    "stage_names",
    "need",
    "run_jobs",
]
