"""A subject's performance of one take: phoneme timeline -> FLAME parameters at any time.

Visemes become articulation curves (jaw opening, lip rounding, spreading, closure, lower-lip tuck)
with Cohen & Massaro's (1993) dominance-function coarticulation,

    a(t) = sum_i D_i(t) T_i / sum_i D_i(t),   D_i(t) = alpha_i exp(-dist(t, core_i) / tau),

where ``core_i`` is the phoneme's core interval (a bilabial's whole closure, the middle of a vowel)
and ``alpha_i`` its dominance: bilabials dominate the lips so they always close, alveolar and velar
stops barely constrain them so the lips follow the neighbouring vowels. Blinks, gaze saccades and
small head motion are added; every curve is a continuous function of time, so each camera can
sample the animation at its own (sub-frame offset) frame times.

Articulation reaches the head model through its named expression components (``expr_names`` of
``gsbench-head``: lip pucker, smile, lip press, blink, ...); a model without a named component for
an articulation (e.g. real FLAME's PCA basis) gets that articulation through ``jaw_pose`` only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from capture_tools.synth.speech import TimedPhoneme

ARTICULATIONS = ("jaw", "round", "spread", "close", "tuck")

# articulation / control -> (expr_names keyword, weight); first matching names win
_EXPR_KEYWORDS: dict[str, tuple[tuple[str, float], ...]] = {
    "round": (("pucker", 1.0), ("round", 1.0), ("funnel", 0.5)),
    "spread": (("smile", 0.45), ("stretch", 0.8)),
    "close": (("press", 0.6),),
    "tuck": (("lower_lip", -0.5), ("upper_lip", 0.35)),
    "blink": (("blink", 1.0),),
    "brow": (("brow_raise", 1.0), ("brow_up", 1.0)),
}


@dataclasses.dataclass(frozen=True)
class ExpressionMap:
    """Linear map from controls (articulations, blink, brow) to the model's expression vector."""

    num_expr: int
    matrix: dict[str, np.ndarray]  # control -> [E] expression direction

    @classmethod
    def for_names(cls, expr_names: tuple[str, ...], num_expr: int) -> ExpressionMap:
        names = [name.lower() for name in expr_names]
        matrix: dict[str, np.ndarray] = {}
        for control, keywords in _EXPR_KEYWORDS.items():
            row = np.zeros(num_expr)
            for keyword, weight in keywords:
                for index, name in enumerate(names):
                    if keyword in name and not (
                        control == "tuck" and ("raise" not in name and "depress" not in name)
                    ):
                        row[index] += weight
            matrix[control] = row
        return cls(num_expr=num_expr, matrix=matrix)

    def expr(self, controls: dict[str, np.ndarray]) -> np.ndarray:
        """[T, E] expression coefficients from control curves [T]."""
        length = len(next(iter(controls.values())))
        out = np.zeros((length, self.num_expr))
        for control, curve in controls.items():
            if control in self.matrix:
                out += curve[:, None] * self.matrix[control][None, :]
        return out


@dataclasses.dataclass(frozen=True)
class PerformanceStyle:
    """A subject's manner: articulation scale, head-motion amplitude, blink rate."""

    articulation: float = 1.0
    head_motion_deg: float = 3.0
    head_motion_m: float = 0.006
    blink_interval_s: float = 3.0
    gaze_deg: float = 4.0


class Performance:
    """FLAME parameters as continuous functions of master time for one take."""

    def __init__(
        self,
        timeline: list[TimedPhoneme],
        rng: np.random.Generator,
        style: PerformanceStyle,
        expression_map: ExpressionMap,
        base_translation: np.ndarray,
    ):
        self.timeline = timeline
        self.style = style
        self.expression_map = expression_map
        self.base_translation = np.asarray(base_translation, np.float64)
        duration = timeline[-1].end_s + 1.0
        # head motion: a few incommensurate slow sinusoids per axis (0.1-0.7 Hz), plus nods on stresses
        self._head_freqs = rng.uniform(0.1, 0.7, (6, 3))
        self._head_phases = rng.uniform(0, 2 * np.pi, (6, 3))
        self._head_amps = rng.uniform(0.3, 1.0, (6, 3)) / 3.0
        self._stress_times = np.array(
            [0.5 * (p.start_s + p.end_s) for p in timeline if p.stressed and p.phoneme.kind == "vowel"]
        )
        self._nod_sign = rng.choice([-1.0, 1.0], len(self._stress_times))
        # blinks: Poisson process, each ~0.2 s (fast close, slower open)
        blinks, t = [], float(rng.uniform(-1.0, style.blink_interval_s))
        while t < duration:
            blinks.append(t)
            t += float(rng.exponential(style.blink_interval_s)) + 0.4
        self._blinks = np.array(blinks)
        # gaze: fixations near the frontal camera, saccades every 0.4-1.8 s (~40 ms each)
        saccades, t = [-1.0], 0.0
        while t < duration:
            t += float(rng.uniform(0.4, 1.8))
            saccades.append(t)
        self._saccades = np.array(saccades)
        self._gaze_targets = rng.normal(0, np.radians(style.gaze_deg), (len(saccades), 2))
        self._gaze_targets[:, 0] *= 0.6  # smaller vertical range

    def articulation(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """Articulation curves [T] at ``times`` (master clock, seconds)."""
        times = np.asarray(times, np.float64)[:, None]
        starts, ends, jaw_alpha, lip_alpha = [], [], [], []
        targets = {name: [] for name in ARTICULATIONS}
        for p in self.timeline:
            ph = p.phoneme
            if p.closure_s is not None:
                core = p.closure_s
            else:
                middle, half = 0.5 * (p.start_s + p.end_s), 0.2 * (p.end_s - p.start_s)
                core = (middle - half, middle + half)
            starts.append(core[0])
            ends.append(core[1])
            jaw_alpha.append(ph.jaw_dominance)
            lip_alpha.append(ph.lip_dominance)
            for name in ARTICULATIONS:
                targets[name].append(getattr(ph, name))
        distance = np.maximum(
            np.maximum(np.asarray(starts)[None] - times, times - np.asarray(ends)[None]), 0.0
        )
        jaw_weight = np.asarray(jaw_alpha)[None] * np.exp(-distance / 0.045)  # the jaw is slower
        lip_weight = np.asarray(lip_alpha)[None] * np.exp(-distance / 0.03)
        out = {}
        for name in ARTICULATIONS:
            weight = jaw_weight if name == "jaw" else lip_weight
            out[name] = (weight * np.asarray(targets[name])[None]).sum(1) / (weight.sum(1) + 1e-12)
        scale = self.style.articulation
        for name in ("jaw", "round", "spread"):
            out[name] = out[name] * scale
        return out

    def blink(self, times: np.ndarray) -> np.ndarray:
        """Eyelid closure in [0, 1] at ``times``."""
        times = np.asarray(times, np.float64)[:, None]
        local = times - self._blinks[None]
        closing = np.clip(local / 0.07, 0, 1)
        opening = np.clip(1 - (local - 0.09) / 0.14, 0, 1)
        value = np.where(local < 0.07, closing, np.where(local < 0.09, 1.0, opening))
        value = np.where((local < 0) | (local > 0.23), 0.0, value)
        curve = value.max(1) if value.shape[1] else np.zeros(len(times))
        return curve * curve * (3 - 2 * curve)

    def flame_params(self, times: np.ndarray) -> dict[str, np.ndarray]:
        """FLAME per-frame parameters (DESIGN.md names) at ``times``: expr [T,E], jaw_pose [T,3],
        neck_pose [T,3], eyes_pose [T,6], rotation [T,3], translation [T,3]."""
        times = np.asarray(times, np.float64)
        count = len(times)
        articulation = self.articulation(times)
        blink = self.blink(times)
        # speech raises the brows a little on stressed syllables
        brow = np.zeros(count)
        nod = np.zeros(count)
        if len(self._stress_times):
            bumps = np.exp(-0.5 * ((times[:, None] - self._stress_times[None]) / 0.12) ** 2)
            brow = 0.25 * bumps.max(1)
            nod = (bumps * self._nod_sign[None]).sum(1)
        controls = {
            "round": articulation["round"],
            "spread": articulation["spread"],
            "close": articulation["close"],
            "tuck": articulation["tuck"],
            "blink": blink,
            "brow": brow,
        }
        expr = self.expression_map.expr(controls)
        jaw_pose = np.zeros((count, 3))
        jaw_pose[:, 0] = articulation["jaw"]
        # head motion: sum of sinusoids (deg) + small nods on stressed syllables (pitch axis)
        waves = np.sin(2 * np.pi * self._head_freqs[None] * times[:, None, None] + self._head_phases[None])
        angles = np.radians(self.style.head_motion_deg) * (waves * self._head_amps[None]).sum(1)  # [T,3]
        angles[:, 1] *= 1.5  # more yaw than pitch or roll
        angles[:, 2] *= 0.5
        angles[:, 0] += np.radians(1.2) * nod
        shift = self.style.head_motion_m * np.stack(
            [np.sin(0.9 * angles[:, 1] / max(np.radians(self.style.head_motion_deg), 1e-6)),
             0.5 * np.sin(angles[:, 0] / max(np.radians(self.style.head_motion_deg), 1e-6)),
             0.7 * np.sin(2 * np.pi * 0.23 * times)], axis=1)  # fmt: skip
        # gaze: smooth steps between fixation targets
        since = times[:, None] - self._saccades[None]
        step = np.clip(since / 0.04, 0, 1)
        step = step * step * (3 - 2 * step)
        increments = np.diff(self._gaze_targets, axis=0, prepend=np.zeros((1, 2)))
        gaze = (step[:, :, None] * increments[None]).sum(1)  # [T, 2] (pitch, yaw)
        eyes_pose = np.zeros((count, 6))
        eyes_pose[:, [0, 3]] = gaze[:, :1]
        eyes_pose[:, [1, 4]] = gaze[:, 1:]
        return {
            "expr": expr.astype(np.float32),
            "jaw_pose": jaw_pose.astype(np.float32),
            "neck_pose": np.zeros((count, 3), np.float32),
            "eyes_pose": eyes_pose.astype(np.float32),
            "rotation": angles.astype(np.float32),
            "translation": (self.base_translation[None] + shift).astype(np.float32),
        }
