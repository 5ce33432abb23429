"""Moved to :mod:`gsbench.media` (issue 15). Kept only while ``capture_tools/stages/`` is being split;
import from ``gsbench.media``."""

from gsbench.media import (  # noqa: F401
    MAX_MISSING_FRAMES,
    VideoInfo,
    probe_audio,
    probe_video,
    read_audio,
    read_audio_many,
    read_frames,
    write_wav,
)
