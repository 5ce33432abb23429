"""Moved to :mod:`gsbench.media` (issue 15). Kept only until ``benchmark/cli/metrics.py`` and
``benchmark/metrics/train_syncnet.py`` import from there."""

from pathlib import Path

import numpy as np

from gsbench.media import read_mask_folder as read_masks  # noqa: F401
from gsbench.media import read_video_or_frames as read_frames  # noqa: F401
from gsbench.media import read_wav


def read_audio_16k(path: Path) -> np.ndarray:
    return read_wav(path, resample=True, fix="pass the test sequence's audio.wav")
