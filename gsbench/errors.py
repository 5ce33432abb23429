"""User-facing errors. The CLI prints ``str(error)`` on one line and exits non-zero, no traceback.

Raise these for user mistakes (missing file, bad config, unknown method). Internal bugs are not
caught: they should surface with a traceback.
"""

from __future__ import annotations

from pathlib import Path


class GsbenchError(Exception):
    """Base of every error the CLI reports as one line. Say what, where, and the fix."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        self.path = Path(path) if path is not None else None
        self.fix = fix
        text = f"{path}: {message}" if path is not None else message
        if fix:
            text = f"{text} (fix: {fix})"
        super().__init__(text)


class InputError(GsbenchError):
    """A user-supplied file or argument is missing, malformed or inconsistent."""


class ConfigError(InputError):
    """A config file (rig.yaml, dataset.json, a method config) has a bad or missing key."""


class MediaError(InputError):
    """A video/audio/image file cannot be decoded or has unexpected properties."""


class DependencyError(GsbenchError):
    """A binary, system library or Python package gsbench needs is missing."""


class WeightsError(GsbenchError):
    """A pretrained weight file is missing or does not match its registered sha256."""


class StageError(GsbenchError):
    """A processing stage could not produce its output from otherwise valid input."""


class MethodError(GsbenchError):
    """A method is unknown, misconfigured, or broke the protocol (e.g. asked for test images)."""


class BusyError(GsbenchError):
    """Another gsbench process is working on the same folder (it holds the folder's lock)."""
