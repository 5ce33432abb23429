"""Routine messages of native libraries, kept off the terminal.

MediaPipe (and the TensorFlow Lite runtime inside it) writes its start-up warnings straight to file
descriptor 2 from C++ (absl/glog), past Python's logging and past environment switches such as
``GLOG_minloglevel``: every FaceMesh graph prints four or five lines ("Feedback manager requires a
model with a single signature inference", "Created TensorFlow Lite XNNPACK delegate", ...), which is
hundreds of lines over an ingest and buries the progress bars. :func:`quiet_native_stderr` sends fd 2
to a temporary file for the duration of a block and afterwards writes back every line that is not
such a routine info/warning line, so errors from the native side are still seen.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# glog/absl info and warning lines ("I0000 00:00:...", COLMAP's "I20261128 00:17:18..."; glog may put a
# colour code first), absl's pre-init banner and TensorFlow Lite's delegate notice. Error and fatal lines
# ("E...", "F...") and anything else are passed through.
ROUTINE = re.compile(
    r"^(?:\x1b\[[0-9;]*m)*(?:[IW]\d{4}(?:\d{4})? \d\d:\d\d:\d\d"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|INFO: Created TensorFlow Lite)"
)


@contextlib.contextmanager
def quiet_native_stderr(routine: re.Pattern = ROUTINE) -> Iterator[None]:
    """Run the block with fd 2 captured; then re-emit the captured lines that ``routine`` does not match."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not routine.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
