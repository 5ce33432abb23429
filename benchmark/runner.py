"""The benchmark runner: methods x subjects x protocols -> one job each -> ``results.json``.

Per job, ``<runs>/<dataset>/<protocol>/<method>/<subject>/`` holds::

    config.json          resolved job + method config (its sha256 is the job's config hash)
    log.txt              the job's log (appended per attempt; tracebacks of failures)
    checkpoint/          method.save() output
    checkpoint.json      written once checkpoint/ is complete: its training config hash (a re-run
                         after a kill during scoring loads it instead of retraining)
    videos/<seq>.mp4     rendered (composited) test video with the test audio
    comparison/<seq>.mp4 ground truth | rendered, side by side, with the test audio
    comparison/<seq>.png four frames: ground truth (top) over rendered (bottom)
    results.json         see benchmark.results
    results.failed.json  a failed attempt's record while results.json keeps an earlier ok result
    .lock                held while the job runs ("already running, PID N" for a second run)

A job whose results.json says ``ok`` with the same config hash is skipped unless ``force``. A job that
raises records ``status: failed`` and the error, and the other jobs continue. :func:`run_job` is a
top-level function of a picklable :class:`Job` so that executors (local, Ray) can run it anywhere the
dataset and runs folders are mounted at the same paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from benchmark import results as results_mod
from benchmark.audio_features import dataset_feature_cache
from benchmark.dataset import Dataset, load_dataset
from benchmark.methods import (
    check_budget,
    check_method_overrides,
    get_method,
    overrides_for,
    resolve_methods,
    split_method_overrides,
)
from benchmark.protocols import (
    COMPOSITING_MODES,
    COMPOSITING_VERSION,
    PROTOCOLS,
    EvalItem,
    TrainView,
    blanked_background,
    check_protocol,
    compositing_record,
    cross_id_source,
    eval_items,
    get_protocol,
    harness_background,
    over,
    own_protocol,
)
from gsbench import __version__, media
from gsbench.errors import BusyError, ConfigError, GsbenchError, MediaError, MethodError
from gsbench.io import (
    atomic_path,
    folder_lock,
    remove_stale_temporaries,
    sha256_file,
    staging_dir,
    write_json,
)
from gsbench.overrides import parse_overrides

logger = logging.getLogger("benchmark.runner")


@dataclasses.dataclass(frozen=True)
class RunOptions:
    methods: str | tuple[str, ...] = "all"
    protocols: tuple[str, ...] | None = None  # None: every protocol each method supports
    subjects: tuple[str, ...] | None = None  # None: every subject of the dataset
    budget: str = "quick"
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    force: bool = False
    videos: bool = True  # write the mp4s and comparison images
    # the SyncNet behind LSE-D/LSE-C: the official ``syncnet-v2`` or one trained here
    # (``syncnet-gsbench-<sha8>``, from ``gsbench weights train-syncnet``); never substituted
    syncnet: str = "syncnet-v2"
    # "harness": the shared compositing rule; "own": the method's own compositor (methods that list
    # "own" in Method.compositing), a separate track in folders <method>+own-compositor
    compositing: str = "harness"
    # landmarks behind LMD: "mediapipe" (offline default) or "fan" (face_alignment's 2D-FAN, registered
    # weights fan-2d); the detector is named in every LMD figure
    lmd_detector: str = "mediapipe"
    # face boxes of the SyncNet crops: "mediapipe" (default) or "s3fd" (syncnet_python's run_pipeline
    # tracks, registered weights s3fd-sfd-face); named in every LSE figure
    lse_boxes: str = "mediapipe"
    # method settings, ``--set METHOD[.BUDGET].KEY=VALUE`` as typed (gsbench.overrides); each job gets its
    # method's keys for its budget, recorded in config.json and hashed into the config hash
    overrides: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Job:
    dataset_root: str
    dataset_name: str
    dataset_hash: str
    protocol: str
    own_protocol: str | None  # the protocol a cross-id job trains under
    method: str
    subject: str
    budget: str
    seed: int
    device: str
    run_dir: str
    force: bool = False
    videos: bool = True
    syncnet: str = "syncnet-v2"
    compositing: str = "harness"
    lmd_detector: str = "mediapipe"
    lse_boxes: str = "mediapipe"
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # {dotted key: value} of its method

    @property
    def label(self) -> str:
        return f"{self.protocol}/{self.method}/{self.subject}"


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    job: Job
    status: str  # "ok" | "failed" | "skipped"
    error: str | None
    seconds: float
    results_path: str


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    dataset: Dataset
    jobs: list[Job]
    notes: list[str]  # combinations not run, and why


@dataclasses.dataclass(frozen=True)
class RunSummary:
    outcomes: list[JobOutcome]
    notes: list[str]

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def resolve_device(device: str) -> str:
    if device != "auto":
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(
                    f"--device {device}: CUDA is not available here", fix="use --device cpu or auto"
                )
        return device
    from avatars.render.backend import auto_device

    return auto_device()  # the GPU only where gsplat works on it (gsbench doctor says why not)


def plan_jobs(data: str | Path, runs_dir: str | Path, options: RunOptions) -> PlannedRun:
    """Validate the dataset and expand the selection into jobs (nothing is trained here)."""
    check_budget(options.budget)
    dataset = load_dataset(data)
    method_names = resolve_methods(options.methods)
    protocols = options.protocols or tuple(PROTOCOLS)
    for protocol in protocols:
        get_protocol(protocol)
    if options.protocols is not None:  # asked for by name: refuse what the dataset cannot do, up front
        for protocol in protocols:
            check_protocol(dataset, protocol)
    subjects = options.subjects or dataset.subjects
    unknown = [s for s in subjects if s not in dataset.subjects]
    if unknown:
        raise ConfigError(
            f"unknown subject(s) {unknown}",
            path=dataset.root / "dataset.json",
            fix=f"use subjects of the dataset: {', '.join(dataset.subjects)}",
        )
    device = resolve_device(options.device)
    if options.compositing not in COMPOSITING_MODES:
        raise ConfigError(
            f"unknown compositing mode {options.compositing!r}",
            fix=f"use one of: {', '.join(COMPOSITING_MODES)}",
        )
    jobs, notes = [], []
    settings = split_method_overrides(parse_overrides(options.overrides))
    check_method_overrides(settings)  # a bad key fails here, before any job starts
    for name, per_budget in settings.items():
        if name not in method_names:
            notes.append(f"{name}: --set {name}.* not used, {name} is not among the methods run")
        for budget in per_budget:
            if budget is not None and budget != options.budget and name in method_names:
                notes.append(f"{name}: --set {name}.{budget}.* not used at budget {options.budget}")
    for method_name in method_names:
        cls = get_method(method_name)
        if options.compositing not in cls.compositing:
            notes.append(
                f"{method_name}: has no compositor of its own (compositing {', '.join(cls.compositing)})"
            )
            continue
        folder = method_name if options.compositing == "harness" else f"{method_name}+own-compositor"
        for protocol in protocols:
            if protocol not in cls.protocols:
                notes.append(
                    f"{method_name}: does not support {protocol} (supports {', '.join(cls.protocols)})"
                )
                continue
            own = own_protocol(cls.protocols) if protocol == "cross-id" else None
            trains_as = own if protocol == "cross-id" else protocol
            if trains_as == "multiview" and len(dataset.camera_ids) < 2:
                notes.append(
                    f"{method_name}: {protocol} skipped, it trains as multiview and {dataset.name} "
                    "has one camera"
                )
                continue
            if protocol == "cross-id":
                if own is None:
                    notes.append(f"{method_name}: cross-id needs mono-front or multiview support")
                    continue
                if len(dataset.subjects) < 2:
                    notes.append(f"{method_name}: cross-id skipped, {dataset.name} has one subject")
                    continue
            for subject in subjects:
                jobs.append(
                    Job(
                        dataset_root=str(Path(dataset.root).resolve()),
                        dataset_name=dataset.name,
                        dataset_hash=dataset.content_hash,
                        protocol=protocol,
                        own_protocol=own,
                        method=method_name,
                        subject=subject,
                        budget=options.budget,
                        seed=options.seed,
                        device=device,
                        run_dir=str(Path(runs_dir).resolve() / dataset.name / protocol / folder / subject),
                        force=options.force,
                        videos=options.videos,
                        syncnet=options.syncnet,
                        compositing=options.compositing,
                        lmd_detector=options.lmd_detector,
                        lse_boxes=options.lse_boxes,
                        num_cpus=float(cls.cpus_per_job),
                        num_gpus=float(cls.gpus_per_job) if device.startswith("cuda") else 0.0,
                        overrides=overrides_for(settings, method_name, options.budget),
                    )
                )
    if not jobs:
        raise ConfigError(
            "no job to run: " + ("; ".join(notes) or "empty selection"),
            fix="choose methods and protocols that go together (see `gsbench methods`)",
        )
    return PlannedRun(dataset, jobs, notes)


def run_benchmark(
    data: str | Path, runs_dir: str | Path = "runs", options: RunOptions = RunOptions(), executor: Any = None
) -> RunSummary:
    """Plan and run every job with ``executor`` (default: :class:`benchmark.executors.LocalExecutor`)."""
    from benchmark.executors import LocalExecutor

    plan = plan_jobs(data, runs_dir, options)
    executor = executor or LocalExecutor()
    outcomes = executor.run(plan.jobs)
    return RunSummary(outcomes, plan.notes)


# --------------------------------------------------------------------------------------------------
# one job


def canonical_hash(obj: Any) -> str:
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def job_config(job: Job, method_config: dict[str, Any]) -> dict[str, Any]:
    """What determines a job's result (device and paths excluded): hashed into ``config_hash``.

    ``overrides`` (the job's ``--set`` settings) is there only when some were given, so that the hash of
    a job without any stays what it was before overrides existed (its earlier results still resume)."""
    config = {
        "dataset": {"name": job.dataset_name, "hash": job.dataset_hash},
        "protocol": job.protocol,
        "trained_as": job.own_protocol or job.protocol,
        "method": job.method,
        "subject": job.subject,
        "budget": job.budget,
        "seed": job.seed,
        "method_config": method_config,
        "compositing": {"version": COMPOSITING_VERSION, "mode": job.compositing},
        "syncnet": job.syncnet,
        "lmd_detector": job.lmd_detector,
        "lse_boxes": job.lse_boxes,
        "gsbench_version": __version__,
    }
    if job.overrides:
        config["overrides"] = dict(job.overrides)
    return config


def train_config_hash(config: dict[str, Any]) -> str:
    """Hash of what determines the trained model (shared by a method's own protocol and cross-id)."""
    keys = (
        "dataset",
        "trained_as",
        "method",
        "subject",
        "budget",
        "seed",
        "method_config",
        "gsbench_version",
        "overrides",
    )
    return canonical_hash({k: config[k] for k in keys if k in config})


@functools.cache
def git_commit() -> str:
    """The commit of the gsbench source tree (``+dirty`` with local changes), or ``unknown``."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers (recorded in every results.json)."""
    import importlib.metadata

    versions = {}
    for name in ("numpy", "torch", "opencv-contrib-python", "mediapipe", "lpips", "imageio-ffmpeg"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def device_name(device: str, rasterizer: str | None = None) -> str:
    """results.json ``device``: the rasterizer backend the job's renders ran on (``rasterizer``, the
    ``RenderOutput.backend`` a method reports in its info) or, when it reports none, the one ``auto``
    picks for ``device``: ``cuda:0 (gsplat 1.5.3)``, ``cpu (gsbench C++)``, ``cpu (gsbench torch)``."""
    from avatars.render.backend import backend_label, choose_backend

    if rasterizer:
        return backend_label(rasterizer, device)
    return choose_backend(device).label


FAILED_RESULTS = "results.failed.json"  # a failed attempt's record when results.json holds an ok result
CHECKPOINT_RECORD = "checkpoint.json"  # written after checkpoint/ is complete: its training config hash


def _status_ok(results_path: Path) -> bool:
    try:
        return json.loads(results_path.read_text()).get("status") == "ok"
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def _previous_ok(results_path: Path, config_hash: str) -> bool:
    try:
        previous = json.loads(results_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return previous.get("status") == "ok" and previous.get("config_hash") == config_hash


def run_job(job: Job) -> JobOutcome:
    """Train, render, score and record one job; never raises for a job-level failure.

    The job folder is locked while the job runs (``<job>/.lock``, released by the kernel even when
    the process is killed): a second run of the same job on the same runs folder reports "already
    running, PID N" as its outcome and writes nothing. Under the lock, the temporaries of a killed
    earlier attempt (staging folders, half-written files) are removed first."""
    run_dir = Path(job.run_dir)
    results_path = run_dir / "results.json"
    start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(folder_lock(run_dir / ".lock", f"job {job.label}"))
        except BusyError as error:
            return JobOutcome(job, "failed", str(error), time.perf_counter() - start, str(results_path))
        remove_stale_temporaries(run_dir)
        return _run_locked_job(job, run_dir, results_path, start)


def _run_locked_job(job: Job, run_dir: Path, results_path: Path, start: float) -> JobOutcome:
    handler = logging.FileHandler(run_dir / "log.txt", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(min(previous_level, logging.INFO) if previous_level else logging.INFO)
    state: dict[str, Any] = {}
    try:
        logger.info(
            "job %s on %s (budget %s, seed %d, device %s)",
            job.label,
            job.dataset_name,
            job.budget,
            job.seed,
            job.device,
        )
        method_cls = get_method(job.method)
        settings = {"overrides": job.overrides} if job.overrides else {}  # methods without any: unchanged
        method = method_cls(
            seed=job.seed, device=job.device, weights=_weight_registry(job.syncnet), **settings
        )
        config = job_config(job, method.config(job.budget))
        config_hash = canonical_hash(config)
        state.update(config=config, config_hash=config_hash, method_cls=method_cls)
        if not job.force and _previous_ok(results_path, config_hash):
            logger.info("skipped: results.json is ok with the same config hash %s", config_hash[:12])
            return JobOutcome(job, "skipped", None, time.perf_counter() - start, str(results_path))
        write_json(run_dir / "config.json", config)
        document = _execute(job, method, config, config_hash, run_dir)
        write_json(results_path, document)
        (run_dir / FAILED_RESULTS).unlink(missing_ok=True)  # of an earlier failed attempt
        logger.info("ok: results in %s", results_path)
        return JobOutcome(job, "ok", None, time.perf_counter() - start, str(results_path))
    except Exception as error:  # noqa: BLE001 - a failing job is recorded, the others continue
        message = str(error) if isinstance(error, GsbenchError) else f"{type(error).__name__}: {error}"
        logger.error("failed: %s\n%s", message, traceback.format_exc())
        failed_path = results_path
        if _status_ok(results_path):
            # A good result of an earlier attempt (e.g. before --force) stays until a new good one
            # replaces it; this attempt's failure is recorded beside it.
            failed_path = run_dir / FAILED_RESULTS
            logger.error("kept the earlier ok %s; this failure is in %s", results_path.name, failed_path.name)
        write_json(failed_path, _failed_document(job, state, message))
        return JobOutcome(job, "failed", message, time.perf_counter() - start, str(failed_path))
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


def _weight_registry(syncnet: str = "syncnet-v2") -> Any:
    from benchmark.weights import WeightRegistry

    return WeightRegistry(syncnet=syncnet)


def _base_document(job: Job, state: dict[str, Any]) -> dict[str, Any]:
    method_cls = state.get("method_cls")
    return {
        "schema": results_mod.SCHEMA,
        "schema_version": results_mod.SCHEMA_VERSION,
        "status": "ok",
        "error": None,
        "dataset": {"name": job.dataset_name, "root": job.dataset_root, "hash": job.dataset_hash},
        "protocol": job.protocol,
        "method": job.method,
        "subject": job.subject,
        "budget": job.budget,
        "seed": job.seed,
        "method_info": {
            "oracle": bool(getattr(method_cls, "oracle", False)),
            "paper": getattr(method_cls, "paper", ""),
            "protocols": list(getattr(method_cls, "protocols", ())),
            "pretrained_networks": list(getattr(method_cls, "pretrained_networks", ())),
            "trained_as": job.own_protocol or job.protocol,
            **({"overrides": dict(job.overrides)} if job.overrides else {}),
        },
        "config_hash": state.get("config_hash"),
        "compositing": compositing_record(job.compositing, []),
        "metrics": {},
        "sequences": {},
        "weights": {},
        "timing": {},
        "num_gaussians": None,
        "device": device_name(job.device),
        "gsbench_version": __version__,
        "git_commit": git_commit(),
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "platform": platform.platform(),
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _failed_document(job: Job, state: dict[str, Any], message: str) -> dict[str, Any]:
    document = _base_document(job, state)
    document.update(status="failed", error=message)
    return document


def _train_or_load(job: Job, method: Any, config: dict[str, Any], run_dir: Path, dataset: Dataset) -> dict:
    """Train (or, for cross-id, reuse the own-protocol job's checkpoint) and save the checkpoint."""
    checkpoint = run_dir / "checkpoint"
    train_hash = train_config_hash(config)
    if job.protocol == "cross-id":
        own_dir = run_dir.parent.parent.parent / job.own_protocol / job.method / job.subject
        own_config = own_dir / "config.json"
        if (own_dir / "checkpoint").is_dir() and _previous_ok(own_dir / "results.json", _hash_of(own_config)):
            if train_config_hash(json.loads(own_config.read_text())) == train_hash:
                logger.info("loading the %s checkpoint %s", job.own_protocol, own_dir / "checkpoint")
                method.load(own_dir / "checkpoint")
                own_results = json.loads((own_dir / "results.json").read_text())
                return {  # the model cost what its own job spent training it
                    "train_seconds": own_results.get("timing", {}).get("train_seconds"),
                    "checkpoint_from": str(own_dir / "checkpoint"),
                    "train_stats": own_results.get("train_stats", {}),
                }
    record_path = run_dir / CHECKPOINT_RECORD
    record = _read_json(record_path)
    if not job.force and checkpoint.is_dir() and record.get("train_config_hash") == train_hash:
        # An earlier attempt finished training and was stopped later (while scoring): at the paper
        # budget retraining would cost hours for the same model.
        logger.info(
            "reusing the complete checkpoint %s (same training config hash %s)", checkpoint, train_hash[:12]
        )
        method.load(checkpoint)
        return {
            "train_seconds": record.get("train_seconds"),
            "checkpoint_from": str(checkpoint),
            "train_stats": record.get("train_stats", {}),
        }
    workdir = staging_dir(run_dir, "work")  # this attempt's own folders: a concurrent or killed
    view = TrainView(dataset, job.protocol, job.subject, own=job.own_protocol)  # attempt has others
    logger.info("training on %d sequences, cameras %s", len(view.sequences), list(view.cameras))
    start = time.perf_counter()
    stats = method.train(view, job.budget, workdir)
    train_seconds = time.perf_counter() - start
    staging = staging_dir(run_dir, "checkpoint")
    record_path.unlink(missing_ok=True)  # no record while checkpoint/ is being replaced
    method.save(staging)
    shutil.rmtree(checkpoint, ignore_errors=True)
    staging.rename(checkpoint)
    shutil.rmtree(workdir, ignore_errors=True)
    logger.info("trained in %.1f s", train_seconds)
    stats_dict = dataclasses.asdict(stats) if dataclasses.is_dataclass(stats) else {}
    training = {
        "train_seconds": train_seconds,
        "checkpoint_from": None,
        "train_stats": results_mod._jsonable(stats_dict),
    }
    write_json(record_path, {"train_config_hash": train_hash, **training})
    return training


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _hash_of(config_path: Path) -> str:
    try:
        return canonical_hash(json.loads(config_path.read_text()))
    except (OSError, json.JSONDecodeError):
        return ""


def _execute(job: Job, method: Any, config: dict, config_hash: str, run_dir: Path) -> dict[str, Any]:
    dataset = load_dataset(job.dataset_root, check_files=False)
    if dataset.name != job.dataset_name:
        raise ConfigError(
            f"dataset name changed from {job.dataset_name!r} to {dataset.name!r}",
            path=Path(job.dataset_root) / "dataset.json",
            fix="re-plan the run",
        )
    method.audio_cache = audio_cache = dataset_feature_cache(dataset)
    state = {"config_hash": config_hash, "method_cls": type(method)}
    document = _base_document(job, state)
    document["dataset"]["subjects"] = list(dataset.subjects)
    training = _train_or_load(job, method, config, run_dir, dataset)
    items = eval_items(dataset, job.protocol, job.subject, oracle=type(method).oracle)
    mouth_box = dataset_mouth_box_size(dataset, get_protocol(job.protocol).eval_camera(dataset))
    render_seconds, frames_rendered = 0.0, 0
    per_sequence, frames, weights = {}, {}, {}
    for item in items:
        start = time.perf_counter()
        output = method.render(item.request)
        render_seconds += time.perf_counter() - start
        output.validate(item.request)
        frames_rendered += item.request.num_frames
        entry = _score_sequence(
            job, dataset, item, output, weights, run_dir, method=method, mouth_box_size=mouth_box
        )
        per_sequence[item.sequence] = entry
        frames[item.sequence] = item.request.num_frames
        logger.info("%s: %s", item.sequence, _format_metrics(entry["metrics"]))
    document["sequences"] = per_sequence
    camera = get_protocol(job.protocol).eval_camera(dataset)
    document["compositing"] = compositing_record(
        job.compositing,
        [e["compositing"] for e in per_sequence.values()],
        sha256_file(dataset.background_path(camera)) if dataset.has_background(camera) else None,
    )
    document["metrics"] = results_mod.mean_metrics({s: e["metrics"] for s, e in per_sequence.items()}, frames)
    document["weights"] = weights
    document["timing"] = {
        "train_seconds": training["train_seconds"],
        "checkpoint_from": training["checkpoint_from"],
        "render_seconds": render_seconds,
        "frames_rendered": frames_rendered,
        "render_fps": frames_rendered / render_seconds if render_seconds > 0 else None,
        # time the method spent in the dataset's audio-feature cache (computing or reading features)
        "audio_features": {
            "seconds": audio_cache.seconds,
            "computed": audio_cache.misses,
            "read": audio_cache.hits,
        },
    }
    logger.info(
        "audio features: %d computed, %d read from the cache, %.2f s",
        audio_cache.misses,
        audio_cache.hits,
        audio_cache.seconds,
    )
    document["train_stats"] = training["train_stats"]
    document["method_info"].update(results_mod._jsonable(method.info()))
    document["device"] = device_name(job.device, document["method_info"].get("rasterizer"))
    document["num_gaussians"] = method.num_gaussians()
    if job.protocol == "cross-id":
        document["method_info"]["driven_by_subject"] = cross_id_source(dataset, job.subject)
    return document


def _format_metrics(metrics: dict[str, dict]) -> str:
    return ", ".join(
        f"{k}={v['value']:.4g}" if v["status"] == "ok" else f"{k}={v['status']}" for k, v in metrics.items()
    )


def scored_frames(
    job: Job, dataset: Dataset, item: EvalItem, output: Any, method: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """(scored frames, ground truth of the driving frames, GT masks or None, compositing rule id).

    The shared rule composites the head over the camera's clean plate inside the GT mask and the GT
    frame outside it (black inside without a plate; the plate or black everywhere under cross-id); the
    own-compositor mode hands the head render and the blanked background to ``method.composite``.
    """
    camera = item.request.camera.id
    # The ground truth of the frames that drive the render (for cross-id: the driving subject's
    # frames, used for the comparison video only, never scored against).
    gt = dataset.load_images(item.sequence, camera).astype(np.float32) / 255.0
    masks = dataset.load_masks(item.sequence, camera) if item.has_ground_truth else None
    plate = dataset.load_background(camera)
    plate = None if plate is None else plate.astype(np.float32) / 255.0
    scored_gt = gt if item.has_ground_truth else None
    if job.compositing == "own":
        frames = method.composite(output, blanked_background(scored_gt, masks, plate, gt.shape))
        frames = np.asarray(frames, np.float32)
        if frames.shape != gt.shape:
            raise MethodError(
                f"{job.method}.composite returned {frames.shape}, expected {gt.shape}",
                fix="return one whole frame per requested frame at the camera's size",
            )
        return np.clip(frames, 0.0, 1.0), gt, masks, "own-compositor"
    background, rule = harness_background(scored_gt, masks, plate, gt.shape)
    return over(output.rgb, output.alpha, background), gt, masks, rule


def dataset_mouth_box_size(dataset: Dataset, camera: str) -> int:
    """Side of the lip box (``benchmark.metrics.mouth``) of ``camera`` on ``dataset``: from the
    ground-truth landmarks of every sequence (all subjects and splits), so that every subject and method
    of a dataset is scored in a box of the same size."""
    from benchmark.metrics import mouth

    extents = [mouth.mouth_extent(*dataset.load_landmarks(seq, camera)) for seq in dataset.sequences]
    return mouth.mouth_box_size(np.concatenate(extents), dataset.image_size)


def _score_sequence(
    job: Job,
    dataset: Dataset,
    item: EvalItem,
    output: Any,
    weights: dict,
    run_dir: Path,
    method: Any = None,
    mouth_box_size: int | None = None,
) -> dict[str, Any]:
    request = item.request
    camera = request.camera.id
    pred, gt, masks, rule = scored_frames(job, dataset, item, output, method)
    if item.has_ground_truth:
        metrics = compute_sequence_metrics(
            pred,
            gt,
            masks,
            request.audio,
            request.fps,
            gt_landmarks=dataset.load_landmarks(item.sequence, camera),
            syncnet=job.syncnet,
            mouth_box_size=mouth_box_size,
            lmd_detector=job.lmd_detector,
            lse_boxes=job.lse_boxes,
        )
    else:
        metrics = compute_sequence_metrics(
            pred, None, None, request.audio, request.fps, syncnet=job.syncnet, lse_boxes=job.lse_boxes
        )
    for name, entry in metrics.items():
        if entry.get("weight_id"):
            weights[name] = entry["weight_id"]
    entry: dict[str, Any] = {
        "num_frames": request.num_frames,
        "driven_by": item.sequence,
        "compositing": rule,
        "predictions_sha256": hashlib.sha256(
            _to_uint8(pred).tobytes()
        ).hexdigest(),  # composited uint8 frames
        "metrics": metrics,
    }
    if job.videos:
        audio_path = dataset.audio_path(item.sequence)
        pred_u8 = _to_uint8(pred)
        gt_u8 = _to_uint8(gt)
        write_video(run_dir / "videos" / f"{item.sequence}.mp4", pred_u8, request.fps, audio_path)
        side = np.concatenate([gt_u8, pred_u8], axis=2)
        write_video(run_dir / "comparison" / f"{item.sequence}.mp4", side, request.fps, audio_path)
        write_comparison_png(run_dir / "comparison" / f"{item.sequence}.png", gt_u8, pred_u8)
        entry["video"] = f"videos/{item.sequence}.mp4"
        entry["comparison"] = [f"comparison/{item.sequence}.mp4", f"comparison/{item.sequence}.png"]
    return entry


def compute_sequence_metrics(
    pred: np.ndarray,
    gt: np.ndarray | None,
    masks: np.ndarray | None,
    audio: np.ndarray,
    fps: float,
    gt_landmarks: tuple[np.ndarray, np.ndarray] | None = None,
    syncnet: str = "syncnet-v2",
    mouth_box_size: int | None = None,
    lmd_detector: str = "mediapipe",
    lse_boxes: str = "mediapipe",
) -> dict[str, dict[str, Any]]:
    """Score one composited sequence with ``benchmark.metrics.compute_metrics`` (the one implementation).

    ``gt is None`` (cross-id): only LSE-D/LSE-C are computed; the image metrics are recorded as
    ``skipped`` (no ground truth of the driven subject exists). ``gt_landmarks``: the dataset's
    tracked landmarks of the evaluation camera, so LMD uses the same detector output as tracking.
    ``syncnet``: the registered SyncNet for LSE-D/LSE-C (missing weights make them ``missing``).
    ``mouth_box_size``: the dataset's lip-box side for ``*_mouth`` (None: from this sequence's GT).
    """
    from benchmark.metrics import compute_metrics

    registry = _weight_registry(syncnet)
    if gt is None:
        # Only the sync metrics are requested, which read pred and audio alone; compute_metrics checks
        # gt's shape, so pred stands in for it and no image metric is computed from it.
        results = compute_metrics(
            pred,
            pred,
            audio=audio,
            fps=fps,
            weights=registry,
            metrics=("lse_d", "lse_c"),
            lse_boxes=lse_boxes,
        )
        entries = {name: results_mod.metric_entry(result) for name, result in results.items()}
        for name, info in results_mod.METRICS.items():
            if not info.sync and (masks is not None or not name.endswith("_masked")):
                entries[name] = {
                    "value": None,
                    "status": "skipped",
                    "direction": info.direction,
                    "weight_id": None,
                    "reason": "cross-id: no ground-truth frames of the driven subject",
                    "details": {},
                }
        return entries
    results = compute_metrics(
        pred,
        gt,
        masks=masks,
        audio=audio,
        fps=fps,
        weights=registry,
        gt_landmarks=gt_landmarks,
        mouth_box_size=mouth_box_size,
        lmd_detector=lmd_detector,
        lse_boxes=lse_boxes,
    )
    return {name: results_mod.metric_entry(result) for name, result in results.items()}


def _to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: float, audio_path: Path | None = None) -> None:
    """H.264 mp4 of ``frames [T, H, W, 3] uint8 RGB`` at ``fps`` with ``audio_path`` muxed as AAC
    (:func:`gsbench.media.write_video`, :data:`gsbench.media.RESULT_ENCODING`)."""
    media.write_video(path, frames, fps, audio_path, encoding=media.RESULT_ENCODING)
    logger.info("wrote %s (%d frames)", path, frames.shape[0])


def write_comparison_png(path: Path, gt: np.ndarray, pred: np.ndarray, columns: int = 4) -> None:
    """A grid of ``columns`` evenly spaced frames: ground truth on top, rendered below."""
    import cv2

    index = np.unique(np.linspace(0, gt.shape[0] - 1, min(columns, gt.shape[0])).round().astype(int))
    grid = np.concatenate(
        [np.concatenate(list(gt[index]), axis=1), np.concatenate(list(pred[index]), axis=1)], axis=0
    )
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(grid[:, :, ::-1])):
            raise MediaError("cannot write PNG", path=path, fix="check the disk")


def outcome_rows(summary: RunSummary) -> list[dict[str, str]]:
    """The summary table: one row per job with its status and (for ok jobs) a few mean metrics."""
    rows = []
    for outcome in summary.outcomes:
        row = {
            "protocol": outcome.job.protocol,
            "method": outcome.job.method,
            "subject": outcome.job.subject,
            "status": outcome.status,
            "seconds": f"{outcome.seconds:.1f}",
            "detail": outcome.error or "",
        }
        if outcome.status in ("ok", "skipped") and Path(outcome.results_path).is_file():
            try:
                metrics = json.loads(Path(outcome.results_path).read_text()).get("metrics", {})
                row["detail"] = (
                    ", ".join(
                        f"{k}={v['value']:.3f}"
                        for k, v in metrics.items()
                        if v.get("status") == "ok" and k in ("psnr", "ssim", "lpips", "lmd", "lse_d", "lse_c")
                    )
                    or "no metric ok (see results.json)"
                )
            except (OSError, json.JSONDecodeError, TypeError, ValueError):
                pass
        rows.append(row)
    return rows


__all__ = ["Job", "JobOutcome", "RunOptions", "RunSummary", "plan_jobs", "run_benchmark", "run_job"]
