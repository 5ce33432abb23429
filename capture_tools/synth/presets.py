"""Size presets of the synthetic session (``gsbench synth --preset``)."""

from __future__ import annotations

import dataclasses

from capture_tools.synth.scene import BoardSpec
from gsbench.errors import InputError


@dataclasses.dataclass(frozen=True)
class SynthPreset:
    name: str
    num_cameras: int
    width: int
    height: int
    fps: float
    num_subjects: int
    takes_per_subject: int
    take_duration_s: tuple[float, float]  # each take's length is drawn uniformly in this range
    calibration_duration_s: float
    board: BoardSpec
    distance_m: float = 1.0
    field_of_view_m: float = 0.36  # width the image spans at ``distance_m``


# 7x5 squares of 4 cm, 5x5 markers: ~28 px squares at 256 px; the tiny preset uses a coarser board
# so that its 128 px images still resolve the marker bits.
_BOARD = BoardSpec(
    squares_x=7, squares_y=5, square_length_m=0.04, marker_length_m=0.03, dictionary="DICT_5X5_100"
)
_TINY_BOARD = BoardSpec(
    squares_x=5, squares_y=4, square_length_m=0.055, marker_length_m=0.042, dictionary="DICT_4X4_50"
)

PRESETS: dict[str, SynthPreset] = {
    "tiny": SynthPreset("tiny", num_cameras=4, width=128, height=128, fps=25.0, num_subjects=1,
                        takes_per_subject=2, take_duration_s=(1.5, 1.5), calibration_duration_s=3.0,
                        board=_TINY_BOARD),
    "default": SynthPreset("default", num_cameras=16, width=256, height=256, fps=25.0, num_subjects=2,
                           takes_per_subject=12, take_duration_s=(2.0, 2.4), calibration_duration_s=12.0,
                           board=_BOARD),
    "full": SynthPreset("full", num_cameras=16, width=512, height=512, fps=25.0, num_subjects=3,
                        takes_per_subject=20, take_duration_s=(2.5, 5.0), calibration_duration_s=16.0,
                        board=_BOARD),
}  # fmt: skip


def get_preset(name: str) -> SynthPreset:
    if name not in PRESETS:
        raise InputError(f"unknown synth preset {name!r}", fix=f"use one of: {', '.join(PRESETS)}")
    return PRESETS[name]
