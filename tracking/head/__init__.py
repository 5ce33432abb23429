"""The procedural default head ``gsbench-head`` (FLAME format). See :func:`build_default_head`."""

from tracking.head.build import build_default_head

__all__ = ["build_default_head"]
