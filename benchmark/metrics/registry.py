"""The metric registry: a metric module declares its metric here, and everything else reads it.

A metric is declared once, in its own module under ``benchmark/metrics/`` (or a third-party module in
the ``gsbench.metrics`` entry-point group)::

    PSNR = register_metric(Metric(
        name="psnr",
        outputs=(MetricInfo("psnr", "higher", "PSNR (dB)", column=10, ranks=("mono-front", "multiview")),
                 MetricInfo("psnr_masked", "higher", "PSNR head (dB)", column=20), ...),
        compute=compute_psnr,  # (Clip) -> {output name: MetricResult}
        order=10,
    ))

``compute_metrics`` runs the declared functions in ``order``; ``gsbench.metric_table`` (directions,
labels, formats: results files, ``gsbench metrics``, the leaderboards' columns and ranking rule) holds
the declared :class:`~gsbench.metric_table.MetricInfo`; ``benchmark.weights`` lists the declared
``networks``. Nothing else needs an edit. See docs/extending.md, "Add a metric".
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from gsbench.metric_table import MetricInfo, load_declarations, register_info, unregister_info
from gsbench.pretrained import PretrainedNetwork, declare, undeclare


@dataclasses.dataclass
class MetricResult:
    """One metric on one clip. ``value`` is None exactly when ``status == "missing"``."""

    name: str
    value: float | None
    status: Literal["ok", "missing"]
    reason: str = ""
    weight_id: str | None = None
    details: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A metric computation: what selects it, what it writes, how, and with which pretrained networks."""

    name: str  # selects it in ``compute_metrics(metrics=...)`` / ``gsbench metrics --metric``
    outputs: tuple[MetricInfo, ...]  # the result names it writes (every one it may write)
    compute: Callable[[Clip], dict[str, MetricResult]]
    order: int = 1000  # position in compute_metrics' output (ties: by name)
    also_selected_by: tuple[str, ...] = ()  # other names that select it (LSE: lse_c beside lse_d)
    networks: tuple[PretrainedNetwork, ...] = ()  # pretrained files it can use (benchmark.weights)
    mouth_output: str | None = None  # its lip-box output, missing up front when there is no lip box
    aggregates: tuple[MetricInfo, ...] = ()  # columns benchmark.results derives from its outputs

    @property
    def selectors(self) -> tuple[str, ...]:
        return (self.name, *self.also_selected_by)


_METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Declare ``metric`` (its outputs go to ``gsbench.metric_table``); returns it."""
    known = _METRICS.get(metric.name)
    if known is not None and known != metric:
        raise ValueError(f"metric {metric.name!r} is registered twice, differently")
    for info in (*metric.outputs, *metric.aggregates):
        register_info(info)
    for network in metric.networks:
        declare(network)
    _METRICS[metric.name] = metric
    return metric


def unregister_metric(name: str) -> None:
    """Remove a registered metric and its outputs (for tests that register one of their own)."""
    metric = _METRICS.pop(name, None)
    if metric is not None:
        for info in (*metric.outputs, *metric.aggregates):
            unregister_info(info.name)
        for network in metric.networks:
            if not any(network in m.networks for m in _METRICS.values()):
                undeclare(network.name)


def registered_metrics() -> list[Metric]:
    """Every registered metric, in compute order."""
    load_declarations()
    return sorted(_METRICS.values(), key=lambda m: (m.order, m.name))


def selectors() -> tuple[str, ...]:
    """The names ``compute_metrics(metrics=...)`` accepts, in compute order."""
    return tuple(name for metric in registered_metrics() for name in metric.selectors)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.round(frames * 255.0), 0, 255).astype(np.uint8)


@dataclasses.dataclass
class Clip:
    """What a metric's ``compute`` gets: one clip, its options, and the inputs several metrics share
    (landmarks, lip boxes), computed once on first use."""

    pred: np.ndarray  # [T, H, W, 3] float32 in [0, 1]
    gt: np.ndarray  # [T, H, W, 3]
    masks: np.ndarray | None  # [T, H, W] bool head masks
    audio: np.ndarray | None  # 16 kHz mono
    fps: float
    weights: Any  # benchmark.weights.WeightRegistry
    gt_landmarks_given: tuple[np.ndarray, np.ndarray] | None = None
    mouth_box_size: int | None = None
    lmd_detector: str = "mediapipe"
    lse_boxes: str = "mediapipe"
    mouth_boxes: Any = None  # benchmark.metrics.mouth.MouthBoxes, or None (no lip box): set by compute

    @functools.cached_property
    def pred_u8(self) -> np.ndarray:
        return to_uint8(self.pred)

    @functools.cached_property
    def gt_u8(self) -> np.ndarray:
        return to_uint8(self.gt)

    @functools.cached_property
    def gt_landmarks(self) -> tuple[np.ndarray, np.ndarray]:
        """MediaPipe ``(points [T,478,2], detected [T])`` of ``gt``: given, or detected."""
        if self.gt_landmarks_given is not None:
            return self.gt_landmarks_given
        from tracking.landmarks import detect_landmarks

        return detect_landmarks(self.gt_u8)

    @functools.cached_property
    def pred_landmarks(self) -> tuple[np.ndarray, np.ndarray]:
        from tracking.landmarks import detect_landmarks

        return detect_landmarks(self.pred_u8)


def missing(name: str, reason: str, weight_id: str | None = None) -> MetricResult:
    return MetricResult(name, None, "missing", reason, weight_id)


def frames_mean(name: str, per_frame: np.ndarray, weight_id: str | None = None, **details) -> MetricResult:
    """The mean over the frames that could be scored (not NaN), with the per-frame values."""
    valid = ~np.isnan(per_frame)
    if not valid.any():
        return missing(name, "no frame could be scored (empty masks?)", weight_id)
    value = float(np.mean(per_frame[valid]))
    return MetricResult(
        name,
        value,
        "ok",
        "",
        weight_id,
        {"per_frame": per_frame.tolist(), "frames_scored": int(valid.sum()), **details},
    )


def mouth_mean(name, per_frame_fn, pred, gt, boxes, weight_id=None, **details) -> MetricResult:
    """``per_frame_fn`` on the lip-box crops; frames without a ground-truth face are NaN (unscored)."""
    values = np.asarray(per_frame_fn(boxes.crop(pred), boxes.crop(gt)), np.float64)
    values[~boxes.valid] = np.nan
    return frames_mean(
        name,
        values,
        weight_id,
        box_size_px=boxes.size,
        box="square around the GT mouth centroid (iBUG 48-67), fixed side",
        **details,
    )
