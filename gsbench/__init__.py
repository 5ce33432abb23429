"""gsbench: common base shared by every stage (version, errors, atomic I/O, ffmpeg, progress).

This package imports nothing else of ours, so ``tracking`` (which DESIGN.md says imports nothing of
ours) may still raise :class:`gsbench.errors.GsbenchError`.
"""

__version__ = "0.1.0"
