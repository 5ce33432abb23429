"""Worker processes that die with their parent and leave Ctrl-C to it.

Pass :func:`init_worker` as the ``initializer`` of a ``ProcessPoolExecutor`` (with
``initargs=(os.getpid(),)``):

* the kernel SIGKILLs the worker when the parent dies (``prctl(PR_SET_PDEATHSIG)`` on Linux; a thread
  that polls the parent's PID elsewhere), so a SIGKILLed ``gsbench ingest`` leaves no worker behind
  (each holds hundreds of MB of decoded frames and models);
* the worker ignores SIGINT: Ctrl-C reaches the whole process group, and the parent alone decides what
  happens (one "aborted" line) instead of every worker printing its KeyboardInterrupt traceback.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _exit_when_orphaned(parent_pid: int, interval_s: float = 1.0) -> None:
    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(interval_s)


def init_worker(parent_pid: int) -> None:
    """Initializer of a pool worker whose parent is ``parent_pid``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before the line above armed the signal
        os._exit(1)
    if not armed:
        threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()


def terminate_pool(executor) -> None:
    """Stop a ``ProcessPoolExecutor`` now (Ctrl-C, an error elsewhere): cancel what has not started and
    kill the workers instead of waiting for the jobs they run."""
    processes = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=5)
