"""Tracking configuration: one frozen dataclass, defaults tuned on the synthetic sessions."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """Weights and schedules of the two-stage multi-view FLAME fit (see tracking/fit/solver.py).

    Residuals are measured in *reference pixels*: image pixels scaled to a ``reference_size_px``
    image (256), so weights mean the same at any resolution. Landmark trajectories for the temporal
    terms are in millimetres.
    """

    num_shape: int = 100  # shape components fitted (the rest stay 0)
    num_expr: int = 50  # expression components fitted
    dtype: str = "float32"  # float64: same reprojection error (±0.01 px), ~2x the CPU time (measured)
    num_threads: int = 1  # torch threads; the problem is many small ops, where more threads mostly spin
    # data term
    robust_loss: str = "geman_mcclure"  # "geman_mcclure" | "huber" | "l2"
    robust_scale_px: float = 4.0  # sigma of the robust kernel, reference pixels
    reference_size_px: int = 256
    visibility_cos_min: float = 0.0  # landmark weight ramps from 0 at this cos(normal, view)...
    visibility_cos_full: float = 0.25  # ...to 1 here
    # priors (per frame, squared parameter units)
    # shape: MediaPipe's error on a face is mostly a fixed bias per point, which frames and cameras do
    # not average out, so the prior counts ~160 independent observations (≈ 478 points / 3) of
    # ~2 px noise against N(0, 0.5²) shapes: 2² / (160 · 0.5²) = 0.1. At 1e-3 the shape absorbed the
    # bias (|β| 4.0-4.2 vs. 2.0-2.1 true) and the face vertex error doubled (tracking/fit/__init__.py)
    shape_prior: float = 0.1
    expr_prior: float = 1e-3
    neck_prior: float = 3.0
    jaw_prior: float = 1e-2
    eyes_prior: float = 1e-2
    joint_limit_weight: float = 1e3
    # temporal smoothness on landmark trajectories (mm^2) and on expression (units^2)
    velocity_weight: float = 1e-3
    acceleration_weight: float = 2e-2
    expr_velocity_weight: float = 1e-3
    # schedules (L-BFGS iterations). (a) subject: shape + embedding on ``shape_frames`` frames spread
    # over all sequences; (b) every frame with the shape fixed, ``chunk_frames`` frames per batch
    shape_frames: int = 60
    rigid_iterations: int = 30
    landmark_iterations: int = 120
    dense_iterations: int = 120
    chunk_frames: int = 300
    frame_rigid_iterations: int = 10
    frame_landmark_iterations: int = 30
    frame_dense_iterations: int = 30
    tolerance_change: float = 1e-9  # L-BFGS stops when the energy changes less (reference px^2)
    dense: bool = True  # stage 2: all 478 MediaPipe points embedded on the mesh
    # stage 2 keeps the jaw of stage 1: on the rendered tiny session refitting it on the 478 points
    # (biased inner-lip detections) doubled the jaw error, 0.98 -> 2.04 deg (benchmarks/track_accuracy.py)
    dense_jaw: bool = False
    # where the MediaPipe points sit on the mesh: "auto" = the model's fixed embedding when it has one
    # (gsbench-head ships one, tracking/landmarks.py load_mediapipe_embedding), else found per subject;
    # "fixed" = the fixed one or an error; "subject" = found per subject from tracked frames (stage 2)
    mediapipe_embedding: str = "auto"
    # a fixed embedding file (JSON, the format of tracking/head/gsbench_head_mediapipe_embedding.json,
    # e.g. for real FLAME); empty: the model's shipped one
    mediapipe_embedding_file: str = ""
    # with a fixed embedding, stage 1 fits MediaPipe's 68 iBUG points where MediaPipe puts them (the
    # fixed embedding) rather than at the model's own iBUG landmarks, which lie ~3 px away from them
    landmarks68_from_embedding: bool = True
    # with a fixed embedding that records each point's build residual σ_p: weight the point by
    # min(1, (median σ / σ_p)²), so that points FaceMesh places inconsistently across views count less.
    # Off: on the default session it changed no figure beyond noise (tracking/fit/__init__.py)
    point_noise_weights: bool = False
    # per-subject embedding (mediapipe_embedding "subject", or "auto" without a fixed one)
    embedding_frames: int = 48
    embedding_min_cameras: int = 3
    embedding_max_rms_px: float = 4.0  # reference pixels, triangulation RMS
    embedding_max_distance_m: float = 0.012
    min_init_points: int = 8

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any]) -> TrackingConfig:
        """The defaults with ``{field: value}`` applied and checked (``gsbench.overrides.apply_overrides``,
        the rules of every ``--set``)."""
        from gsbench.overrides import apply_overrides

        return apply_overrides(cls(), overrides, what="tracking")
