"""The ``track`` stage: fit FLAME to every subject of a dataset and write flame.npz + reports.

Per subject, all its sequences are fitted together (the shape is shared). Outputs, each written
atomically:

- ``sequences/<seq>/flame.npz``: per-frame ``expr [T,E]``, ``jaw_pose``, ``neck_pose``, ``rotation``,
  ``translation [T,3]``, ``eyes_pose [T,6]`` and the subject's ``shape [S]`` (model sizes);
- ``reports/tracking.json``: per subject (stages, timings, energies) and per sequence (per camera
  and per frame reprojection errors, cameras/frames without detections, failures);
- ``reports/tracking/<subject>_mediapipe_embedding.npz``: the stage-2 embedding of the 478
  MediaPipe points (``faces_idx [478]``, ``bary_coords [478,3]``, ``valid [478]``);
- ``reports/tracking/<seq>_overlay.png`` and ``<seq>_error.png``.

Resuming: a subject whose inputs (landmarks, cameras, head model, config) hash to the value
stored in tracking.json and whose flame.npz files all exist is skipped. A sequence with bad input
is reported and left out; the others are still tracked and written, then a :class:`StageError`
lists the failures.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gsbench.errors import GsbenchError, InputError, StageError
from gsbench.io import save_npz, sha256_file, write_json
from gsbench.progress import log as progress_log
from tracking.fit.config import TrackingConfig
from tracking.fit.dataset_io import DatasetInfo, observations, read_dataset, read_landmarks
from tracking.fit.report import write_error_plot, write_overlay
from tracking.fit.solver import (
    FRAME_KEYS,
    FitResult,
    Observations,
    fit_subject,
    fixed_mediapipe_embedding,
    residual_statistics,
)
from tracking.head_model import HeadModel
from tracking.landmarks import mediapipe_embedding_path

REPORT_SCHEMA_VERSION = 1
DEFAULT_CONFIG = TrackingConfig()


def resolve_head_model(
    head_model: HeadModel | str | Path | None, landmark_embedding: str | Path | None = None
):
    """``None`` -> the default gsbench-head; a path -> a FLAME/gsbench-head file; a HeadModel as is."""
    if isinstance(head_model, HeadModel):
        return head_model
    if head_model is None:
        from tracking.head import build_default_head

        return build_default_head()
    from tracking.flame_io import load_head_model

    return load_head_model(Path(head_model), landmark_embedding=landmark_embedding)


def head_model_fingerprint(head_model: HeadModel) -> str:
    digest = hashlib.sha256()
    for key in (
        "v_template",
        "faces",
        "shapedirs",
        "exprdirs",
        "posedirs",
        "lbs_weights",
        "J_regressor",
        "lmk_faces_idx",
        "lmk_bary_coords",
    ):
        digest.update(np.ascontiguousarray(getattr(head_model, key)).tobytes())
    return digest.hexdigest()


def _subject_inputs_hash(
    info: DatasetInfo, sequences: list[str], config: TrackingConfig, model_id: str
) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(config.to_json(), sort_keys=True).encode())
    digest.update(model_id.encode())
    if config.mediapipe_embedding != "subject":
        embedding = Path(config.mediapipe_embedding_file or mediapipe_embedding_path())
        digest.update(sha256_file(embedding).encode() if embedding.is_file() else b"missing")
    digest.update(sha256_file(info.root / "cameras.json").encode())
    digest.update(json.dumps(info.camera_ids).encode())
    for sequence in sequences:
        path = info.sequence_dir(sequence) / "landmarks.npz"
        digest.update(sequence.encode())
        digest.update(sha256_file(path).encode() if path.is_file() else b"missing")
        digest.update(str(info.num_frames(sequence)).encode())
    return digest.hexdigest()


def _read_previous(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) and data.get("schema_version") == REPORT_SCHEMA_VERSION else {}


def track_dataset(
    dataset_dir: str | Path,
    head_model: HeadModel | str | Path | None = None,
    config: TrackingConfig = DEFAULT_CONFIG,
    *,
    landmark_embedding: str | Path | None = None,
    subjects: list[str] | None = None,
    force: bool = False,
    plots: bool = True,
    log: Callable[[str], None] = progress_log,
) -> dict:
    """Track every subject of ``dataset_dir``; returns the tracking report (also in reports/tracking.json).

    Raises :class:`StageError` after writing everything it could if some sequence failed.
    """
    info = read_dataset(dataset_dir)
    model = resolve_head_model(head_model, landmark_embedding)
    model_id = head_model_fingerprint(model)
    fixed_mediapipe_embedding(model, config)  # a bad embedding setting fails here, before any fitting
    report_path = info.root / "reports" / "tracking.json"
    figures = info.root / "reports" / "tracking"
    previous = _read_previous(report_path)
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "head_model": model.name,
        "head_model_sha256": model_id,
        "config": config.to_json(),
        "subjects": dict(previous.get("subjects", {}))
        if previous.get("head_model_sha256") == model_id
        else {},
        "sequences": dict(previous.get("sequences", {}))
        if previous.get("head_model_sha256") == model_id
        else {},
    }
    by_subject = info.subject_sequences()
    unknown = sorted(set(subjects or []) - set(by_subject))
    if unknown:
        raise InputError(
            f"unknown subjects {unknown}",
            path=info.root / "dataset.json",
            fix=f"choose among {sorted(by_subject)}",
        )
    failures: dict[str, str] = {}
    for subject, sequences in sorted(by_subject.items()):
        if subjects and subject not in subjects:
            continue
        inputs_hash = _subject_inputs_hash(info, sequences, config, model_id)
        done = report["subjects"].get(subject, {})
        if (
            not force
            and done.get("inputs_sha256") == inputs_hash
            and all((info.sequence_dir(s) / "flame.npz").is_file() for s in done.get("sequences", []))
            and set(done.get("sequences", [])) | set(done.get("failed_sequences", [])) == set(sequences)
            and not done.get("failed_sequences")
        ):
            log(f"tracking {subject}: up to date, skipped")
            continue
        landmarks = {}
        for sequence in sequences:
            try:
                landmarks[sequence] = read_landmarks(info, sequence)
            except GsbenchError as error:
                failures[sequence] = str(error)
                report["sequences"][sequence] = {"subject": subject, "status": "failed", "error": str(error)}
                log(f"[red]tracking {sequence}: {error}[/red]")
        if not landmarks:
            report["subjects"][subject] = {
                "inputs_sha256": None,
                "sequences": [],
                "failed_sequences": sequences,
            }
            write_json(report_path, report)
            continue
        names = list(landmarks)
        obs = observations(info, names, landmarks)
        started = time.perf_counter()
        log(
            f"tracking {subject}: {len(names)} sequences, {obs.num_frames} frames, "
            f"{len(info.camera_ids)} cameras"
        )
        try:
            result = fit_subject(model, obs, config, label=subject, log=log)
        except StageError as error:
            for sequence in names:
                failures[sequence] = str(error)
                report["sequences"][sequence] = {"subject": subject, "status": "failed", "error": str(error)}
            report["subjects"][subject] = {
                "inputs_sha256": None,
                "sequences": [],
                "failed_sequences": sequences,
            }
            write_json(report_path, report)
            continue
        seconds = time.perf_counter() - started
        _write_subject(info, subject, names, landmarks, obs, result, model, report, figures, plots)
        report["subjects"][subject] = {
            "inputs_sha256": inputs_hash if len(names) == len(sequences) else None,
            "sequences": names,
            "failed_sequences": [s for s in sequences if s not in landmarks],
            "seconds": round(seconds, 2),
            "num_frames": obs.num_frames,
            "world_scale_estimate": result.world_scale,
            "stages": result.stages,
            "reprojection": residual_statistics(result.residuals_px, result.visibility),
            "shape_l2": float(np.linalg.norm(result.params["shape"])),
        }
        if not 0.7 < result.world_scale < 1.4:
            log(
                f"[yellow]tracking {subject}: the landmarks look {result.world_scale:.2f}x "
                "the head model's size; "
                "is the calibration metric?[/yellow]"
            )
        write_json(report_path, report)
        log(
            f"tracking {subject}: done in {seconds:.1f} s, median reprojection "
            f"{report['subjects'][subject]['reprojection']['median_px']:.2f} px"
        )
    if failures:
        lines = "; ".join(f"{sequence}: {error}" for sequence, error in sorted(failures.items()))
        raise StageError(
            f"tracking failed for {len(failures)} sequence(s) (the others were written): {lines}",
            path=report_path,
            fix="see reports/tracking.json",
        )
    return report


def _write_subject(
    info: DatasetInfo,
    subject: str,
    names: list[str],
    landmarks: dict,
    obs: Observations,
    result: FitResult,
    model: HeadModel,
    report: dict,
    figures: Path,
    plots: bool,
) -> None:
    save_npz(
        figures / f"{subject}_mediapipe_embedding.npz",
        faces_idx=result.embedding_faces,
        bary_coords=result.embedding_bary,
        valid=result.embedding_valid,
    )
    fps = float(info.meta.get("fps", 25.0))
    for index, sequence in enumerate(names):
        frames = np.flatnonzero(obs.frame_sequence == index)
        params = {key: result.params[key][frames].astype(np.float32) for key in FRAME_KEYS}
        params["shape"] = result.params["shape"].astype(np.float32)
        save_npz(info.sequence_dir(sequence) / "flame.npz", **params)
        residuals = result.residuals_px[:, frames]
        visibility = result.visibility[:, frames]
        per_camera = {
            cam: residual_statistics(residuals[c], visibility[c]) for c, cam in enumerate(info.camera_ids)
        }
        visible = np.where(visibility >= 0.5, residuals, np.nan)
        with np.errstate(all="ignore"):
            per_frame = np.nanmedian(visible.transpose(1, 0, 2).reshape(len(frames), -1), axis=1)
        jaw_deg = np.degrees(params["jaw_pose"][:, 0])
        report["sequences"][sequence] = {
            "subject": subject,
            "status": "ok",
            "num_frames": int(len(frames)),
            "cameras_without_detections": landmarks[sequence].cameras_without_detections,
            "frames_without_detections": landmarks[sequence].frames_without_detections,
            "reprojection": residual_statistics(residuals, visibility),
            "per_camera": per_camera,
            "per_frame_median_px": [None if not np.isfinite(v) else round(float(v), 4) for v in per_frame],
            "jaw_opening_deg": [round(float(v), 3) for v in jaw_deg],
        }
        if plots:
            write_error_plot(figures / f"{sequence}_error.png", sequence, per_frame, jaw_deg, fps)
            write_overlay(
                figures / f"{sequence}_overlay.png",
                info.sequence_dir(sequence),
                model,
                {key: result.params[key][frames] for key in FRAME_KEYS} | {"shape": result.params["shape"]},
                landmarks[sequence].points,
                result.embedding_faces,
                result.embedding_bary,
                info.camera_ids,
                info.intrinsics,
                info.world_to_cam,
                info.image_sizes,
            )
