"""Checks that every piece gsbench needs is present, and says how to fix what is missing."""

from __future__ import annotations

import ctypes.util
import importlib
import importlib.util
import shutil
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


APT_LIBUSB = "apt-get install -y libusb-1.0-0"
SETUP = "bash scripts/setup.sh"


def _module_check(module: str, purpose: str, probe: str | None = None) -> Check:
    """Import ``module`` (and evaluate ``probe`` against it) without crashing the doctor."""
    try:
        imported = importlib.import_module(module)
        if probe is not None:
            eval(probe, {"m": imported})  # noqa: S307 - fixed probe strings below
        version = getattr(imported, "__version__", "")
        return Check(f"python: {module}", True, f"{version} ({purpose})".strip())
    except Exception as exc:  # any import failure is what the doctor reports
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
        fix = SETUP
        if "libusb" in message:
            fix = APT_LIBUSB
        return Check(f"python: {module}", False, f"{message} ({purpose})", fix)


def python_checks() -> list[Check]:
    ok = sys.version_info >= (3, 11)
    checks = [Check("python >= 3.11", ok, sys.version.split()[0], "install Python 3.11 or newer")]
    modules = [
        ("torch", "tensors, training", None),
        ("torchvision", "LPIPS backbone", None),
        ("numpy", "arrays", None),
        ("scipy", "signal processing, sparse", None),
        ("cv2", "ChArUco, image I/O", "m.aruco.CharucoBoard"),
        ("mediapipe", "FaceMesh 478 landmarks, segmentation", "m.solutions.face_mesh.FaceMesh"),
        ("open3d", "ray casting for synth", "m.t.geometry.RaycastingScene"),
        ("pycolmap", "bundle adjustment, SfM", None),
        ("smplx", "FLAME linear blend skinning", "m.lbs.lbs"),
        ("trimesh", "mesh I/O", None),
        ("lpips", "LPIPS metric", None),
        ("python_speech_features", "SyncNet MFCC", None),
        ("ffmpeg", "ffmpeg-python bindings", "m.input"),
        ("skimage", "SSIM reference, ridge filters", None),
        ("yaml", "rig.yaml", None),
        ("transformers", "wav2vec 2.0 / HuBERT audio encoders", None),
    ]
    checks.extend(_module_check(name, purpose, probe) for name, purpose, probe in modules)
    return checks


def system_checks() -> list[Check]:
    from gsbench.errors import DependencyError
    from gsbench.ffmpeg import ffmpeg_exe

    checks = []
    try:
        exe = ffmpeg_exe()
        origin = "PATH" if shutil.which("ffmpeg") == exe else "imageio-ffmpeg"
        checks.append(Check("binary: ffmpeg", True, f"{exe} ({origin})"))
    except DependencyError as exc:
        checks.append(
            Check("binary: ffmpeg", False, str(exc), "pip install imageio-ffmpeg or apt-get install ffmpeg")
        )
    libusb = ctypes.util.find_library("usb-1.0")
    checks.append(
        Check("library: libusb-1.0", libusb is not None, libusb or "not found (open3d needs it)", APT_LIBUSB)
    )
    compiler = shutil.which("c++") or shutil.which("g++")
    checks.append(
        Check(
            "binary: c++ compiler",
            compiler is not None,
            compiler or "not found: the CPU rasterizer falls back to its slower pure-torch path",
            "apt-get install -y g++",
            required=False,
        )
    )
    has_ninja = importlib.util.find_spec("ninja") is not None or shutil.which("ninja") is not None
    checks.append(
        Check(
            "binary: ninja",
            has_ninja,
            "found" if has_ninja else "not found",
            "pip install ninja",
            required=False,
        )
    )
    return checks


def weight_checks() -> list[Check]:
    """Pretrained weights are optional: a missing one makes its metric/loss 'missing', never faked."""
    try:
        from benchmark.weights import WeightRegistry
    except ImportError:
        return []
    registry = WeightRegistry()
    checks = []
    for name in registry.names():
        state, resolved, reason = registry.status(name)
        detail = f"{resolved.weight_id} at {resolved.path}" if resolved is not None else reason
        argument = "DIR" if registry.spec(name).layout == "hf-folder" else "FILE"
        checks.append(
            Check(
                f"weights: {name}",
                state == "ok",
                detail,
                f"gsbench weights add {name} {argument}",
                required=False,
            )
        )
    return checks


def audio_encoder_checks() -> list[Check]:
    """Which audio encoders are usable; an absent one is replaced by its named offline default."""
    try:
        from avatars.audio import ENCODER_NAMES, encoder_status
        from benchmark.weights import WeightRegistry
    except ImportError:
        return []
    registry = WeightRegistry()
    checks = []
    for name in ENCODER_NAMES:
        status = encoder_status(name, registry)
        detail, fix = status.detail, status.fix
        if name == "deepspeech-0.1.0" and status.state == "absent":
            detail = f"features are imported per dataset; without them methods use {status.fallback}"
            fix = "gsbench audio import-features DATASET --encoder deepspeech-0.1.0 FOLDER"
        checks.append(Check(f"audio encoder: {name}", status.state == "usable", detail, fix, required=False))
    return checks


def rasterizer_check(device: str = "auto") -> Check:
    """Which rasterizer backend ``auto`` picks here and why (``avatars.render.backend.choose_backend``).

    Not ok when a CUDA device is present and gsplat cannot be used on it (not installed, or its kernels
    did not build: the error is shown), or when the CPU C++ kernel did not build; no CUDA device at all
    means the CPU kernel, which is then the right choice."""
    try:
        from avatars.render.backend import GPU_INSTALL, choose_backend
    except ImportError as error:
        return Check("rasterizer (auto)", False, f"avatars.render: {error}", SETUP, required=False)
    choice = choose_backend(device)
    detail = f"{choice.label}: {choice.reason}"
    if choice.error and "\n" in choice.error:
        detail += f"\n{choice.error}"
    if choice.backend == "gsplat":
        return Check("rasterizer (auto)", True, detail, required=False)
    if choice.cuda_found and "not installed" in choice.reason:
        return Check("rasterizer (auto)", False, detail, GPU_INSTALL, required=False)
    if choice.cuda_found:
        fix = "a CUDA toolkit whose nvcc matches torch.version.cuda (CUDA_HOME), then gsbench doctor again"
        return Check("rasterizer (auto)", False, detail, fix, required=False)
    if choice.backend == "cpu-torch":
        fix = "apt-get install -y g++; pip install ninja"
        return Check("rasterizer (auto)", False, detail, fix, required=False)
    return Check("rasterizer (auto)", True, detail, required=False)


def run_checks() -> list[Check]:
    return python_checks() + system_checks() + weight_checks() + audio_encoder_checks() + [rasterizer_check()]
