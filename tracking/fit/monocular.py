"""Monocular FLAME tracking of a one-camera dataset (``gsbench ingest VIDEO``), focal length estimated.

The camera is fixed and the rigid head pose carries all motion (as in VHAP's and the metrical
tracker's monocular mode). The same solver as the multi-view tracker (tracking/fit/solver.py: the
same energy, robust data term, priors, joint limits and temporal terms on landmark trajectories and
expressions) runs with one camera; what changes:

* **stage 0** (rigid initialisation): per frame, OpenCV ``solvePnP`` of the template's 68 iBUG points
  (where the fixed MediaPipe embedding puts them) to the detected ones (EPnP, then Levenberg-Marquardt),
  instead of triangulation, which needs two cameras; frames without a face take the nearest tracked
  frame's pose (their landmarks carry no weight);
* **focal length** (when not given): the one minimising the landmark energy of a rigid + shape + jaw
  fit on frames spread over all sequences, found by a golden-section search over ln f
  (:func:`estimate_focal`; VHAP and the metrical tracker optimise it by gradient descent with the
  other parameters, which did not move it here). It is observable through perspective only: the head
  model's metric size and the shape prior fix the scale, so a wrong ``f`` can only be met by a wrong
  distance, which distorts the near (nose) and far (ears, jaw) points differently, and more so as
  the head turns. MediaPipe's points carry a bias of their own, so the estimate is biased
  (benchmarks/monocular.py measures it against the truth); ``--focal`` overrides it;
* the MediaPipe embedding is the head model's fixed one (a per-subject embedding triangulates).

With several subjects (several videos) each subject's focal length is estimated and the dataset's
one camera takes their median (the layout has one K per camera); every subject is then tracked with
it, and the spread is reported.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gsbench.dataset import landmarks_path, read_landmarks, write_cameras_json
from gsbench.errors import InputError, StageError
from gsbench.io import write_json
from gsbench.progress import log as progress_log
from tracking.fit.config import TrackingConfig
from tracking.fit.dataset_io import FIX_INGEST, SequenceLandmarks, observations, read_dataset
from tracking.fit.solver import (
    _TRANSLATION_UNIT,
    Observations,
    _LandmarkTerm,
    _minimize,
    _normal_sign,
    _Problem,
    _stack_init,
    _subset,
    calibration_frames,
    fit_subject,
    fixed_mediapipe_embedding,
    residual_statistics,
)
from tracking.head_model import HeadModel
from tracking.landmarks import MEDIAPIPE_TO_IBUG68, NUM_MEDIAPIPE_LANDMARKS

# One camera: a frame counts for the subject pass when that camera saw the face; the MediaPipe points
# sit where the head model's fixed embedding puts them.
MONOCULAR_CONFIG = TrackingConfig(embedding_min_cameras=1, mediapipe_embedding="fixed")


def camera_entry(focal: float, width: int, height: int, distance: float) -> dict:
    """The monocular camera: principal point at the centre, centre at world (0, 0, distance), looking
    down -z (the head model's frame: y up, +z toward the camera), OpenCV camera axes."""
    world_to_cam = np.diag([1.0, -1.0, -1.0, 1.0])
    world_to_cam[2, 3] = distance
    K = [[float(focal), 0.0, width / 2.0], [0.0, float(focal), height / 2.0], [0.0, 0.0, 1.0]]
    return {"K": K, "world_to_cam": world_to_cam.tolist(), "width": int(width), "height": int(height)}


def read_monocular_landmarks(info, sequence: str) -> SequenceLandmarks:
    """landmarks.npz of a one-camera sequence: ``[1, T, 478, 2]``, NaN where no face was found."""
    camera = info.camera_ids[0]
    path = landmarks_path(info.root, sequence)
    values, detected = read_landmarks(path, [camera], info.num_frames(sequence), fix=FIX_INGEST)[camera]
    points = np.asarray(values, np.float64)
    points[~detected] = np.nan
    return SequenceLandmarks(
        points[None], [] if detected.any() else [camera], np.flatnonzero(~detected).tolist()
    )


def _template68(problem: _Problem, term68: _LandmarkTerm) -> tuple[np.ndarray, np.ndarray]:
    zero = {key: torch.as_tensor(value, dtype=problem.dtype) for key, value in _stack_init(1, 1, 1).items()}
    with torch.no_grad():
        template, _ = term68.points({**zero, "translation": zero["translation"] / _TRANSLATION_UNIT})
    root = problem.head_model.J_regressor[0] @ problem.head_model.v_template
    return template[0].numpy().astype(np.float64), np.asarray(root, np.float64)


def pnp_initial_pose(problem: _Problem, term68: _LandmarkTerm, init: dict[str, np.ndarray]) -> float:
    """Stage 0 for one camera: per-frame PnP of the template's 68 points (in place). Returns NaN: the
    world scale is not observable from one view (the head model's size sets it)."""
    import cv2

    obs = problem.obs
    template, root = _template68(problem, term68)
    K = obs.intrinsics[0]
    w2c = obs.world_to_cam[0]
    rotations = np.full((obs.num_frames, 3), np.nan)
    translations = np.full((obs.num_frames, 3), np.nan)
    for t in range(obs.num_frames):
        points = obs.points[0, t, MEDIAPIPE_TO_IBUG68]
        ok = np.isfinite(points).all(-1)
        if ok.sum() < max(6, problem.config.min_init_points):
            continue
        found, rvec, tvec = cv2.solvePnP(template[ok], points[ok], K, None, flags=cv2.SOLVEPNP_EPNP)
        if not found:
            continue
        found, rvec, tvec = cv2.solvePnP(
            template[ok], points[ok], K, None, rvec, tvec, True, flags=cv2.SOLVEPNP_ITERATIVE
        )
        if not found or tvec[2, 0] <= 0:
            continue
        camera_rotation = cv2.Rodrigues(rvec)[0]
        rotation = w2c[:3, :3].T @ camera_rotation
        shift = w2c[:3, :3].T @ (tvec[:, 0] - w2c[:3, 3])
        # FLAME: x = R (v - J0) + J0 + translation  =>  translation = shift + R J0 - J0
        rotations[t] = cv2.Rodrigues(rotation)[0][:, 0]
        translations[t] = shift + rotation @ root - root
    have = np.isfinite(rotations[:, 0])
    for index, sequence in enumerate(obs.sequence_ids):
        frames = np.flatnonzero(obs.frame_sequence == index)
        good = frames[have[frames]]
        if good.size == 0:
            raise StageError(
                f"sequence {sequence}: no frame with a face to initialise the head pose",
                fix="check the sequence's landmarks (frames_without_face in dataset.json)",
            )
        for t in frames[~have[frames]]:
            nearest = good[np.abs(good - t).argmin()]
            rotations[t], translations[t] = rotations[nearest], translations[nearest]
    init["rotation"], init["translation"] = rotations, translations
    return float("nan")


FOCAL_RANGE = (0.5, 4.0)  # searched focal lengths, x the larger image side (fields of view 106-14 deg)
FOCAL_EVALUATIONS = 12  # golden-section steps: the bracket shrinks to 0.618^10 of ln 8 (~1.7 %)
FOCAL_FRAMES = 30  # frames of the subject the focal length is fitted on (spread over all sequences)


def focal_energy(
    head_model: HeadModel, sub_obs: Observations, config: TrackingConfig, focal: float
) -> tuple[float, dict]:
    """The landmark energy of the best rigid pose, shape and jaw at focal length ``focal`` (px).

    Expressions stay at zero and the face-oval points are left out: each would let the fit mimic a
    different perspective (per-frame expressions bend the face, silhouette points slide with the
    view) and both pulled the estimate toward short focal lengths."""
    from tracking.fit.model import EmbeddedLandmarks

    fixed = fixed_mediapipe_embedding(head_model, config)
    intrinsics = sub_obs.intrinsics.copy()
    intrinsics[:, 0, 0] = intrinsics[:, 1, 1] = focal
    obs = dataclasses.replace(sub_obs, intrinsics=intrinsics)
    problem = _Problem(head_model, obs, config)
    problem.normal_sign = _normal_sign(head_model)
    keep = _not_oval()
    landmarks68 = EmbeddedLandmarks(
        head_model.faces, fixed[0][MEDIAPIPE_TO_IBUG68], fixed[1][MEDIAPIPE_TO_IBUG68]
    )
    targets68 = obs.points[:, :, MEDIAPIPE_TO_IBUG68]
    term68 = _LandmarkTerm(problem, landmarks68, targets68, np.ones(targets68.shape[:3]))
    init = _stack_init(obs.num_frames, problem.num_shape, problem.num_expr)
    pnp_initial_pose(problem, term68, init)
    variables = problem.variables(init)
    dense = EmbeddedLandmarks(head_model.faces, fixed[0], fixed[1])
    term = _LandmarkTerm(problem, dense, obs.points, np.ones(obs.points.shape[:3]), None, keep)
    term.set_weights(term.visibility(variables) * np.isfinite(obs.points).all(-1))
    label = f"focal {focal:.0f} px"
    rigid = _minimize(problem, term, variables, ("rotation", "translation"), config.rigid_iterations, label)
    fit = _minimize(
        problem,
        term,
        variables,
        ("shape", "jaw_pose", "rotation", "translation"),
        config.landmark_iterations // 2,
        label,
    )
    return fit["energy_final"], {"rigid": rigid, "fit": fit}


def estimate_focal(
    head_model: HeadModel, obs: Observations, config: TrackingConfig, label: str = ""
) -> tuple[float, list[tuple[float, float]], dict]:
    """The focal length (px) minimising :func:`focal_energy` on frames spread over the subject's
    sequences: a golden-section search over ln f in :data:`FOCAL_RANGE`. Returns it, the
    (focal, energy) pairs in the order evaluated (the report's plot) and statistics.

    VHAP and the metrical tracker make the focal length a gradient-descent variable beside the
    others; here that barely moved it (355 px truth: 256 -> 255 px from the start, even with the head
    moving along its ray as f changes), since f and the distance form a long, flat valley. One
    variable, one bracket: a line search is reliable and costs ~12 small fits."""
    if fixed_mediapipe_embedding(head_model, config) is None:
        raise StageError(
            f"monocular tracking needs the head model's fixed MediaPipe embedding; "
            f"{head_model.name!r} has none",
            fix="set mediapipe_embedding_file in the tracking config",
        )
    subset = calibration_frames(obs, FOCAL_FRAMES, 1)
    sub_obs = _subset(obs, subset, independent=True)
    side = float(obs.image_sizes[0].max())
    low, high = (math.log(side * factor) for factor in FOCAL_RANGE)
    history: list[tuple[float, float]] = []
    cache: dict[float, float] = {}

    def energy(log_focal: float) -> float:
        if log_focal not in cache:
            cache[log_focal], _ = focal_energy(head_model, sub_obs, config, math.exp(log_focal))
            history.append((math.exp(log_focal), cache[log_focal]))
        return cache[log_focal]

    ratio = (math.sqrt(5) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    for _ in range(FOCAL_EVALUATIONS - 2):
        if energy(c) < energy(d):
            b, d = d, c
            c = b - ratio * (b - a)
        else:
            a, c = c, d
            d = a + ratio * (b - a)
    best = min(cache, key=cache.get)
    return (
        math.exp(best),
        history,
        {"frames": int(len(subset)), "bracket_px": [math.exp(a), math.exp(b)], "evaluations": len(history)},
    )


def _not_oval() -> np.ndarray:
    """[478] 0 on FaceMesh's face-oval (silhouette) points, 1 elsewhere. A silhouette point lies where
    the view grazes the face, not at a fixed spot of the mesh; with it the landmark energy fell
    monotonically toward short focal lengths on the default session's frontal video (400 px < 689 px
    truth at every step), without it it has a minimum (benchmarks/monocular.py)."""
    import mediapipe as mp

    oval = sorted({i for edge in mp.solutions.face_mesh.FACEMESH_FACE_OVAL for i in edge})
    keep = np.ones(NUM_MEDIAPIPE_LANDMARKS)
    keep[oval] = 0.0
    return keep


def _median_distance(problem_obs: Observations, head_model: HeadModel, config: TrackingConfig) -> float:
    """Median camera-to-head-root distance of the PnP poses (m): where the camera is put in the world."""
    from tracking.fit.model import EmbeddedLandmarks, SubsetFlame

    fixed = fixed_mediapipe_embedding(head_model, config)
    problem = _Problem(head_model, problem_obs, config)
    landmarks68 = EmbeddedLandmarks(
        head_model.faces, fixed[0][MEDIAPIPE_TO_IBUG68], fixed[1][MEDIAPIPE_TO_IBUG68]
    )
    flame68 = SubsetFlame(
        head_model, landmarks68.vertex_ids, problem.num_shape, problem.num_expr, problem.dtype
    )
    targets = problem_obs.points[:, :, MEDIAPIPE_TO_IBUG68]
    term68 = _LandmarkTerm(problem, landmarks68, targets, np.ones(targets.shape[:3]), flame68)
    init = _stack_init(problem_obs.num_frames, 1, 1)
    pnp_initial_pose(problem, term68, init)
    root = head_model.J_regressor[0] @ head_model.v_template
    w2c = problem_obs.world_to_cam[0]
    in_camera = (w2c[:3, :3] @ (root + init["translation"]).T).T + w2c[:3, 3]
    return float(np.median(in_camera[:, 2]))


def track_monocular(
    dataset_dir: str | Path,
    focal: float | None = None,
    head_model: HeadModel | str | Path | None = None,
    config: TrackingConfig = MONOCULAR_CONFIG,
    *,
    plots: bool = True,
    log: Callable[[str], None] = progress_log,
) -> dict:
    """Track every subject of a one-camera dataset; rewrites cameras.json with the focal length used.

    ``focal`` (px): use it; None: estimate it (see the module docstring). Returns the report, also in
    ``reports/tracking.json``."""
    from tracking.fit import track as multiview

    root = Path(dataset_dir)
    info = read_dataset(root)
    if len(info.camera_ids) != 1:
        raise InputError(
            f"monocular tracking needs a one-camera dataset, this one has {len(info.camera_ids)}",
            path=root / "dataset.json",
            fix="use `gsbench track` for multi-view datasets",
        )
    model = multiview.resolve_head_model(head_model)
    width, height = (int(v) for v in info.image_sizes[0])
    by_subject = info.subject_sequences()
    landmarks = {s: read_monocular_landmarks(info, s) for seqs in by_subject.values() for s in seqs}
    for subject, names in by_subject.items():
        if all(landmarks[s].cameras_without_detections for s in names):
            raise StageError(f"subject {subject}: no face in any frame", path=root / "dataset.json")
    started = time.perf_counter()
    per_subject_focal: dict[str, float] = {}
    histories: dict[str, list[tuple[float, float]]] = {}
    focal_stats: dict[str, dict] = {}
    if focal is None:
        for subject, names in sorted(by_subject.items()):
            usable = [s for s in names if not landmarks[s].cameras_without_detections]
            obs = observations(info, usable, landmarks)
            value, history, stats = estimate_focal(model, obs, config, label=subject)
            per_subject_focal[subject], histories[subject], focal_stats[subject] = value, history, stats
            log(f"tracking {subject}: focal length {value:.1f} px ({len(history)} energies evaluated)")
        used = float(np.median(list(per_subject_focal.values())))
    else:
        used = float(focal)
    # the camera at the median head distance, so the head sits near the world origin
    write_cameras_json(root, {info.camera_ids[0]: camera_entry(used, width, height, 1.0)})
    info = read_dataset(root)
    distances = []
    for names in by_subject.values():
        usable = [s for s in names if not landmarks[s].cameras_without_detections]
        distances.append(_median_distance(observations(info, usable, landmarks), model, config))
    distance = float(np.median(distances))
    write_cameras_json(root, {info.camera_ids[0]: camera_entry(used, width, height, distance)})
    info = read_dataset(root)
    report = {
        "schema_version": multiview.REPORT_SCHEMA_VERSION,
        "kind": "monocular",
        "head_model": model.name,
        "head_model_sha256": multiview.head_model_fingerprint(model),
        "config": config.to_json(),
        "focal_px": used,
        "focal_estimated": focal is None,
        "focal_per_subject": per_subject_focal,
        "focal_history": histories,
        "focal_fit": focal_stats,
        "camera_distance_m": distance,
        "subjects": {},
        "sequences": {},
    }
    figures = root / "reports" / "tracking"
    for subject, names in sorted(by_subject.items()):
        usable = [s for s in names if not landmarks[s].cameras_without_detections]
        for s in set(names) - set(usable):
            report["sequences"][s] = {"subject": subject, "status": "failed", "error": "no face in any frame"}
        obs = observations(info, usable, landmarks)
        begun = time.perf_counter()
        result = fit_subject(model, obs, config, label=subject, log=log, initial_pose=pnp_initial_pose)
        multiview._write_subject(info, subject, usable, landmarks, obs, result, model, report, figures, plots)
        report["subjects"][subject] = {
            "sequences": usable,
            "failed_sequences": sorted(set(names) - set(usable)),
            "seconds": round(time.perf_counter() - begun, 2),
            "num_frames": obs.num_frames,
            "stages": result.stages,
            "reprojection": residual_statistics(result.residuals_px, result.visibility),
            "shape_l2": float(np.linalg.norm(result.params["shape"])),
        }
        log(
            f"tracking {subject}: median reprojection "
            f"{report['subjects'][subject]['reprojection']['median_px']:.2f} px"
        )
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_json(root / "reports" / "tracking.json", report)
    if plots and histories:
        _plot_focal(figures / "focal.png", histories, used)
    return report


def _plot_focal(path: Path, histories: dict[str, list[tuple[float, float]]], used: float) -> None:
    """The focal length over the search (left) and the energy of every focal length tried (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (axis, energies) = plt.subplots(1, 2, figsize=(9, 3))
    for subject, history in histories.items():
        focal, energy = np.array(history).T
        axis.plot(np.arange(1, len(focal) + 1), focal, "o-", ms=3, label=subject)
        order = np.argsort(focal)
        energies.plot(focal[order], energy[order], "o-", ms=3, label=subject)
    axis.axhline(used, color="k", lw=0.8, ls="--", label=f"used: {used:.1f} px")
    axis.set_xlabel("golden-section step")
    axis.set_ylabel("focal length (px)")
    axis.legend(fontsize=7)
    energies.set_xscale("log")
    energies.set_xlabel("focal length (px)")
    energies.set_ylabel("landmark energy (rigid + shape + jaw)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


__all__ = ["MONOCULAR_CONFIG", "camera_entry", "estimate_focal", "pnp_initial_pose", "track_monocular"]
