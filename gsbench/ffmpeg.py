"""Locate the ffmpeg binary: the one on PATH, else the static build shipped in imageio-ffmpeg.

There is no ffprobe fallback (imageio-ffmpeg ships none): probe with ``ffmpeg -i`` parsing or
``imageio_ffmpeg.count_frames_and_secs`` instead.
"""

from __future__ import annotations

import functools
import shutil

from gsbench.errors import DependencyError


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to use, PATH first."""
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - imageio-ffmpeg is a hard dependency
        raise DependencyError(
            "no ffmpeg on PATH and imageio-ffmpeg is not installed",
            fix="pip install imageio-ffmpeg, or apt-get install ffmpeg",
        ) from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise DependencyError(
            f"imageio-ffmpeg has no usable ffmpeg binary ({exc})", fix="apt-get install ffmpeg"
        ) from exc
