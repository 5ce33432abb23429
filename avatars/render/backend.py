"""Which rasterizer ``backend="auto"`` runs on this machine, and why.

``rasterize(backend="auto")`` uses gsplat for CUDA tensors and the CPU kernel otherwise; which device the
tensors live on is decided once per job by :func:`choose_backend`: the GPU only when all of these hold,
each probed by a small function of its own (the tests replace them):

1. a CUDA device is visible to torch (:func:`cuda_device`),
2. gsplat is importable (:func:`gsplat_version`; the ``gpu`` extra of ``pyproject.toml``),
3. gsplat's CUDA kernels build and run one rasterization on that device (:func:`gsplat_kernel_error`:
   gsplat 1.5's PyPI wheel compiles them with ``nvcc`` on first use, minutes once, then cached).

Otherwise the CPU kernel (``avatars/render/_extension.py``, or its pure-torch fallback) runs, and the
:class:`BackendChoice` says which condition failed, with the error. ``gsbench doctor`` prints it and
every results.json records the label of the backend that ran (``cuda:0 (gsplat 1.5.3)``,
``cpu (gsbench C++)``, ``cpu (gsbench torch)``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from dataclasses import dataclass

GPU_INSTALL = "GSBENCH_GPU=1 bash scripts/setup.sh  (installs the 'gpu' extra: pip install -e '.[gpu]')"
CPU_LABELS = {"cpu-cpp": "cpu (gsbench C++)", "cpu-torch": "cpu (gsbench torch)"}


@dataclass(frozen=True)
class BackendChoice:
    """The backend ``auto`` resolves to on a device, and why."""

    backend: str  # "gsplat" | "cpu-cpp" | "cpu-torch" (the names of RenderOutput.backend)
    device: str  # "cuda:N" | "cpu": where the job's tensors go
    label: str  # what results.json and the leaderboard's device column show
    reason: str  # one line: why this backend and not the other
    error: str = ""  # the build or run error behind the reason, if one was hit
    cuda_found: str = ""  # "cuda:N (name)" when a CUDA device was seen, whether or not it is used

    @property
    def on_gpu(self) -> bool:
        return self.backend == "gsplat"


def cuda_device(device: str = "auto") -> tuple[str, str] | None:
    """``("cuda:N", device name)`` of the CUDA device ``device`` names ("auto" or "cuda": the current
    one), or None when torch sees no CUDA device or the CPU was asked for."""
    if device == "cpu":
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device() if device in ("auto", "cuda") else torch.device(device).index or 0
    return f"cuda:{index}", torch.cuda.get_device_name(index)


def no_cuda_reason(device: str = "auto") -> str:
    """Why :func:`cuda_device` found nothing, in the words a user can act on."""
    if device == "cpu":
        return "the CPU was asked for (--device cpu)"
    import torch

    if torch.version.cuda is None:
        return f"no CUDA device: torch {torch.__version__} is a CPU-only build"
    return (
        f"no CUDA device: torch {torch.__version__} (CUDA {torch.version.cuda}) sees none "
        "(torch.cuda.is_available() is False)"
    )


def gsplat_version() -> str | None:
    """gsplat's version, or None when it is not installed. A gsplat that is installed but fails to import
    for another reason keeps its version: :func:`gsplat_kernel_error` then reports the error."""
    try:
        gsplat = importlib.import_module("gsplat")
    except ImportError:
        return None
    except Exception:  # noqa: BLE001 - e.g. an incompatible dependency; reported by the kernel probe
        try:
            return importlib.metadata.version("gsplat")
        except importlib.metadata.PackageNotFoundError:
            return None
    return str(getattr(gsplat, "__version__", "unknown"))


@functools.cache
def gsplat_kernel_error(device: str) -> str | None:
    """None when gsplat's CUDA kernels load (building them on first use) and rasterize one Gaussian on
    ``device``; else the error, one paragraph. Cached per process: a failed build is not retried."""
    try:
        from gsplat.cuda._backend import _C  # JIT-compiles with nvcc the first time
    except Exception as error:  # noqa: BLE001 - any build failure is what the doctor reports
        return _one_paragraph(error)
    if _C is None:  # gsplat prints "No CUDA toolkit found" and disables itself
        return "gsplat found no CUDA toolkit to build its kernels with (no nvcc on PATH, CUDA_HOME unset)"
    try:
        _smoke_rasterization(device)
    except Exception as error:  # noqa: BLE001 - e.g. "no kernel image is available" for this GPU
        return _one_paragraph(error)
    return None


def _smoke_rasterization(device: str) -> None:
    """One Gaussian in front of a 16x16 camera through ``gsplat.rasterization``; it must cover pixels."""
    import gsplat
    import torch

    with torch.device(device):
        image, alpha, _ = gsplat.rasterization(
            torch.tensor([[0.0, 0.0, 2.0]]),
            torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
            torch.full((1, 3), 0.2),
            torch.tensor([0.9]),
            torch.ones(1, 3),
            torch.eye(4)[None],
            torch.tensor([[[16.0, 0.0, 8.0], [0.0, 16.0, 8.0], [0.0, 0.0, 1.0]]]),
            16,
            16,
        )
    torch.cuda.synchronize(device)
    if not float(alpha.max()) > 0.5:
        raise RuntimeError(f"gsplat rendered an empty image of one opaque Gaussian (alpha max {alpha.max()})")


def _one_paragraph(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # a compiler failure ends with the useful line; keep the head and the tail of long logs
    if len(lines) > 12:
        lines = lines[:4] + ["..."] + lines[-8:]
    return "\n".join(lines)[:2000]


def cpu_choice(reason: str, error: str = "", cuda_found: str = "") -> BackendChoice:
    """The CPU backend ``rasterize(backend="cpu")`` will run: the C++ kernel, or pure torch if it does
    not build (``avatars.render._extension``)."""
    from avatars.render._extension import build_error, load_extension

    if load_extension() is not None:
        return BackendChoice("cpu-cpp", "cpu", CPU_LABELS["cpu-cpp"], reason, error, cuda_found)
    why = f"{reason}; the C++ kernel did not build ({(build_error() or '?').splitlines()[0][:200]})"
    return BackendChoice("cpu-torch", "cpu", CPU_LABELS["cpu-torch"], why, error, cuda_found)


def choose_backend(device: str = "auto") -> BackendChoice:
    """What ``auto`` runs for a job asked to run on ``device`` ("auto", "cpu", "cuda" or "cuda:N").

    "auto" takes the GPU only when gsplat works there; "cuda"/"cuda:N" ask for the GPU, and a reason
    why it cannot be used is the same as under "auto" (the caller decides whether that is an error)."""
    found = cuda_device(device)
    if found is None:
        return cpu_choice(no_cuda_reason(device))
    cuda, name = found
    seen = f"{cuda} ({name})"
    version = gsplat_version()
    if version is None:
        return cpu_choice(f"{seen} found, but gsplat is not installed: {GPU_INSTALL}", cuda_found=seen)
    error = gsplat_kernel_error(cuda)
    if error is not None:
        first = error.splitlines()[0][:300]
        why = f"{seen} and gsplat {version} found, but gsplat's CUDA kernels could not be built: {first}"
        return cpu_choice(why, error, cuda_found=seen)
    return BackendChoice(
        "gsplat", cuda, f"{cuda} (gsplat {version})", f"{seen} with gsplat {version}", "", seen
    )


def auto_device() -> str:
    """The device a job asked to run on "auto" goes to: the current CUDA device when gsplat works there
    (:func:`choose_backend`'s three conditions), else "cpu". Unlike ``choose_backend`` it does not build
    the CPU kernel."""
    found = cuda_device("auto")
    if found is None or gsplat_version() is None or gsplat_kernel_error(found[0]) is not None:
        return "cpu"
    return found[0]


def backend_label(backend: str, device: str) -> str:
    """The results.json ``device`` of a job whose renders ran on ``backend`` (``RenderOutput.backend``)
    with tensors on ``device``: ``cuda:0 (gsplat 1.5.3)``, ``cpu (gsbench C++)``, ``cpu (gsbench torch)``."""
    if backend == "gsplat":
        if device in ("auto", "cuda"):
            found = cuda_device("cuda")
            device = found[0] if found else "cuda"
        return f"{device} (gsplat {gsplat_version() or 'unknown'})"
    if backend in CPU_LABELS:
        return CPU_LABELS[backend]
    raise ValueError(f"unknown rasterizer backend {backend!r}")
