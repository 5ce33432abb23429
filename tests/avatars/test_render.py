"""The rasterizer against the brute-force float64 reference, finite differences and edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from avatars.render import rasterize
from avatars.render.projection import project_gaussians
from avatars.render.reference import rasterize_reference
from gsbench.errors import InputError

CPU_BACKENDS = ["cpu", "cpu-torch"]


def random_scene(
    n: int = 120,
    cameras: int = 2,
    dim: int = 3,
    width: int = 40,
    height: int = 32,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    spread: float = 1.0,
    log_scale: float = -3.0,
    per_camera_features: bool = False,
):
    """Gaussians in a slab in front of ``cameras`` cameras looking down +z (slightly shifted/rotated)."""
    gen = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([2.0, 1.6, 1.0]) * spread
    quats = torch.randn(n, 4, generator=gen)
    scales = torch.exp(torch.randn(n, 3, generator=gen) * 0.5 + log_scale)
    opacities = torch.rand(n, generator=gen) * 0.98 + 0.01
    shape = (cameras, n, dim) if per_camera_features else (n, dim)
    features = torch.rand(shape, generator=gen)
    viewmats = torch.eye(4).repeat(cameras, 1, 1)
    for c in range(cameras):
        angle = 0.15 * (c - (cameras - 1) / 2)
        viewmats[c, :3, :3] = torch.tensor(
            [
                [math.cos(angle), 0.0, math.sin(angle)],
                [0.0, 1.0, 0.0],
                [-math.sin(angle), 0.0, math.cos(angle)],
            ]
        )
        viewmats[c, :3, 3] = torch.tensor([0.05 * c, -0.03 * c, 3.0 + 0.2 * c])
    Ks = torch.tensor([[40.0, 0.0, width / 2], [0.0, 42.0, height / 2 + 0.3], [0.0, 0.0, 1.0]]).repeat(
        cameras, 1, 1
    )
    params = [t.to(dtype) for t in (means, quats, scales, opacities, features, viewmats, Ks)]
    return params, width, height


def assert_matches_reference(params, width, height, backend, background=None, **kwargs):
    out = rasterize(*params, width, height, background=background, backend=backend, **kwargs)
    ref_features, ref_alpha, ref_depth = rasterize_reference(
        *params, width, height, background=background, **kwargs
    )
    assert out.features.shape == ref_features.shape
    assert (out.features.double() - ref_features).abs().max() < 1e-5
    assert (out.alpha.double() - ref_alpha).abs().max() < 1e-5
    # Expected depth divides by alpha: compare where alpha is not tiny, relative to the depth scale.
    covered = ref_alpha > 1e-3
    depth_err = (out.depth.double() - ref_depth).abs()[covered]
    assert depth_err.numel() == 0 or depth_err.max() < 1e-5 * ref_depth.abs().max()
    return out


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_matches_reference_random_scenes(backend, mode):
    for seed in [0, 1] if mode == "classic" else [2]:
        params, w, h = random_scene(seed=seed)
        background = torch.tensor([0.2, 0.5, 0.9])
        out = assert_matches_reference(params, w, h, backend, background=background, rasterize_mode=mode)
        assert out.backend == ("cpu-cpp" if backend == "cpu" else "cpu-torch")
        assert out.features.shape == (2, h, w, 3) and out.alpha.shape == (2, h, w, 1)
        assert out.alpha.max() > 0.5  # the scene is not empty


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dense_scene_early_termination(backend):
    # Many opaque splats: most pixels stop early (T < 1e-4), and the rule must match the reference.
    params, w, h = random_scene(n=300, seed=3, log_scale=-2.2)
    params[3] = torch.full_like(params[3], 0.95)
    out = assert_matches_reference(params, w, h, backend)
    assert (out.alpha > 1 - 2e-4).float().mean() > 0.2


def test_cpu_and_torch_backends_agree_on_gradients():
    params, w, h = random_scene(n=150, seed=5)
    weights = torch.rand(2, h, w, 3, generator=torch.Generator().manual_seed(1))
    grads, screen = [], []
    for backend in CPU_BACKENDS:
        leaves = [p.clone().requires_grad_(i < 5) for i, p in enumerate(params)]
        out = rasterize(*leaves, w, h, backend=backend)
        loss = (out.features * weights).sum() + out.alpha.sum() + 0.1 * out.depth.sum()
        loss.backward()
        grads.append([p.grad for p in leaves[:5]])
        screen.append(out.means2d.grad)
    for a, b in zip(grads[0], grads[1], strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * b.abs().max())
    assert torch.allclose(screen[0], screen[1], rtol=1e-3, atol=1e-4 * screen[1].abs().max())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradients_match_reference_autograd(backend):
    params, w, h = random_scene(n=60, cameras=1, seed=7)
    weights = torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def loss_of(render, leaves):
        features, alpha, depth = render(leaves)
        return (features * weights).sum() + (alpha * weights[..., :1]).sum() + 0.1 * depth.sum()

    ours = [p.clone().requires_grad_(i < 5) for i, p in enumerate(params)]
    loss_of(lambda p: _triple(rasterize(*p, w, h, backend=backend)), ours).backward()
    ref = [p.double().clone().requires_grad_(i < 5) for i, p in enumerate(params)]
    loss_of(lambda p: rasterize_reference(*p, w, h), ref).backward()
    for a, b in zip(ours[:5], ref[:5], strict=True):
        scale = b.grad.abs().max()
        assert (a.grad.double() - b.grad).abs().max() < 2e-4 * scale + 1e-6


def _triple(out):
    return out.features.double(), out.alpha.double(), out.depth.double()


def _gradcheck_tiny_scene(backend: str, mode: str, fast_mode: bool) -> bool:
    params, w, h = random_scene(
        n=5, cameras=2, dim=2, width=12, height=10, seed=11, dtype=torch.float64, log_scale=-2.0
    )
    viewmats, Ks = params[5], params[6]
    background = torch.tensor([0.3, 0.6], dtype=torch.float64)

    def render(means, quats, scales, opacities, features):
        out = rasterize(
            means,
            quats,
            scales,
            opacities,
            features,
            viewmats,
            Ks,
            w,
            h,
            background=background,
            backend=backend,
            rasterize_mode=mode,
        )
        return out.features, out.alpha, out.depth

    inputs = tuple(p.clone().requires_grad_(True) for p in params[:5])
    return torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=fast_mode)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("mode", ["classic", "antialiased"])
def test_gradcheck_float64_tiny_scene(backend, mode):
    """Finite differences for means, quats, scales, opacities and features (float64 end to end).
    fast_mode compares random projections uᵀ J v of the analytic and numerical Jacobians."""
    assert _gradcheck_tiny_scene(backend, mode, fast_mode=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradcheck_float64_full_jacobian(backend):
    assert _gradcheck_tiny_scene(backend, "classic", fast_mode=False)


def test_camera_gradients_use_the_torch_projection():
    params, w, h = random_scene(n=40, cameras=2, seed=41)
    grads = []
    for camera_grad in (False, True):
        leaves = [p.clone().requires_grad_(i < 5 or camera_grad) for i, p in enumerate(params)]
        rasterize(*leaves, w, h, backend="cpu").features.sum().backward()
        grads.append(leaves)
    assert grads[1][5].grad is not None and grads[1][5].grad.abs().max() > 0
    for a, b in zip(grads[0][:5], grads[1][:5], strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5 * b.grad.abs().max())


def test_means2d_grad_and_absgrad():
    params, w, h = random_scene(n=80, cameras=2, seed=13)
    leaves = [p.clone().requires_grad_(i < 5) for i, p in enumerate(params)]
    out = rasterize(*leaves, w, h, backend="cpu")
    assert out.means2d_absgrad is None
    weights = torch.randn(2, h, w, 3, generator=torch.Generator().manual_seed(3))
    (out.features * weights).sum().backward()
    grad, absgrad = out.means2d.grad, out.means2d_absgrad
    assert grad.shape == absgrad.shape == (2, 80, 2)
    assert (absgrad >= grad.abs() - 1e-6).all()
    visible = out.radii > 0
    assert (grad[~visible] == 0).all() and (absgrad[visible].sum(-1) > 0).float().mean() > 0.9
    # With signed per-pixel weights some contributions cancel: |sum| < sum |.| somewhere.
    assert (absgrad - grad.abs()).max() > 1e-4
    # The chain rule through the projection uses exactly this grad: the means' gradient equals
    # means2d.grad pushed through d means2d / d means (depth and covariance terms aside, checked above).
    assert torch.isfinite(leaves[0].grad).all()


def test_projection_isotropic_gaussian_at_centre():
    focal, z, sigma = 50.0, 2.0, 0.01
    p = project_gaussians(
        torch.tensor([[0.0, 0.0, z]]),
        torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
        torch.full((1, 3), sigma),
        torch.tensor([0.5]),
        torch.eye(4)[None],
        torch.tensor([[[focal, 0.0, 16.0], [0.0, focal, 12.0], [0.0, 0.0, 1.0]]]),
        32,
        24,
    )
    variance = (focal * sigma / z) ** 2 + 0.3  # Eq. 5 with the 0.3 px² dilation
    assert torch.allclose(p.means2d, torch.tensor([[[16.0, 12.0]]]))
    assert torch.allclose(p.conics, torch.tensor([[[1 / variance, 0.0, 1 / variance]]]), rtol=1e-5)
    expected_extent = math.sqrt(2 * math.log(0.5 * 255)) * math.sqrt(variance)
    assert torch.allclose(p.extents, torch.full((1, 1, 2), expected_extent), rtol=1e-5)
    assert int(p.radii) == math.ceil(expected_extent)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_behind_camera_and_outside_planes_are_culled(backend):
    params, w, h = random_scene(n=60, cameras=1, seed=17)
    means = params[0].clone()
    means[:20, 2] = -3.5  # camera at z = -3 (world_to_cam translation +3): these are behind it
    means[20:25, 2] = -2.995  # between camera and near plane
    params[0] = means
    out = assert_matches_reference(params, w, h, backend, near_plane=0.01)
    assert (out.radii[0, :25] == 0).all()
    kept = [p[25:] for p in params[:5]]
    alone = rasterize(*kept, params[5], params[6], w, h, backend=backend)
    assert torch.allclose(out.features, alone.features, atol=1e-6)
    far = rasterize(*params, w, h, backend=backend, far_plane=3.0)
    assert (far.radii[0][params[0][:, 2] + 3.0 >= 3.0] == 0).all()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gaussians_on_the_image_border(backend):
    # Spread the means 2.5x wider than the view: many splats straddle the border or lie outside.
    params, w, h = random_scene(n=200, cameras=1, seed=19, spread=2.5, log_scale=-2.5)
    out = assert_matches_reference(params, w, h, backend)
    mx = out.means2d[0, :, 0].detach()
    straddling = (out.radii[0] > 0) & ((mx < 0) | (mx > w))
    assert straddling.any()
    assert ((out.radii[0] == 0) & (mx.abs() < 1e6)).any()  # some are entirely off screen


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_degenerate_covariances(backend):
    params, w, h = random_scene(n=40, cameras=1, seed=23)
    scales = params[2].clone()
    scales[:10] = 0.0  # points: the 0.3 px dilation alone makes them splats
    scales[10:20, 0] = 0.0  # flat disks
    scales[20:25, :2] = 1e-12  # needles
    params[2] = scales
    out = assert_matches_reference(params, w, h, backend)
    leaves = [p.clone().requires_grad_(i < 5) for i, p in enumerate(params)]
    rasterize(*leaves, w, h, backend=backend).features.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in leaves[:5])
    assert (out.radii[0, :10] > 0).any()


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_zero_gaussians(backend):
    params, w, h = random_scene(n=0, cameras=2)
    leaves = [p.clone().requires_grad_(i < 5) for i, p in enumerate(params)]
    background = torch.tensor([0.1, 0.2, 0.3])
    out = rasterize(*leaves, w, h, background=background, backend=backend)
    assert torch.equal(out.features, background.expand(2, h, w, 3))
    assert (out.alpha == 0).all() and (out.depth == 0).all() and out.radii.shape == (2, 0)
    out.features.sum().backward()
    assert leaves[0].grad.shape == (0, 3)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_huge_gaussians(backend):
    params, w, h = random_scene(n=12, cameras=2, seed=29, log_scale=0.0)  # ~1 m splats at 3 m: cover all
    out = assert_matches_reference(params, w, h, backend)
    assert (out.radii > max(w, h)).any()
    assert out.alpha.min() > 0.5


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dim", [1, 32])
def test_feature_dims_and_several_cameras(backend, dim):
    params, w, h = random_scene(n=80, cameras=3, dim=dim, seed=31, per_camera_features=True)
    out = assert_matches_reference(params, w, h, backend, background=torch.rand(3, dim))
    assert out.features.shape == (3, h, w, dim)
    # Each camera used its own features: camera 1 rendered alone gives the same image.
    single = [p[1:2] if i >= 4 else p for i, p in enumerate(params)]
    one = rasterize(*single, w, h, backend=backend)
    assert torch.allclose(one.alpha[0], out.alpha[1], atol=1e-6)


def test_cpu_falls_back_to_torch_when_the_extension_cannot_build(monkeypatch):
    import avatars.render._extension as extension

    monkeypatch.setattr(extension, "load_extension", lambda: None)
    params, w, h = random_scene(n=20, cameras=1)
    assert rasterize(*params, w, h, backend="cpu").backend == "cpu-torch"


def test_failed_build_falls_back_and_says_why(tmp_path):
    """A real failed build (no working compiler) in a fresh process: torch runs, the reason is kept."""
    import os
    import subprocess
    import sys

    code = (
        "import torch\n"
        "from avatars.render import rasterize\n"
        "from avatars.render._extension import build_error\n"
        "g = torch.Generator().manual_seed(0)\n"
        "means = torch.rand(9, 3, generator=g) + torch.tensor([0, 0, 2.0])\n"
        "out = rasterize(means, torch.randn(9, 4, generator=g), torch.full((9, 3), 0.05),\n"
        "    torch.full((9,), 0.5), torch.rand(9, 3, generator=g), torch.eye(4)[None],\n"
        "    torch.tensor([[[20.0, 0, 8], [0, 20, 8], [0, 0, 1]]]), 16, 16, backend='cpu')\n"
        "print(out.backend, '|', build_error())\n"
    )
    env = dict(os.environ, GSBENCH_CACHE=str(tmp_path), CXX="/bin/false", GSBENCH_QUIET="1")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    backend, reason = result.stdout.strip().split(" | ", 1)
    assert backend == "cpu-torch" and "/bin/false" in reason


def test_unknown_backend_and_wrong_feature_shape_raise():
    params, w, h = random_scene(n=5, cameras=1)
    with pytest.raises(InputError, match="backend"):
        rasterize(*params, w, h, backend="vulkan")
    bad = list(params)
    bad[4] = torch.rand(3, 5, 3)
    with pytest.raises(InputError, match="features"):
        rasterize(*bad, w, h)


def _cuda_scene():
    params, w, h = random_scene(n=300, cameras=2, seed=37, width=64, height=48)
    return params, w, h


@pytest.mark.gpu
def test_gsplat_matches_cpu_images_and_gradients():
    pytest.importorskip("gsplat")
    params, w, h = _cuda_scene()
    weights = torch.rand(2, h, w, 3, generator=torch.Generator().manual_seed(4))
    results = []
    for backend, device in (("cpu", "cpu"), ("gsplat", "cuda")):
        leaves = [p.to(device).clone().requires_grad_(i < 5) for i, p in enumerate(params)]
        out = rasterize(*leaves, w, h, backend=backend)
        (out.features * weights.to(device)).sum().backward()
        results.append((out, [p.grad.cpu() for p in leaves[:5]]))
    (cpu, cpu_grads), (gs, gs_grads) = results
    assert gs.backend == "gsplat"
    # gsplat clamps alpha at 0.999 (we follow 3DGS: 0.99) and culls at 3 sigma: compare loosely.
    assert (cpu.features - gs.features.cpu()).abs().mean() < 1e-3
    for a, b in zip(cpu_grads, gs_grads, strict=True):
        assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.95
    assert gs.means2d.grad is not None and gs.means2d_absgrad is not None
