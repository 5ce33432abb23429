"""How well a SyncNet detects audio-visual offsets: the measure SyncNet itself is judged by.

Chung & Zisserman (2016) evaluate SyncNet by offset detection: shift a held-out clip's video against its
audio by a known number of frames and check that the AV offset of ``evaluate`` (``vshift - argmin mdist``,
:func:`benchmark.metrics.syncnet.lse_from_crops`) recovers it. Here:

* a clip's video delayed by ``s`` frames (``s > 0``: video frame ``t`` shows what the audio said at
  ``t - s``; the first frame repeated) must give AV offset ``s``, advanced (``s < 0``) gives ``s``;
* a trial is correct when ``|offset - s| <= tolerance`` (1 frame);
* accuracy is the fraction of correct trials over clips x shifts; with ``vshift = 15`` shifts within
  ±15 frames are detectable;
* the in-sync / shifted LSE-C ratio (LSE-C at shift 0 over LSE-C at ``|s| = ratio_shift``): a SyncNet
  that separates sync from non-sync gives a large ratio (official SyncNet on real video: LSE-C 5-9 in
  sync, near 0-2 off sync).
"""

from __future__ import annotations

import numpy as np

from benchmark.metrics import syncnet


def shift_video(crops: np.ndarray, shift: int) -> np.ndarray:
    """``crops [T, ...]`` delayed by ``shift`` frames (> 0, first frame repeated) or advanced (< 0, last
    frame repeated); same length."""
    if shift == 0:
        return crops
    if shift > 0:
        return np.concatenate([np.repeat(crops[:1], shift, 0), crops[:-shift]])
    return np.concatenate([crops[-shift:], np.repeat(crops[-1:], -shift, 0)])


def offset_detection(
    model: syncnet.SyncNet,
    clips: list[tuple[str, np.ndarray, np.ndarray]],
    shifts: tuple[int, ...] = (-12, -8, -4, -2, 0, 2, 4, 8, 12),
    tolerance: int = 1,
    vshift: int = syncnet.DEFAULT_VSHIFT,
    ratio_shift: int = 8,
) -> dict:
    """Offset-detection accuracy of ``model`` on ``clips`` = ``[(name, crops [T,224,224,3] uint8 RGB at
    25 fps, audio 16 kHz)]``; also the per-shift accuracy, every trial and the in-sync/shifted LSE-C ratio."""
    trials = []
    for name, crops, audio in clips:
        for shift in shifts:
            result = syncnet.lse_from_crops(model, shift_video(crops, shift), audio, vshift=vshift)
            trials.append(
                {
                    "clip": name,
                    "shift": int(shift),
                    "offset": int(result.offset),
                    "correct": abs(int(result.offset) - shift) <= tolerance,
                    "lse_c": float(result.lse_c),
                    "lse_d": float(result.lse_d),
                }
            )
    per_shift = {s: float(np.mean([t["correct"] for t in trials if t["shift"] == s])) for s in shifts}
    ratios = []
    for name, _, _ in clips:
        by_shift = {t["shift"]: t for t in trials if t["clip"] == name}
        shifted = [by_shift[s]["lse_c"] for s in (ratio_shift, -ratio_shift) if s in by_shift]
        if 0 in by_shift and shifted:
            ratios.append(by_shift[0]["lse_c"] / max(float(np.mean(shifted)), 1e-9))
    return {
        "accuracy": float(np.mean([t["correct"] for t in trials])),
        "tolerance_frames": tolerance,
        "per_shift": per_shift,
        "lse_c_sync_over_shifted": float(np.mean(ratios)) if ratios else None,
        "trials": trials,
    }
