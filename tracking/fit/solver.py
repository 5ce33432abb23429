"""Multi-view FLAME fitting to 2D landmarks: per-subject shape, per-frame pose and expression.

Energy minimised by L-BFGS over all frames of one subject at once (frames are independent except
for the shared shape and the temporal terms, so one batched problem is both simplest and fastest):

    E = Σ_{c,t,l} w_ctl ρ(‖s_c (π_c(X_tl) − x_ctl)‖) / Σ w            data: robust reprojection
      + λ_β ‖β‖² + λ_ψ mean_t ‖ψ_t‖² + λ_neck mean_t ‖θ_neck,t‖² + λ_jaw … + λ_eyes …     priors
      + λ_lim mean_t Σ relu(|θ| − limit)²                                               joint limits
      + λ_v mean_t ‖X_t − X_{t−1}‖² + λ_a mean_t ‖X_{t+1} − 2X_t + X_{t−1}‖²  (mm)      smoothness
      + λ_ψv mean_t ‖ψ_t − ψ_{t−1}‖²

with X_tl the 3D landmarks of the posed model, π_c the pinhole projection of camera c, s_c the
scale from camera pixels to reference pixels, ρ a robust kernel (Geman-McClure by default) and
w_ctl = detected · visible (the landmark's face turned toward the camera).

Stages: (0) per-frame rigid initialisation by triangulating the 68 landmarks and aligning the
template (Umeyama); (1a) rigid pose; (1b) all parameters on the 68 iBUG landmarks; (2) all
parameters but the jaw on all 478 MediaPipe points. Where the points sit on the mesh: the head
model's fixed MediaPipe embedding when it has one (gsbench-head ships one, measured on our own
renders by scripts/build_mediapipe_embedding.py; then stage 1 uses its 68 iBUG points too, which is
where MediaPipe puts them), else the model's iBUG-68 embedding in stage 1 and, for stage 2, each
point embedded on the subject's mesh from confident frames (triangulate, closest surface point,
median in the canonical mesh).

To scale to thousands of frames the stages run twice: (a) the subject pass fits the shape β and the
478-point embedding on ``shape_frames`` frames spread evenly over all sequences (each frame on its
own, no temporal terms); (b) the frame pass fits every frame's parameters with β and the embedding
fixed, in batches of whole sequences (``chunk_frames``) so the temporal terms stay exact, starting
from the stage-0 rigid pose. The energy is a per-frame mean, so a batch's minimiser does not depend
on how the frames are grouped.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from gsbench.errors import ConfigError, StageError
from gsbench.progress import make_progress
from tracking.fit.config import TrackingConfig
from tracking.fit.geometry import (
    axis_angle_to_rotation,
    closest_point_on_mesh,
    project,
    rotation_to_axis_angle,
    triangulate,
    umeyama,
)
from tracking.fit.model import (
    EmbeddedLandmarks,
    SubsetFlame,
    barycentric_points,
    face_normals,
    posed_vertices,
)
from tracking.head_model import REGIONS, HeadModel
from tracking.landmarks import (
    MEDIAPIPE_TO_IBUG68,
    NUM_MEDIAPIPE_LANDMARKS,
    load_mediapipe_embedding,
    mediapipe_embedding_noise,
)

FRAME_KEYS = ("expr", "jaw_pose", "neck_pose", "eyes_pose", "rotation", "translation")
_TRANSLATION_UNIT = 0.1  # translation is optimised in decimetres: a unit moves landmarks as far as a radian
DEFAULT_CONFIG = TrackingConfig()
_EMBEDDING_EXCLUDED_REGIONS = ("teeth", "mouth_interior", "scalp_hair", "neck")


@dataclasses.dataclass
class Observations:
    """Multi-view 2D landmarks of one subject: all its sequences' frames stacked (B frames)."""

    camera_ids: list[str]
    intrinsics: np.ndarray  # [C, 3, 3]
    world_to_cam: np.ndarray  # [C, 4, 4]
    image_sizes: np.ndarray  # [C, 2] (width, height)
    points: np.ndarray  # [C, B, 478, 2] pixels, NaN where not detected
    frame_sequence: np.ndarray  # [B] int, index into sequence_ids
    sequence_ids: list[str]

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[1])


@dataclasses.dataclass
class FitResult:
    params: dict[str, np.ndarray]  # FRAME_KEYS [B, ...] and "shape" [S], full model sizes
    embedding_faces: np.ndarray  # [478] face index of each MediaPipe point (stage 2)
    embedding_bary: np.ndarray  # [478, 3]
    embedding_valid: np.ndarray  # [478] bool
    stages: dict[str, dict]  # per stage: seconds, energy, reprojection statistics
    residuals_px: np.ndarray  # [C, B, L] final reprojection error in camera pixels, NaN unobserved
    visibility: np.ndarray  # [C, B, L] weights used in the final stage
    landmark_ids: np.ndarray  # [L] MediaPipe ids of the final stage's landmarks
    world_scale: float  # median Umeyama scale of triangulated landmarks vs. the template (1 = metric)


def robust_kernel(name: str, squared: torch.Tensor, scale: float) -> torch.Tensor:
    """ρ(r) from r² for the data term; all kernels equal r² near zero."""
    if name == "l2":
        return squared
    if name == "huber":
        r = squared.clamp_min(1e-20).sqrt()
        return torch.where(r < scale, squared, 2 * scale * r - scale**2)
    if name == "geman_mcclure":
        return squared * scale**2 / (squared + scale**2)
    raise StageError(f"unknown robust loss {name!r}", fix="use geman_mcclure, huber or l2")


class _Problem:
    """Tensors shared by every stage for one subject."""

    def __init__(self, head_model: HeadModel, obs: Observations, config: TrackingConfig):
        self.head_model = head_model
        self.obs = obs
        self.config = config
        self.dtype = torch.float64 if config.dtype == "float64" else torch.float32
        self.intrinsics = torch.as_tensor(obs.intrinsics, dtype=self.dtype)
        self.world_to_cam = torch.as_tensor(obs.world_to_cam, dtype=self.dtype)
        scale = config.reference_size_px / obs.image_sizes.max(axis=1).astype(np.float64)
        self.pixel_scale = torch.as_tensor(scale, dtype=self.dtype)  # [C]
        same = obs.frame_sequence[1:] == obs.frame_sequence[:-1]
        self.pair_valid = torch.as_tensor(same, dtype=self.dtype)  # [B-1]
        self.triple_valid = torch.as_tensor(same[1:] & same[:-1], dtype=self.dtype)  # [B-2]
        self.num_shape = min(config.num_shape, head_model.num_shape)
        self.num_expr = min(config.num_expr, head_model.num_expr)
        # P_c = diag(s_c, s_c, 1) K_c [R_c | t_c]: world -> reference pixels in one matrix per camera
        projection = np.einsum("crk,ckn->crn", obs.intrinsics, obs.world_to_cam[:, :3, :])
        projection[:, :2] *= scale[:, None, None]
        self.projection = torch.as_tensor(projection, dtype=self.dtype)  # [C, 3, 4]
        self.centres = torch.as_tensor(
            -np.einsum("crk,cr->ck", obs.world_to_cam[:, :3, :3], obs.world_to_cam[:, :3, 3]),
            dtype=self.dtype,
        )

    def variables(self, init: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        def leaf(value: np.ndarray) -> torch.Tensor:
            return torch.tensor(np.asarray(value), dtype=self.dtype, requires_grad=True)

        out = {key: leaf(init[key]) for key in ("expr", "jaw_pose", "neck_pose", "eyes_pose", "rotation")}
        out["shape"] = leaf(init["shape"])
        out["translation"] = leaf(init["translation"] / _TRANSLATION_UNIT)
        return out

    def flame_inputs(self, variables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = dict(variables)
        inputs["translation"] = variables["translation"] * _TRANSLATION_UNIT
        return inputs


def _stack_init(num_frames: int, num_shape: int, num_expr: int) -> dict[str, np.ndarray]:
    return {
        "shape": np.zeros(num_shape),
        "expr": np.zeros((num_frames, num_expr)),
        "jaw_pose": np.zeros((num_frames, 3)),
        "neck_pose": np.zeros((num_frames, 3)),
        "eyes_pose": np.zeros((num_frames, 6)),
        "rotation": np.zeros((num_frames, 3)),
        "translation": np.zeros((num_frames, 3)),
    }


class _LandmarkTerm:
    """One landmark set (embedding + observations + weights) and its part of the energy."""

    def __init__(
        self,
        problem: _Problem,
        landmarks: EmbeddedLandmarks,
        targets: np.ndarray,  # [C, B, L, 2] camera pixels, NaN where not detected
        weights: np.ndarray,  # [C, B, L]
        flame: SubsetFlame | None = None,  # reused across chunks of frames of one subject
        point_weights: np.ndarray | None = None,  # [L] per-landmark factor on every weight
    ):
        self.problem = problem
        self.point_weights = point_weights
        self.landmarks = landmarks
        self.flame = flame or SubsetFlame(
            problem.head_model, landmarks.vertex_ids, problem.num_shape, problem.num_expr, problem.dtype
        )
        self.local_faces = torch.as_tensor(landmarks.local_faces)
        self.bary = torch.as_tensor(landmarks.bary, dtype=problem.dtype)
        observed = np.isfinite(targets).all(-1)
        self.targets = torch.as_tensor(np.where(observed[..., None], targets, 0.0), dtype=problem.dtype)
        scale = problem.pixel_scale.numpy()[:, None, None, None]
        self.targets_reference = torch.as_tensor(
            np.where(observed[..., None], targets * scale, 0.0), dtype=problem.dtype
        )
        self.set_weights(weights * observed)

    def set_weights(self, weights: np.ndarray) -> None:
        if self.point_weights is not None:
            weights = weights * self.point_weights
        self.weights = torch.as_tensor(weights, dtype=self.problem.dtype)  # [C, B, L]
        self.weight_sum = self.weights.sum().clamp_min(1e-12)

    def points(self, variables: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed landmarks [B, L, 3] and subset vertices [B, P, 3]."""
        vertices = self.flame(**self.problem.flame_inputs(variables))
        return barycentric_points(vertices, self.local_faces, self.bary), vertices

    def squared_residuals(self, points: torch.Tensor) -> torch.Tensor:
        """[C, B, L] squared reprojection error in reference pixels."""
        projection = self.problem.projection
        homogeneous = (
            torch.einsum("crk,blk->cblr", projection[:, :, :3], points) + projection[:, None, None, :, 3]
        )
        pixels = homogeneous[..., :2] / homogeneous[..., 2:3].clamp_min(1e-6)
        return ((pixels - self.targets_reference) ** 2).sum(-1)

    def visibility(self, variables: dict[str, torch.Tensor]) -> np.ndarray:
        """[C, B, L] weight in [0, 1] from the angle between the landmark's face normal and the view ray."""
        config = self.problem.config
        with torch.no_grad():
            points, vertices = self.points(variables)
            normals = face_normals(vertices, self.local_faces)  # [B, L, 3]
            to_camera = self.problem.centres[:, None, None, :] - points[None]
            to_camera = to_camera / to_camera.norm(dim=-1, keepdim=True)
            cosine = (to_camera * normals[None]).sum(-1) * self.problem.normal_sign
            ramp = (cosine - config.visibility_cos_min) / max(
                config.visibility_cos_full - config.visibility_cos_min, 1e-6
            )
        return ramp.clamp(0.0, 1.0).numpy()


def _energy(
    problem: _Problem, term: _LandmarkTerm, variables: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, dict]:
    config = problem.config
    points, _ = term.points(variables)
    squared = term.squared_residuals(points)
    data = (
        term.weights * robust_kernel(config.robust_loss, squared, config.robust_scale_px)
    ).sum() / term.weight_sum
    num_frames = points.shape[0]
    jaw, neck, eyes = variables["jaw_pose"], variables["neck_pose"], variables["eyes_pose"]
    prior = (
        config.shape_prior * (variables["shape"] ** 2).sum()
        + config.expr_prior * (variables["expr"] ** 2).sum() / num_frames
        + config.neck_prior * (neck**2).sum() / num_frames
        + config.jaw_prior * (jaw[:, 1:] ** 2).sum() / num_frames
        + config.eyes_prior * (eyes**2).sum() / num_frames
    )
    limits = (torch.relu(jaw[:, 0] - 0.7) ** 2 + torch.relu(-0.05 - jaw[:, 0]) ** 2).sum() + (
        torch.relu(jaw[:, 1:].abs() - 0.15) ** 2
    ).sum()
    limits = limits + (torch.relu(neck.abs() - 0.7) ** 2).sum() + (torch.relu(eyes.abs() - 0.5) ** 2).sum()
    limits = config.joint_limit_weight * limits / num_frames
    smooth = points.new_zeros(())
    if num_frames > 1:
        millimetres = points * 1000.0
        velocity = ((millimetres[1:] - millimetres[:-1]) ** 2).sum(-1).mean(-1)
        smooth = smooth + config.velocity_weight * (velocity * problem.pair_valid).sum() / num_frames
        expr_velocity = ((variables["expr"][1:] - variables["expr"][:-1]) ** 2).sum(-1)
        smooth = (
            smooth + config.expr_velocity_weight * (expr_velocity * problem.pair_valid).sum() / num_frames
        )
    if num_frames > 2:
        acceleration = ((millimetres[2:] - 2 * millimetres[1:-1] + millimetres[:-2]) ** 2).sum(-1).mean(-1)
        smooth = (
            smooth + config.acceleration_weight * (acceleration * problem.triple_valid).sum() / num_frames
        )
    total = data + prior + limits + smooth
    return total, {"data": data, "prior": prior, "limits": limits, "smooth": smooth}


def _minimize(
    problem: _Problem,
    term: _LandmarkTerm,
    variables: dict[str, torch.Tensor],
    active: tuple[str, ...],
    iterations: int,
    description: str,
) -> dict:
    """L-BFGS (strong Wolfe line search) on the ``active`` variables; returns energy statistics."""
    params = [variables[key] for key in active]
    for key, value in variables.items():
        value.requires_grad_(key in active)
    max_eval = int(iterations * 1.25) + 1
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=iterations,
        max_eval=max_eval,
        history_size=30,
        tolerance_grad=1e-9,
        tolerance_change=problem.config.tolerance_change,
        line_search_fn="strong_wolfe",
    )
    evaluations = 0
    started = time.perf_counter()
    with make_progress() as progress:
        task = progress.add_task(description, total=max_eval)

        def closure() -> torch.Tensor:
            nonlocal evaluations
            optimizer.zero_grad()
            total, _ = _energy(problem, term, variables)
            total.backward()
            evaluations += 1
            progress.update(task, completed=min(evaluations, max_eval))
            return total

        with torch.no_grad():
            initial, _ = _energy(problem, term, variables)
        optimizer.step(closure)
        progress.update(task, completed=max_eval)
    with torch.no_grad():
        final, parts = _energy(problem, term, variables)
    if not math.isfinite(float(final)):
        raise StageError(
            f"{description}: the energy became {float(final)}", fix="check cameras.json and landmarks"
        )
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "evaluations": evaluations,
        "energy_initial": float(initial),
        "energy_final": float(final),
        **{f"energy_{key}": float(value) for key, value in parts.items()},
    }


def _pixel_residuals(term: _LandmarkTerm, variables: dict[str, torch.Tensor]) -> np.ndarray:
    """[C, B, L] reprojection error in camera pixels, NaN where the landmark was not detected."""
    with torch.no_grad():
        points, _ = term.points(variables)
        pixels, _ = project(points, term.problem.intrinsics, term.problem.world_to_cam)
        error = (pixels - term.targets).norm(dim=-1).numpy()
    observed = term.weights.numpy() > 0
    return np.where(observed, error, np.nan)


def residual_statistics(residuals: np.ndarray, visibility: np.ndarray | None = None) -> dict:
    """median / mean / p90 of the finite residuals (visible ones only when ``visibility`` is given)."""
    values = residuals
    if visibility is not None:
        values = np.where(visibility >= 0.5, residuals, np.nan)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"median_px": None, "mean_px": None, "p90_px": None, "num_observations": 0}
    return {
        "median_px": float(np.median(finite)),
        "mean_px": float(finite.mean()),
        "p90_px": float(np.percentile(finite, 90)),
        "num_observations": int(finite.size),
    }


def _normal_sign(head_model: HeadModel) -> float:
    """+1 if the mesh's faces wind counter-clockwise seen from outside (normals point out), else -1."""
    vertices = head_model.v_template
    corners = vertices[head_model.faces]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    outward = corners.mean(1) - vertices.mean(0)
    return 1.0 if float((normal * outward).sum()) >= 0 else -1.0


def _initial_rigid_pose(problem: _Problem, term68: _LandmarkTerm, init: dict[str, np.ndarray]) -> float:
    """Per-frame rotation/translation from triangulated 68 landmarks aligned to the template (in place).

    Returns the median Umeyama scale of the data against the template (1 when the world is metric
    and the subject is of the template's size; logged as a diagnostic).
    """
    obs = problem.obs
    points68 = obs.points[:, :, MEDIAPIPE_TO_IBUG68]  # [C, B, 68, 2]
    num_cams, num_frames = points68.shape[:2]
    weights = np.isfinite(points68).all(-1).astype(np.float64)
    pixel_tolerance = 3.0 * problem.config.robust_scale_px / problem.pixel_scale.numpy()
    points3d, rms, count = triangulate(
        points68.reshape(num_cams, -1, 2),
        weights.reshape(num_cams, -1),
        obs.intrinsics,
        obs.world_to_cam,
        robust_scale_px=float(np.median(pixel_tolerance)),
    )
    points3d = points3d.reshape(num_frames, 68, 3)
    valid = ((count >= 2) & (rms < float(np.median(pixel_tolerance)))).reshape(num_frames, 68)
    zero = {key: torch.as_tensor(value, dtype=problem.dtype) for key, value in _stack_init(1, 1, 1).items()}
    with torch.no_grad():
        template, _ = term68.points({**zero, "translation": zero["translation"] / _TRANSLATION_UNIT})
        root = torch.as_tensor(problem.head_model.J_regressor[0] @ problem.head_model.v_template)
    template = template[0].numpy()
    root = root.numpy()
    rotations = np.full((num_frames, 3), np.nan)
    translations = np.full((num_frames, 3), np.nan)
    scales = []
    for t in range(num_frames):
        ok = valid[t]
        if ok.sum() < problem.config.min_init_points:
            continue
        scale, _, _ = umeyama(template[ok], points3d[t, ok], with_scale=True)
        scales.append(scale)
        _, rotation, shift = umeyama(template[ok], points3d[t, ok], with_scale=False)
        # FLAME: x = R (v - J0) + J0 + translation  =>  translation = shift + R J0 - J0
        rotations[t] = rotation_to_axis_angle(rotation)
        translations[t] = shift + rotation @ root - root
    found = np.isfinite(rotations[:, 0])
    for index, sequence in enumerate(obs.sequence_ids):
        frames = np.flatnonzero(obs.frame_sequence == index)
        good = frames[found[frames]]
        if good.size == 0:
            raise StageError(
                f"sequence {sequence}: no frame has {problem.config.min_init_points}+ landmarks seen by "
                "two cameras",
                fix="check the landmark detections (reports/) and the calibration",
            )
        for t in frames[~found[frames]]:
            nearest = good[np.abs(good - t).argmin()]
            rotations[t], translations[t] = rotations[nearest], translations[nearest]
    init["rotation"] = rotations
    init["translation"] = translations
    return float(np.median(scales)) if scales else float("nan")


def embedding_allowed_faces(head_model: HeadModel) -> np.ndarray:
    """[F] faces a MediaPipe point may be embedded on: not inside the mouth, on the hair or the neck."""
    if head_model.vertex_regions is None:
        return np.ones(len(head_model.faces), bool)
    excluded = np.isin(head_model.vertex_regions, [REGIONS[name] for name in _EMBEDDING_EXCLUDED_REGIONS])
    return excluded[head_model.faces].sum(1) < 2


def embed_mediapipe_points(
    problem: _Problem, params: dict[str, np.ndarray], log: Callable[[str], None] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Stage 2 embedding: (face [478], bary [478, 3], valid [478], statistics).

    For confident frames, each MediaPipe point is triangulated from all cameras that detect it; its
    closest point on the posed mesh gives a (face, barycentric) pair, which is mapped onto the
    subject's neutral mesh. The per-point median over frames of those neutral positions, snapped to
    the neutral surface, is the embedding.
    """
    config, obs, head_model = problem.config, problem.obs, problem.head_model
    detected = np.isfinite(obs.points).all(-1)  # [C, B, 478]
    cams_per_frame = detected.any(-1).sum(0)
    confident = np.flatnonzero(cams_per_frame >= config.embedding_min_cameras)
    if confident.size == 0:
        confident = np.flatnonzero(cams_per_frame >= 2)
    frames = (
        confident[
            np.unique(
                np.linspace(0, confident.size - 1, min(config.embedding_frames, confident.size))
                .round()
                .astype(int)
            )
        ]
        if confident.size
        else confident
    )
    faces = head_model.faces
    allowed = embedding_allowed_faces(head_model)
    posed = posed_vertices(
        head_model, {"shape": params["shape"], **{key: params[key][frames] for key in FRAME_KEYS}}
    )
    neutral = posed_vertices(head_model, {"shape": params["shape"], "rotation": np.zeros((1, 3))})[0]
    max_rms = config.embedding_max_rms_px / problem.pixel_scale.numpy()
    canonical = np.full((len(frames), NUM_MEDIAPIPE_LANDMARKS, 3), np.nan)
    num_cams = obs.points.shape[0]
    # one triangulation call for all frames (points are independent)
    all_points, all_rms, all_count = triangulate(
        obs.points[:, frames].reshape(num_cams, -1, 2),
        detected[:, frames].reshape(num_cams, -1).astype(np.float64),
        obs.intrinsics,
        obs.world_to_cam,
        robust_scale_px=float(np.median(max_rms)),
    )
    grid = (len(frames), NUM_MEDIAPIPE_LANDMARKS)
    all_points, all_rms, all_count = (
        all_points.reshape(*grid, 3),
        all_rms.reshape(grid),
        all_count.reshape(grid),
    )
    for row in range(len(frames)):
        points, rms, count = all_points[row], all_rms[row], all_count[row]
        ok = (count >= config.embedding_min_cameras) & (rms < float(np.median(max_rms)))
        if not ok.any():
            continue
        face, bary, distance = closest_point_on_mesh(points[ok], posed[row], faces, allowed)
        close = distance < config.embedding_max_distance_m
        ids = np.flatnonzero(ok)[close]
        canonical[row, ids] = (neutral[faces[face[close]]] * bary[close][:, :, None]).sum(1)
    support = np.isfinite(canonical[..., 0]).sum(0)
    valid = support >= max(1, min(3, len(frames) // 4))
    median = np.nanmedian(np.where(valid[None, :, None], canonical, 0.0), axis=0)
    embed_faces = np.zeros(NUM_MEDIAPIPE_LANDMARKS, np.int64)
    embed_bary = np.full((NUM_MEDIAPIPE_LANDMARKS, 3), 1.0 / 3.0)
    if valid.any():
        face, bary, _ = closest_point_on_mesh(median[valid], neutral, faces, allowed)
        embed_faces[valid], embed_bary[valid] = face, bary
    # points that could not be embedded keep the model's own embedding when they are iBUG points
    ibug = np.zeros(NUM_MEDIAPIPE_LANDMARKS, np.int64) - 1
    ibug[MEDIAPIPE_TO_IBUG68] = np.arange(68)
    fallback = (~valid) & (ibug >= 0)
    embed_faces[fallback] = head_model.lmk_faces_idx[ibug[fallback]]
    embed_bary[fallback] = head_model.lmk_bary_coords[ibug[fallback]]
    valid = valid | fallback
    stats = {
        "frames_used": int(len(frames)),
        "num_embedded": int(valid.sum()),
        "num_from_model_68": int(fallback.sum()),
        "median_support_frames": float(np.median(support)),
    }
    if log is not None:
        log(f"embedded {stats['num_embedded']}/478 MediaPipe points from {len(frames)} frames")
    return embed_faces, embed_bary, valid, stats


def fit_subject(
    head_model: HeadModel,
    obs: Observations,
    config: TrackingConfig = DEFAULT_CONFIG,
    *,
    label: str = "",
    log: Callable[[str], None] | None = None,
    initial_pose: Callable | None = None,
) -> FitResult:
    """Fit one subject's shape and every frame's pose/expression to multi-view MediaPipe landmarks.

    ``initial_pose(problem, term68, init)`` replaces the stage-0 rigid initialisation (triangulation
    needs two cameras; tracking.fit.monocular passes a PnP one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, config.num_threads))
    try:
        return _fit_subject(head_model, obs, config, label, log, initial_pose)
    finally:
        torch.set_num_threads(threads)


def fixed_mediapipe_embedding(
    head_model: HeadModel, config: TrackingConfig
) -> tuple[np.ndarray, np.ndarray] | None:
    """The fixed MediaPipe embedding (faces [478], bary [478, 3]) the config asks for, or None.

    Raises :class:`ConfigError` for an unknown ``mediapipe_embedding`` or "fixed" without one, and
    :class:`InputError` for a file that is unreadable or belongs to another mesh.
    """
    if config.mediapipe_embedding not in ("auto", "fixed", "subject"):
        raise ConfigError(
            f"unknown mediapipe_embedding {config.mediapipe_embedding!r}", fix="use auto, fixed or subject"
        )
    if config.mediapipe_embedding == "subject":
        return None
    fixed = load_mediapipe_embedding(head_model, config.mediapipe_embedding_file or None)
    if fixed is None and config.mediapipe_embedding == "fixed":
        raise ConfigError(
            f"head model {head_model.name!r} has no fixed MediaPipe embedding",
            fix="set mediapipe_embedding_file, or mediapipe_embedding to auto or subject",
        )
    return fixed


def _subset(obs: Observations, frames: np.ndarray, independent: bool) -> Observations:
    """The frames ``frames`` of ``obs``; ``independent`` makes each its own sequence (no temporal terms)."""
    if independent:
        sequence_ids = [f"{obs.sequence_ids[obs.frame_sequence[f]]} (frame {f})" for f in frames]
        frame_sequence = np.arange(len(frames))
    else:
        sequence_ids, frame_sequence = obs.sequence_ids, obs.frame_sequence[frames]
    return Observations(
        obs.camera_ids,
        obs.intrinsics,
        obs.world_to_cam,
        obs.image_sizes,
        obs.points[:, frames],
        frame_sequence,
        sequence_ids,
    )


def calibration_frames(obs: Observations, count: int, min_cameras: int) -> np.ndarray:
    """``count`` frames spread evenly over the whole session, among those seen by ``min_cameras``+ cameras."""
    cameras = np.isfinite(obs.points[..., 0, 0]).sum(0)  # [B]
    candidates = np.flatnonzero(cameras >= min_cameras)
    if candidates.size < count:  # fall back to two cameras (one for a monocular dataset)
        candidates = np.flatnonzero(cameras >= min(2, min_cameras))
    if candidates.size <= count:
        return candidates
    return candidates[np.unique(np.linspace(0, candidates.size - 1, count).round().astype(int))]


def frame_chunks(obs: Observations, max_frames: int) -> list[np.ndarray]:
    """Consecutive whole sequences, up to ``max_frames`` frames per chunk (longer sequences are cut)."""
    chunks: list[np.ndarray] = []
    current: list[np.ndarray] = []
    size = 0
    for index in range(len(obs.sequence_ids)):
        frames = np.flatnonzero(obs.frame_sequence == index)
        for start in range(0, len(frames), max_frames):
            piece = frames[start : start + max_frames]
            if current and size + len(piece) > max_frames:
                chunks.append(np.concatenate(current))
                current, size = [], 0
            current.append(piece)
            size += len(piece)
    if current:
        chunks.append(np.concatenate(current))
    return chunks


def _merge_stage(total: dict, part: dict, weight: float) -> None:
    """Accumulate one chunk's _minimize statistics: times and counts add, energies average by frames."""
    for key, value in part.items():
        if key in ("seconds", "evaluations"):
            total[key] = total.get(key, 0) + value
        elif key.startswith("energy_"):
            total[key] = total.get(key, 0.0) + weight * value
    total["chunks"] = total.get("chunks", 0) + 1


def _fit_subject(
    head_model: HeadModel,
    obs: Observations,
    config: TrackingConfig,
    label: str,
    log: Callable[[str], None] | None,
    initial_pose: Callable | None = None,
) -> FitResult:
    """(a) shape and the 478-point embedding from a subset of frames, (b) every frame with them fixed."""
    problem = _Problem(head_model, obs, config)
    problem.normal_sign = _normal_sign(head_model)
    num_frames = obs.num_frames
    init = _stack_init(num_frames, problem.num_shape, problem.num_expr)
    stages: dict[str, dict] = {}
    tag = f"{label}: " if label else ""

    fixed = fixed_mediapipe_embedding(head_model, config)
    point_weights = np.ones(NUM_MEDIAPIPE_LANDMARKS)
    if fixed is not None and config.point_noise_weights:
        noise = mediapipe_embedding_noise(config.mediapipe_embedding_file or None)
        if noise is not None:
            reference = float(np.nanmedian(noise))
            point_weights = np.minimum(1.0, (reference / np.nan_to_num(noise, nan=reference)) ** 2)
    if fixed is not None and config.landmarks68_from_embedding:
        landmarks68 = EmbeddedLandmarks(
            head_model.faces, fixed[0][MEDIAPIPE_TO_IBUG68], fixed[1][MEDIAPIPE_TO_IBUG68]
        )
    else:
        landmarks68 = EmbeddedLandmarks(
            head_model.faces, head_model.lmk_faces_idx, head_model.lmk_bary_coords
        )
    flame68 = SubsetFlame(
        head_model, landmarks68.vertex_ids, problem.num_shape, problem.num_expr, problem.dtype
    )
    targets68 = obs.points[:, :, MEDIAPIPE_TO_IBUG68]
    weights68 = point_weights[MEDIAPIPE_TO_IBUG68]
    term68 = _LandmarkTerm(problem, landmarks68, targets68, np.ones(targets68.shape[:3]), flame68, weights68)
    started = time.perf_counter()
    world_scale = (initial_pose or _initial_rigid_pose)(problem, term68, init)
    stages["init"] = {
        "seconds": round(time.perf_counter() - started, 3),
        "world_scale": world_scale,
        "reprojection_68": residual_statistics(_pixel_residuals(term68, problem.variables(init))),
    }
    del term68

    # (a) subject: shape (+ embedding) on frames spread over all sequences, each frame on its own
    subset = calibration_frames(obs, config.shape_frames, config.embedding_min_cameras)
    sub_obs = _subset(obs, subset, independent=True)
    sub_problem = _Problem(head_model, sub_obs, config)
    sub_problem.normal_sign = problem.normal_sign
    sub_targets68 = sub_obs.points[:, :, MEDIAPIPE_TO_IBUG68]
    sub_term68 = _LandmarkTerm(
        sub_problem, landmarks68, sub_targets68, np.ones(sub_targets68.shape[:3]), flame68, weights68
    )
    variables = sub_problem.variables(
        {key: value if key == "shape" else value[subset] for key, value in init.items()}
    )
    stages["subject_rigid"] = _minimize(
        sub_problem,
        sub_term68,
        variables,
        ("rotation", "translation"),
        config.rigid_iterations,
        f"{tag}rigid pose ({len(subset)} frames)",
    )
    sub_term68.set_weights(sub_term68.visibility(variables) * np.isfinite(sub_targets68).all(-1))
    stage1 = ("expr", "jaw_pose", "neck_pose", "rotation", "translation")
    # stage 2 may keep stage 1's jaw (MediaPipe's inner-lip points can be biased on some heads)
    dense_keys = tuple(key for key in (*stage1, "eyes_pose") if config.dense_jaw or key != "jaw_pose")
    stages["subject_landmarks68"] = _minimize(
        sub_problem,
        sub_term68,
        variables,
        ("shape", *stage1),
        config.landmark_iterations,
        f"{tag}shape, 68 landmarks ({len(subset)} frames)",
    )
    stages["subject_landmarks68"]["frames"] = int(len(subset))

    embed_faces = np.zeros(NUM_MEDIAPIPE_LANDMARKS, np.int64)
    embed_bary = np.full((NUM_MEDIAPIPE_LANDMARKS, 3), 1.0 / 3.0)
    embed_valid = np.zeros(NUM_MEDIAPIPE_LANDMARKS, bool)
    embed_faces[MEDIAPIPE_TO_IBUG68] = landmarks68.faces_idx
    embed_bary[MEDIAPIPE_TO_IBUG68] = landmarks68.bary
    embed_valid[MEDIAPIPE_TO_IBUG68] = True
    dense = flame478 = None
    if config.dense:
        started = time.perf_counter()
        if fixed is not None:
            embed_faces, embed_bary = fixed
            embed_valid = np.ones(NUM_MEDIAPIPE_LANDMARKS, bool)
            embed_stats = {"source": "fixed", "num_embedded": NUM_MEDIAPIPE_LANDMARKS}
        else:
            params = _export(sub_problem, variables)
            embed_faces, embed_bary, embed_valid, embed_stats = embed_mediapipe_points(
                sub_problem, params, log
            )
            embed_stats["source"] = "subject"
        stages["embedding"] = {"seconds": round(time.perf_counter() - started, 3), **embed_stats}
        dense = EmbeddedLandmarks(head_model.faces, embed_faces, embed_bary)
        flame478 = SubsetFlame(
            head_model, dense.vertex_ids, problem.num_shape, problem.num_expr, problem.dtype
        )
        sub_term478 = _LandmarkTerm(
            sub_problem, dense, sub_obs.points, np.ones(sub_obs.points.shape[:3]), flame478, point_weights
        )
        visibility = sub_term478.visibility(variables) * embed_valid[None, None, :]
        sub_term478.set_weights(visibility * np.isfinite(sub_obs.points).all(-1))
        stages["subject_dense478"] = _minimize(
            sub_problem,
            sub_term478,
            variables,
            ("shape", *dense_keys),
            config.dense_iterations,
            f"{tag}shape, 478 landmarks ({len(subset)} frames)",
        )
    shape = variables["shape"].detach().numpy().copy()

    # (b) every frame, shape and embedding fixed, batched by whole sequences (temporal terms inside)
    num_landmarks = NUM_MEDIAPIPE_LANDMARKS if config.dense else 68
    params = {key: np.zeros_like(value) for key, value in init.items()}
    params["shape"] = shape
    residuals = np.full((len(obs.camera_ids), num_frames, num_landmarks), np.nan)
    final_visibility = np.zeros_like(residuals)
    residuals68 = np.full((len(obs.camera_ids), num_frames, 68), np.nan)
    visibility68 = np.zeros_like(residuals68)
    frame_stages: dict[str, dict] = {"rigid": {}, "landmarks68": {}}
    if config.dense:
        frame_stages["dense478"] = {}
    chunks = frame_chunks(obs, config.chunk_frames)
    for number, frames in enumerate(chunks):
        chunk_obs = _subset(obs, frames, independent=False)
        chunk = _Problem(head_model, chunk_obs, config)
        chunk.normal_sign = problem.normal_sign
        weight = len(frames) / num_frames
        progress = f"{tag}frames {frames[0]}-{frames[-1]} ({number + 1}/{len(chunks)})"
        variables = chunk.variables({"shape": shape, **{key: init[key][frames] for key in FRAME_KEYS}})
        variables["shape"].requires_grad_(False)
        chunk_targets68 = chunk_obs.points[:, :, MEDIAPIPE_TO_IBUG68]
        chunk_term68 = _LandmarkTerm(
            chunk, landmarks68, chunk_targets68, np.ones(chunk_targets68.shape[:3]), flame68, weights68
        )
        _merge_stage(
            frame_stages["rigid"],
            _minimize(
                chunk,
                chunk_term68,
                variables,
                ("rotation", "translation"),
                config.frame_rigid_iterations,
                f"{progress}: rigid",
            ),
            weight,
        )
        chunk_term68.set_weights(chunk_term68.visibility(variables) * np.isfinite(chunk_targets68).all(-1))
        _merge_stage(
            frame_stages["landmarks68"],
            _minimize(
                chunk,
                chunk_term68,
                variables,
                stage1,
                config.frame_landmark_iterations,
                f"{progress}: 68 landmarks",
            ),
            weight,
        )
        final_term = chunk_term68
        if config.dense:
            term478 = _LandmarkTerm(
                chunk, dense, chunk_obs.points, np.ones(chunk_obs.points.shape[:3]), flame478, point_weights
            )
            chunk_visibility = term478.visibility(variables) * embed_valid[None, None, :]
            term478.set_weights(chunk_visibility * np.isfinite(chunk_obs.points).all(-1))
            _merge_stage(
                frame_stages["dense478"],
                _minimize(
                    chunk,
                    term478,
                    variables,
                    dense_keys,
                    config.frame_dense_iterations,
                    f"{progress}: 478 landmarks",
                ),
                weight,
            )
            chunk_visibility = term478.visibility(variables) * embed_valid[None, None, :]
            term478.set_weights(chunk_visibility * np.isfinite(chunk_obs.points).all(-1))
            final_term = term478
        chunk_visibility68 = chunk_term68.visibility(variables)
        chunk_term68.set_weights(chunk_visibility68 * np.isfinite(chunk_targets68).all(-1))
        residuals68[:, frames] = _pixel_residuals(chunk_term68, variables)
        visibility68[:, frames] = chunk_visibility68
        residuals[:, frames] = _pixel_residuals(final_term, variables)
        final_visibility[:, frames] = chunk_visibility if config.dense else chunk_visibility68
        exported = _export(chunk, variables)
        for key in FRAME_KEYS:
            params[key][frames] = exported[key][:, : params[key].shape[1]]
    for name, entry in frame_stages.items():
        entry["seconds"] = round(entry.get("seconds", 0.0), 3)
        stages[name] = entry
    stages["landmarks68"]["reprojection_68"] = residual_statistics(residuals68)
    stages["landmarks68"]["reprojection_68_visible"] = residual_statistics(residuals68, visibility68)
    if config.dense:
        stages["dense478"]["reprojection_478"] = residual_statistics(residuals)
        stages["dense478"]["reprojection_478_visible"] = residual_statistics(residuals, final_visibility)
        landmark_ids = np.arange(NUM_MEDIAPIPE_LANDMARKS)
    else:
        landmark_ids = MEDIAPIPE_TO_IBUG68
    return FitResult(
        params=_export_arrays(head_model, params),
        embedding_faces=embed_faces,
        embedding_bary=embed_bary,
        embedding_valid=embed_valid,
        stages=stages,
        residuals_px=residuals,
        visibility=final_visibility,
        landmark_ids=landmark_ids,
        world_scale=world_scale,
    )


def _export(problem: _Problem, variables: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Variables -> FLAME parameters at the model's full sizes (unfitted components are 0)."""
    with torch.no_grad():
        values = {key: value.detach().numpy().astype(np.float64) for key, value in variables.items()}
    values["translation"] = values["translation"] * _TRANSLATION_UNIT
    return _export_arrays(problem.head_model, values)


def _export_arrays(head_model: HeadModel, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fitted arrays (first components of shape/expr) -> the model's full sizes, float64."""
    shape = np.zeros(head_model.num_shape)
    shape[: values["shape"].shape[0]] = values["shape"]
    expr = np.zeros((values["expr"].shape[0], head_model.num_expr))
    expr[:, : values["expr"].shape[1]] = values["expr"]
    out = {key: values[key] for key in ("jaw_pose", "neck_pose", "eyes_pose", "rotation", "translation")}
    out["shape"], out["expr"] = shape, expr
    return out


def rotation_matrices(axis_angle: np.ndarray) -> np.ndarray:
    return axis_angle_to_rotation(axis_angle)
