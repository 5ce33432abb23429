"""The GPU path of the rasterizer: which backend ``auto`` picks and why (probes replaced, runs everywhere),
and the gsplat backend against the CPU backend and the float64 reference on the same scenes (``gpu``).

Tolerances of the ``gpu`` comparisons, and why they can be tight: on these scenes both backends compute
the same function. gsplat 1.5.3 clamps a splat's alpha at 0.999 and we (3DGS) at 0.99, so opacities stay
<= 0.98; gsplat's opacity-aware box is min(3.33, sqrt(2 ln(255 o))) sigma, which for o <= 0.99 is our
extent exactly; both skip alpha < 1/255 and stop before T <= 1e-4, add eps2d = 0.3 px² and clamp the
EWA linearization at 1.3x the field of view. What remains is float32 arithmetic in another order and
gsplat's -use_fast_math exponentials (~1e-6 relative), hence: image and alpha within 2e-4 of the CPU
backend and of the float64 reference (the CPU backend is within 1e-5 of it); expected depth within 1e-3
relative where alpha > 0.05 (it is divided by alpha); gradients of means, quats, scales, opacities,
features and the screen-space means (and their |grad| sums) within 2 % in relative L2 norm; radii equal
to within one pixel on 99 % of the Gaussians.
"""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch

import avatars.render._extension as extension
from avatars.render import backend as backend_mod
from avatars.render import rasterize
from avatars.render.backend import BackendChoice, auto_device, backend_label, choose_backend
from avatars.render.reference import rasterize_reference

H200 = ("cuda:0", "NVIDIA H200")
BUILD_LOG = (
    "RuntimeError: Error building extension 'gsplat_cuda'\n"
    "nvcc fatal   : Unsupported gpu architecture 'compute_90'\n"
    "ninja: build stopped: subcommand failed."
)


@pytest.fixture
def probes(monkeypatch):
    """Replace the machine probes: ``probes(cuda=..., gsplat=..., kernels=..., cpp=...)``."""
    calls = []

    def set_probes(cuda=None, gsplat=None, kernels=None, cpp=True, torch_cuda="13.0"):
        monkeypatch.setattr(
            backend_mod, "cuda_device", lambda device="auto": None if device == "cpu" else cuda
        )
        monkeypatch.setattr(backend_mod, "gsplat_version", lambda: gsplat)

        def kernel_error(device):
            calls.append(device)
            return kernels

        monkeypatch.setattr(backend_mod, "gsplat_kernel_error", kernel_error)
        monkeypatch.setattr(extension, "load_extension", lambda: object() if cpp else None)
        monkeypatch.setattr(
            extension, "build_error", lambda: None if cpp else "CalledProcessError: c++ not found"
        )
        monkeypatch.setattr(torch.version, "cuda", torch_cuda)
        return calls

    return set_probes


def test_no_cuda_device_picks_the_cpu_kernel_and_says_so(probes):
    calls = probes(cuda=None, gsplat="1.5.3")
    choice = choose_backend()
    assert (choice.backend, choice.device, choice.label) == ("cpu-cpp", "cpu", "cpu (gsbench C++)")
    assert choice.reason.startswith("no CUDA device: torch ") and "CUDA 13.0" in choice.reason
    assert "torch.cuda.is_available() is False" in choice.reason
    assert choice.cuda_found == "" and not choice.on_gpu and calls == []  # no kernel build without a GPU
    assert auto_device() == "cpu"


def test_cpu_only_torch_build_is_named(probes):
    probes(cuda=None, torch_cuda=None)
    assert "is a CPU-only build" in choose_backend().reason


def test_cpu_asked_for_skips_the_gpu_even_when_it_works(probes):
    probes(cuda=H200, gsplat="1.5.3", kernels=None)
    choice = choose_backend("cpu")
    assert choice.backend == "cpu-cpp" and choice.reason == "the CPU was asked for (--device cpu)"


def test_gsplat_missing_on_a_gpu_machine_falls_back_and_says_how_to_install(probes):
    calls = probes(cuda=H200, gsplat=None)
    choice = choose_backend()
    assert choice.label == "cpu (gsbench C++)" and choice.cuda_found == "cuda:0 (NVIDIA H200)"
    assert choice.reason.startswith("cuda:0 (NVIDIA H200) found, but gsplat is not installed")
    assert "GSBENCH_GPU=1 bash scripts/setup.sh" in choice.reason and "'.[gpu]'" in choice.reason
    assert calls == [] and auto_device() == "cpu"


def test_kernels_that_do_not_build_are_reported_with_the_error(probes):
    calls = probes(cuda=H200, gsplat="1.5.3", kernels=BUILD_LOG)
    choice = choose_backend()
    assert choice.backend == "cpu-cpp" and choice.device == "cpu"
    assert choice.reason == (
        "cuda:0 (NVIDIA H200) and gsplat 1.5.3 found, but gsplat's CUDA kernels could not be built: "
        "RuntimeError: Error building extension 'gsplat_cuda'"
    )
    assert choice.error == BUILD_LOG  # the whole log, for the doctor
    assert calls == ["cuda:0"] and auto_device() == "cpu"


def test_working_gsplat_on_a_cuda_device_is_picked(probes):
    probes(cuda=("cuda:1", "NVIDIA H100"), gsplat="1.5.3", kernels=None)
    choice = choose_backend("cuda:1")
    assert choice == BackendChoice(
        "gsplat",
        "cuda:1",
        "cuda:1 (gsplat 1.5.3)",
        "cuda:1 (NVIDIA H100) with gsplat 1.5.3",
        "",
        "cuda:1 (NVIDIA H100)",
    )
    assert choice.on_gpu and auto_device() == "cuda:1"


def test_cpu_kernel_that_does_not_build_is_the_torch_fallback(probes):
    probes(cuda=None, cpp=False)
    choice = choose_backend()
    assert (choice.backend, choice.label) == ("cpu-torch", "cpu (gsbench torch)")
    assert choice.reason.endswith("the C++ kernel did not build (CalledProcessError: c++ not found)")


def test_backend_labels_name_the_implementation_that_ran(monkeypatch):
    monkeypatch.setattr(backend_mod, "gsplat_version", lambda: "1.5.2")
    monkeypatch.setattr(backend_mod, "cuda_device", lambda device="auto": ("cuda:3", "GPU"))
    assert backend_label("cpu-cpp", "cpu") == "cpu (gsbench C++)"
    assert backend_label("cpu-torch", "cpu") == "cpu (gsbench torch)"
    assert backend_label("gsplat", "cuda:2") == "cuda:2 (gsplat 1.5.2)"
    assert backend_label("gsplat", "cuda") == "cuda:3 (gsplat 1.5.2)"  # the index torch uses
    with pytest.raises(ValueError, match="vulkan"):
        backend_label("vulkan", "cpu")


@pytest.fixture
def fake_gsplat(monkeypatch):
    """Install a stand-in ``gsplat`` package whose ``cuda._backend`` import does what the test says."""
    backend_mod.gsplat_kernel_error.cache_clear()

    def install(backend_module: types.ModuleType | None, import_error: Exception | None = None):
        package = types.ModuleType("gsplat")
        package.__version__ = "1.5.3"
        package.__path__ = []
        cuda = types.ModuleType("gsplat.cuda")
        cuda.__path__ = []
        monkeypatch.setitem(sys.modules, "gsplat", package)
        monkeypatch.setitem(sys.modules, "gsplat.cuda", cuda)
        if import_error is not None:

            class Finder:
                def find_spec(self, name, path=None, target=None):
                    if name == "gsplat.cuda._backend":
                        raise import_error
                    return None

            monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
            monkeypatch.delitem(sys.modules, "gsplat.cuda._backend", raising=False)
        else:
            monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", backend_module)

    yield install
    backend_mod.gsplat_kernel_error.cache_clear()


def test_gsplat_that_is_installed_but_does_not_import_keeps_its_version(monkeypatch):
    import importlib.metadata

    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name == "gsplat":
                raise TypeError("jaxtyping: unsupported annotation")
            return None

    monkeypatch.delitem(sys.modules, "gsplat", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    real = importlib.metadata.version
    fake = {"gsplat": "1.5.3"}
    monkeypatch.setattr(importlib.metadata, "version", lambda name: fake.get(name) or real(name))
    assert backend_mod.gsplat_version() == "1.5.3"  # so the kernel probe runs and reports the import error
    backend_mod.gsplat_kernel_error.cache_clear()
    try:
        assert backend_mod.gsplat_kernel_error("cuda:0") == "TypeError: jaxtyping: unsupported annotation"
    finally:
        backend_mod.gsplat_kernel_error.cache_clear()


def test_kernel_probe_reports_a_missing_toolkit(fake_gsplat):
    module = types.ModuleType("gsplat.cuda._backend")
    module._C = None  # what gsplat 1.5.3 leaves when it finds no nvcc
    fake_gsplat(module)
    assert backend_mod.gsplat_version() == "1.5.3"
    assert "no CUDA toolkit" in backend_mod.gsplat_kernel_error("cuda:0")


def test_kernel_probe_reports_the_build_error_head_and_tail(fake_gsplat):
    log = "\n".join(["Error building extension 'gsplat_cuda'"] + [f"[{i}/30] nvcc ..." for i in range(20)])
    fake_gsplat(None, import_error=RuntimeError(log + "\nnvcc fatal: unsupported gpu architecture"))
    error = backend_mod.gsplat_kernel_error("cuda:0")
    lines = error.splitlines()
    assert lines[0] == "RuntimeError: Error building extension 'gsplat_cuda'"
    assert lines[-1] == "nvcc fatal: unsupported gpu architecture" and "..." in lines
    assert len(lines) == 13


def test_kernel_probe_runs_one_rasterization_and_reports_its_failure(fake_gsplat, monkeypatch):
    module = types.ModuleType("gsplat.cuda._backend")
    module._C = object()
    fake_gsplat(module)

    def no_kernel_image(device):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device")

    monkeypatch.setattr(backend_mod, "_smoke_rasterization", no_kernel_image)
    assert backend_mod.gsplat_kernel_error("cuda:0") == (
        "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    )


# ---------------------------------------------------------------------------------------------- gpu


def scene(n=300, cameras=2, dim=3, width=64, height=48, seed=0, log_scale=-3.0, spread=1.0):
    """Gaussians in a slab in front of ``cameras`` cameras looking down +z; opacities in [0.01, 0.98]."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([2.0, 1.6, 1.0]) * spread
    quats = torch.randn(n, 4, generator=gen)
    scales = torch.exp(torch.randn(n, 3, generator=gen) * 0.5 + log_scale)
    opacities = torch.rand(n, generator=gen) * 0.97 + 0.01
    features = torch.rand(n, dim, generator=gen)
    viewmats = torch.eye(4).repeat(cameras, 1, 1)
    for c in range(cameras):
        angle = 0.15 * (c - (cameras - 1) / 2)
        cos, sin = math.cos(angle), math.sin(angle)
        viewmats[c, :3, :3] = torch.tensor([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]])
        viewmats[c, :3, 3] = torch.tensor([0.05 * c, -0.03 * c, 3.0 + 0.2 * c])
    Ks = torch.tensor([[width * 0.7, 0.0, width / 2], [0.0, width * 0.72, height / 2 + 0.3], [0.0, 0.0, 1.0]])
    return [means, quats, scales, opacities, features, viewmats, Ks.repeat(cameras, 1, 1)], width, height


SCENES = {
    "sparse": dict(n=300, seed=37),
    "dense-early-stop": dict(n=3000, seed=5, log_scale=-2.5, width=96, height=80),  # T reaches 1e-4
    "four-channels": dict(n=400, dim=4, seed=11, cameras=3),
    "big-splats": dict(n=60, seed=2, log_scale=-1.5, spread=0.5),  # splats larger than a 16 px tile
}


def render_both(params, width, height, background=None, mode="classic"):
    """Render on the CPU backend and on gsplat (CUDA) with the same leaves; backprop one loss through
    image, alpha and accumulated depth. Returns [(output, gradients of the 5 Gaussian inputs)] x 2."""
    gen = torch.Generator().manual_seed(4)
    C, dim = params[5].shape[0], params[4].shape[-1]
    w_image = torch.rand(C, height, width, dim, generator=gen)
    w_alpha = torch.rand(C, height, width, 1, generator=gen)
    w_depth = torch.rand(C, height, width, 1, generator=gen)
    results = []
    for backend, device in (("cpu", "cpu"), ("gsplat", "cuda")):
        leaves = [p.to(device).clone().requires_grad_(i < 5) for i, p in enumerate(params)]
        bg = None if background is None else background.to(device)
        out = rasterize(*leaves, width, height, background=bg, backend=backend, rasterize_mode=mode)
        loss = (
            (out.features * w_image.to(device)).sum()
            + (out.alpha * w_alpha.to(device)).sum()
            + (out.depth * out.alpha * w_depth.to(device)).sum()
        )
        loss.backward()
        results.append((out, [p.grad.detach().cpu() for p in leaves[:5]]))
    return results


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(SCENES))
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_gsplat_matches_the_cpu_backend(name, mode):
    pytest.importorskip("gsplat")
    params, width, height = scene(**SCENES[name])
    background = torch.linspace(0.1, 0.9, params[4].shape[-1])
    (cpu, cpu_grads), (gs, gs_grads) = render_both(params, width, height, background, mode)
    assert cpu.backend == "cpu-cpp" and gs.backend == "gsplat"
    assert gs.features.is_cuda and gs.features.shape == cpu.features.shape
    assert float(cpu.alpha.max()) > 0.5  # the scene is not empty
    if name == "dense-early-stop":  # many pixels composite until T would drop below 1e-4
        assert int((cpu.alpha > 0.9998).sum()) > 1000
    assert float((gs.features.cpu() - cpu.features).abs().max()) < 2e-4
    assert float((gs.alpha.cpu() - cpu.alpha).abs().max()) < 2e-4
    covered = cpu.alpha > 0.05
    depth_error = (gs.depth.cpu() - cpu.depth).abs()[covered] / cpu.depth[covered].abs()
    assert float(depth_error.max()) < 1e-3
    inputs = ("means", "quats", "scales", "opacities", "features")
    for input_name, gs_grad, cpu_grad in zip(inputs, gs_grads, cpu_grads, strict=True):
        assert relative_l2(gs_grad, cpu_grad) < 0.02, input_name
    assert relative_l2(gs.means2d.grad.cpu(), cpu.means2d.grad) < 0.02
    assert relative_l2(gs.means2d_absgrad.cpu(), cpu.means2d_absgrad) < 0.02
    radius_gap = (gs.radii.cpu().long() - cpu.radii.long()).abs()
    assert float((radius_gap <= 1).float().mean()) >= 0.99
    assert torch.allclose(gs.depths.cpu(), cpu.depths, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_gsplat_matches_the_float64_reference(mode):
    pytest.importorskip("gsplat")
    params, width, height = scene(n=200, seed=9)
    background = torch.tensor([0.2, 0.5, 0.9])
    out = rasterize(*[p.cuda() for p in params], width, height, background=background.cuda(),
                    backend="gsplat", rasterize_mode=mode)  # fmt: skip
    features, alpha, depth = rasterize_reference(
        *[p.double() for p in params], width, height, background=background.double(), rasterize_mode=mode
    )
    assert float((out.features.cpu().double() - features).abs().max()) < 2e-4
    assert float((out.alpha.cpu().double() - alpha).abs().max()) < 2e-4
    covered = alpha > 0.05
    assert float(((out.depth.cpu().double() - depth).abs()[covered] / depth[covered]).max()) < 1e-3


@pytest.mark.gpu
def test_auto_picks_gsplat_for_cuda_tensors_and_the_probe_agrees():
    pytest.importorskip("gsplat")
    choice = choose_backend("cuda")
    assert choice.on_gpu, choice.reason
    assert choice.label.startswith("cuda:") and choice.label.endswith(
        f"(gsplat {backend_mod.gsplat_version()})"
    )
    params, width, height = scene(n=50, seed=1)
    out = rasterize(*[p.cuda() for p in params], width, height)  # backend="auto"
    assert out.backend == "gsplat" and backend_label(out.backend, "cuda") == choice.label
    assert auto_device() == choice.device
