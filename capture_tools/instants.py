"""Which synchronized instants the structure-from-motion fallback reconstructs: evenly spaced over one
take, or the stillest of all takes. Builds on :func:`capture_tools.sfm.candidate_instants`,
:func:`capture_tools.sfm.frame_motion` and :func:`capture_tools.sfm.select_still_instants`; an instant is
``{"take", "time_s" (master clock), "frames": {camera: frame index}}``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from capture_tools.sfm import InstantChoice, frame_motion, select_still_instants
from gsbench.errors import StageError


def evenly_spaced_instants(
    take: str,
    offsets_s: dict[str, float],
    num_frames: dict[str, int],
    fps: dict[str, float],
    count: int,
) -> list[dict]:
    """``count`` instants evenly spaced over the time every camera of ``take`` records, each camera at
    its nearest frame. Per camera: ``offsets_s`` (master time of its frame 0), ``num_frames``, ``fps``."""
    cameras = list(offsets_s)
    start = max(offsets_s[c] for c in cameras)
    end = min(offsets_s[c] + (num_frames[c] - 1) / fps[c] for c in cameras)
    instants = []
    for time_s in np.linspace(start, end, count):
        frames = {}
        for c in cameras:
            nearest = np.round((time_s - offsets_s[c]) * fps[c])
            frames[c] = int(np.clip(nearest, 0, num_frames[c] - 1))
        instants.append({"take": take, "time_s": float(time_s), "frames": frames})
    return instants


def grey_motion(frames: np.ndarray, width: int) -> np.ndarray:
    """:func:`capture_tools.sfm.frame_motion` of RGB ``frames [T, H, W, 3]`` turned grey and shrunk to
    ``width`` px (no wider than they are) -> ``[T]``."""
    import cv2

    height, full_width = frames.shape[1:3]
    width = min(width, full_width)
    size = (width, max(1, round(height * width / full_width)))
    grey = [
        cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
        for frame in frames
    ]
    return frame_motion(np.stack(grey))


def stillest_instants(
    candidates: dict[str, tuple[np.ndarray, np.ndarray, float]],
    motion: dict[str, np.ndarray],
    cameras: list[str],
    choice: InstantChoice,
    rig_file: Path,
) -> list[dict]:
    """The stillest instants of all takes (:func:`capture_tools.sfm.select_still_instants`).

    ``candidates[take]``: :func:`capture_tools.sfm.candidate_instants` (times ``[M]``, frames ``[M, C]``
    in ``cameras`` order, spread in frames); ``motion[take] [M]``: the frontal camera's image change at
    each candidate. Score of an instant: motion times spread, since a head moving by ``v`` per frame is
    misplaced by about ``v x spread`` between the views that SfM treats as one instant, while the studio
    behind it is not (docs/measurements.md: why the frontal camera alone)."""
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
            path=rig_file,
            fix="check the sync report: the cameras' videos do not overlap in time",
        )
    return instants
