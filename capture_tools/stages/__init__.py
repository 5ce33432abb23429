"""The built-in ingest stages, one module each, in the order ``gsbench ingest`` runs them.

Each module of :data:`ORDER` defines ``STAGE``, a :class:`capture_tools.ingest.Stage`: its name, the
inputs its result depends on, its parameters, the files it writes (``outputs``) and the check that they
are still there. A stage only adapts an algorithm module (``capture_tools.sync``, ``capture_tools.sfm``,
``tracking.fit`` ...) to the ingest context: it reads earlier stages' results, decodes, runs the
algorithm and writes files. Adding a stage: a new module here defining ``STAGE`` and its name in
:data:`ORDER` (docs/extending.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from capture_tools.ingest import Stage

ORDER = ("probe", "sync", "calibrate", "frames", "masks", "backgrounds", "landmarks", "track")


def builtin_stages() -> list[Stage]:
    """The ``STAGE`` of every module of :data:`ORDER`, in that order."""
    return [importlib.import_module(f"{__name__}.{name}").STAGE for name in ORDER]
