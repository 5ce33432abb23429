"""Synthetic raw rig sessions with ground truth (``gsbench synth``): the embedded default dataset.

Speech (:mod:`.speech`) drives the mouth (:mod:`.motion`) of the procedural head, which is ray-cast
(:mod:`.render`) into a NeRSemble-like camera rig (:mod:`.rig`) inside a textured studio with a
ChArUco calibration take (:mod:`.scene`); :mod:`.session` writes everything (:mod:`.media`).
"""

from capture_tools.synth.presets import PRESETS, SynthPreset, get_preset
from capture_tools.synth.session import SessionSummary, generate_session

__all__ = ["PRESETS", "SessionSummary", "SynthPreset", "generate_session", "get_preset"]
