"""Build and load the synth renderer's compiled kernels (``csrc/synth_render.cpp``) on first use.

A plain C ABI library loaded with ctypes, compiled with the system C++ compiler into the per-user
cache (``$GSBENCH_CACHE/synth_kernels``, default ``~/.cache/gsbench``) under a name keyed by the
source's hash, the flags and the platform, so a fresh machine builds it once (~2 s) and later
processes just load it. Not a torch extension like ``avatars/render``: the synth workers never import
torch (~3 s of CPU per process), and the kernel needs nothing from it. Without a compiler the renderer
uses its pure-numpy path (same images up to float rounding, several times slower) and says so once.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gsbench.progress import log

SOURCE = Path(__file__).parent / "csrc" / "synth_render.cpp"
ABI_VERSION = 1
# no -ffast-math and no FMA contraction: the kernel must round like numpy's separate float32 operations
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-fno-math-errno", "-ffp-contract=off")

_P = ctypes.c_void_p
_I = ctypes.c_int
_SIGNATURES = {
    "gs_rasterize": [_I] * 5 + [_P] * 13,
    "gs_shade": [_I] * 5 + [_P] * 7 + [_I] * 3 + [_P] * 2 + [_I] + [_P] * 6,
    "gs_camera_response": [ctypes.c_int64] + [_P] * 5 + [_I, _P],
}


def cache_dir() -> Path:
    return Path(os.environ.get("GSBENCH_CACHE", Path.home() / ".cache" / "gsbench")) / "synth_kernels"


def _compiler() -> str | None:
    for candidate in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


@functools.cache
def load_kernel() -> ctypes.CDLL | None:
    """The compiled kernel library, built on first use; None (with one log line) if it cannot be built."""
    compiler = _compiler()
    if compiler is None:
        log("synth: no C++ compiler found (set CXX), rendering with the slower numpy path")
        return None
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode()).hexdigest()[:12]
    library = cache_dir() / f"synth_render_{key}_{platform.machine()}.so"
    try:
        if not library.exists():
            log(f"synth: building the renderer's C++ kernel into {library.parent} (first use only)")
            library.parent.mkdir(parents=True, exist_ok=True)
            # compile beside the target and rename: concurrent builders (worker processes) never see a
            # half-written library
            with tempfile.TemporaryDirectory(dir=library.parent, prefix=".build-") as workdir:
                partial = Path(workdir) / library.name
                result = subprocess.run(
                    [compiler, *FLAGS, str(SOURCE), "-o", str(partial)], capture_output=True, text=True
                )
                if result.returncode != 0:
                    raise OSError(result.stderr.strip()[-600:] or f"{compiler} failed")
                os.replace(partial, library)
        kernel = ctypes.CDLL(str(library))
        if kernel.gs_abi_version() != ABI_VERSION:
            raise OSError(f"{library} has ABI {kernel.gs_abi_version()}, expected {ABI_VERSION}")
    except OSError as error:
        log(f"synth: C++ kernel unavailable, rendering with the slower numpy path ({error})")
        return None
    for name, argtypes in _SIGNATURES.items():
        function = getattr(kernel, name)
        function.argtypes = argtypes
        function.restype = None
    return kernel


def pointer(array: np.ndarray | None, dtype: type, writable: bool = False) -> int | None:
    """Address of ``array``'s data for a kernel argument; it must already be C-contiguous ``dtype``
    (a silent copy would make an output vanish)."""
    if array is None:
        return None
    if array.dtype != dtype or not array.flags.c_contiguous or (writable and not array.flags.writeable):
        raise ValueError(f"kernel argument must be a C-contiguous {np.dtype(dtype).name} array")
    return array.ctypes.data
