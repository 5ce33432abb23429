"""JIT build of the C++/OpenMP compositing kernel (``csrc/rasterize_cpu.cpp``) on first use.

Built with ``torch.utils.cpp_extension.load`` + ninja into a per-user cache folder keyed by the source's
hash, torch version and platform, so a fresh machine builds it from the package's own files (~30-60 s on
2 cores) and later processes load it in milliseconds. If the build fails (no compiler, no ninja), the
caller falls back to the pure-torch compositor and records that in ``RenderOutput.backend``.

The kernel needs no ``-march`` flag: its AVX2/FMA functions carry a target attribute and run only when
the CPU reports both at run time (scalar loops otherwise), so one build is right on any x86-64 CPU.
``GSBENCH_RASTERIZE_SIMD=0`` switches the SIMD path off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import threading
from pathlib import Path
from typing import Any

import torch

from gsbench.progress import log

SOURCE = Path(__file__).parent / "csrc" / "rasterize_cpu.cpp"
_lock = threading.Lock()
_state: dict[str, object] = {}


def cache_dir() -> Path:
    """``$GSBENCH_CACHE/torch_extensions/<key>`` (default ``~/.cache/gsbench``), one folder per build key."""
    root = Path(os.environ.get("GSBENCH_CACHE", Path.home() / ".cache" / "gsbench"))
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    key = f"rasterize_cpu_{digest}_torch{torch.__version__.replace('+', '_')}_{platform.machine()}"
    return root / "torch_extensions" / key


def load_extension() -> Any | None:
    """The compiled kernel's op namespace (``torch.ops.gsbench_rasterize``), or None if it cannot be
    built (the reason is in ``build_error()``)."""
    with _lock:
        if "module" in _state:
            return _state["module"]
        module: Any | None = None
        # torch warns that no CUDA runtime exists when cpp_extension is imported: irrelevant for a CPU build.
        cpp_logger = logging.getLogger("torch.utils.cpp_extension")
        previous_level = cpp_logger.level
        cpp_logger.setLevel(logging.ERROR)
        try:
            from torch.utils.cpp_extension import load

            build_dir = cache_dir()
            build_dir.mkdir(parents=True, exist_ok=True)
            if not (build_dir / "gsbench_rasterize_cpu.so").exists():
                log(f"building the C++ rasterizer into {build_dir} (first use only)")
            load(
                name="gsbench_rasterize_cpu",
                sources=[str(SOURCE)],
                extra_cflags=["-O3", "-fopenmp", "-fno-math-errno", "-ffp-contract=off"],
                extra_ldflags=["-fopenmp"],
                build_directory=str(build_dir),
                is_python_module=False,  # the .so registers torch.ops.gsbench_rasterize.*
                verbose=False,
            )
            module = torch.ops.gsbench_rasterize
            if os.environ.get("GSBENCH_RASTERIZE_SIMD", "1") == "0":
                module.set_simd(False)  # float32 through the scalar loops (comparisons, debugging)
        except Exception as error:  # noqa: BLE001 - any build failure means: use the torch fallback
            _state["error"] = f"{type(error).__name__}: {error}".strip()[:2000]
            log(
                "C++ rasterizer unavailable, using the pure-torch CPU compositor "
                f"(slower): {str(_state['error']).splitlines()[0]}"
            )
        finally:
            cpp_logger.setLevel(previous_level)
        _state["module"] = module
        return module


def build_error() -> str | None:
    """Why the last build attempt failed (None if it succeeded or was not tried)."""
    return _state.get("error")  # type: ignore[return-value]
