"""GaussianModel: activations, SH colours, 3DGS PLY round trip, densification rules, a converging fit."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from avatars.gaussians import (
    SH_C0,
    SH_C1,
    DensificationStrategy,
    GaussianModel,
    StrategyConfig,
    eval_sh,
    reset_opacities,
)
from avatars.render import RenderOutput
from gsbench.errors import InputError

REPO = Path(__file__).resolve().parents[2]


def small_model(n: int = 50, sh_degree: int = 2, seed: int = 0) -> GaussianModel:
    gen = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 3, generator=gen) - 0.5
    points[:, 2] += 3.0
    model = GaussianModel.from_points(points, torch.rand(n, 3, generator=gen), sh_degree=sh_degree)
    with torch.no_grad():
        for p in model.params.values():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def test_activations_and_initialization():
    model = small_model()
    assert torch.allclose(model.scales, torch.exp(model.params["scales"]))
    assert torch.allclose(model.quats.norm(dim=-1), torch.ones(len(model)))
    assert torch.allclose(model.opacities, torch.sigmoid(model.params["opacities"]))
    fresh = GaussianModel.from_points(
        torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]]),
        torch.full((4, 3), 0.25),
        sh_degree=1,
    )
    # 3DGS init: isotropic scale = mean distance to the 3 nearest neighbours; opacity 0.1.
    assert torch.allclose(fresh.scales[0], torch.full((3,), 2.0))
    assert torch.allclose(fresh.opacities, torch.full((4,), 0.1))
    assert fresh.sh_degree == 1 and fresh.params["shN"].shape == (4, 3, 3)
    assert torch.allclose(fresh.colors(torch.eye(4)[None]), torch.full((1, 4, 3), 0.25), atol=1e-6)


def test_eval_sh_bands():
    coeffs = torch.zeros(4, 3)
    coeffs[0] = 1.0
    coeffs[2] = 0.5  # the band-1 coefficient multiplying z
    up = eval_sh(1, coeffs, torch.tensor([0.0, 0.0, 2.0]))  # directions need not be normalized
    assert torch.allclose(up, torch.full((3,), SH_C0 + SH_C1 * 0.5))
    down = eval_sh(1, coeffs, torch.tensor([0.0, 0.0, -1.0]))
    assert torch.allclose(down, torch.full((3,), SH_C0 - SH_C1 * 0.5))
    # The degree-3 basis is orthonormal on the sphere (Fibonacci-lattice quadrature).
    n = 20_000
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + math.sqrt(5)) * i
    r = torch.sqrt(1 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)
    basis = eval_sh(3, torch.eye(16, dtype=torch.float64)[None, :, :, None], dirs[:, None, :])[..., 0]
    gram = 4 * math.pi * basis.T @ basis / n
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=1e-3)


def test_ply_round_trip_and_layout(tmp_path):
    model = small_model(n=37, sh_degree=3)
    path = tmp_path / "splat.ply"
    model.save_ply(path)
    header = path.read_bytes().split(b"end_header\n")[0].decode().splitlines()
    props = [line.split()[-1] for line in header if line.startswith("property")]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    expected += [f"f_rest_{i}" for i in range(45)] + ["opacity", "scale_0", "scale_1", "scale_2"]
    expected += ["rot_0", "rot_1", "rot_2", "rot_3"]
    assert props == expected and "element vertex 37" in header
    assert path.stat().st_size == len("\n".join(header)) + len("\nend_header\n") + 37 * len(expected) * 4
    loaded = GaussianModel.load_ply(path)
    for name, p in model.params.items():
        assert torch.equal(loaded.params[name], p.detach()), name
    # f_rest is channel-major as in 3DGS: f_rest_1 is the red coefficient of the 2nd higher band.
    import numpy as np

    data = np.frombuffer(path.read_bytes()[len("\n".join(header)) + len("\nend_header\n") :], dtype="<f4")
    assert data.reshape(37, -1)[0, 9 + 1] == model.params["shN"][0, 1, 0].item()


def test_ply_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        GaussianModel.load_ply(tmp_path / "missing.ply")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"hello")
    with pytest.raises(InputError, match="not a PLY"):
        GaussianModel.load_ply(bad)
    mesh = tmp_path / "mesh.ply"
    mesh.write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\n"
        b"property float y\nproperty float z\nend_header\n" + bytes(12)
    )
    with pytest.raises(InputError, match="missing properties"):
        GaussianModel.load_ply(mesh)


def fake_output(model: GaussianModel, grad2d: Tensor, radii: Tensor) -> RenderOutput:  # noqa: F821
    n = len(model)
    means2d = torch.zeros(1, n, 2)
    means2d.grad = grad2d[None]
    return RenderOutput(
        features=torch.zeros(1, 64, 64, 3),
        alpha=torch.zeros(1, 64, 64, 1),
        depth=torch.zeros(1, 64, 64, 1),
        radii=radii[None].int(),
        means2d=means2d,
        depths=torch.ones(1, n),
        backend="test",
        width=64,
        height=64,
    )


def test_densification_rules_and_optimizer_state():
    # 0: small + high grad -> cloned; 1: large + high grad -> split; 2: low opacity -> pruned;
    # 3: low grad -> kept as is; 4: high grad but never visible -> kept.
    points = torch.tensor([[0.0, 0, 3], [0.5, 0, 3], [0, 0.5, 3], [0.5, 0.5, 3], [1.0, 1.0, 3]])
    model = GaussianModel.from_points(points, torch.full((5, 3), 0.5), sh_degree=1)
    with torch.no_grad():
        model.params["scales"][:] = math.log(0.005)
        model.params["scales"][1] = math.log(0.05)
        model.params["opacities"][:] = 0.0
        model.params["opacities"][2] = torch.logit(torch.tensor(0.001))
    optimizer = model.make_optimizer()
    Ks = torch.tensor([[[64.0, 0, 32], [0, 64, 32], [0, 0, 1]]])
    model.render(torch.eye(4)[None], Ks, 64, 64).features.sum().backward()
    optimizer.step()  # creates Adam state to be carried through the edits
    before, before_scales = model.means.detach().clone(), model.scales.detach().clone()
    config = StrategyConfig(refine_start_iter=0, refine_every=2, reset_every=1000)
    strategy = DensificationStrategy(config, scene_scale=1.0, seed=0)
    ndc = torch.tensor([2 / 64 * 1e-3, 0.0])  # screen gradient worth 1e-3 in gsplat's NDC units
    grads = torch.stack([ndc, ndc, ndc * 0.01, ndc * 0.01, ndc])
    radii = torch.tensor([3, 3, 3, 3, 0])
    assert strategy.step_post_backward(model, optimizer, fake_output(model, grads, radii), step=1) == {}
    result = strategy.step_post_backward(model, optimizer, fake_output(model, grads, radii), step=2)
    assert result == {"step": 2, "duplicated": 1, "split": 1, "pruned": 1, "total": 6}
    # Survivors keep order, then the clone, then the two halves of the split Gaussian.
    means = model.means.detach()
    assert torch.equal(means[:3], before[[0, 3, 4]]) and torch.equal(means[3], before[0])
    assert torch.allclose(model.scales[4:], (before_scales[1] / 1.6).expand(2, 3))
    assert ((means[4:] - before[1]).norm(dim=-1) < 0.3).all() and not torch.equal(means[4], means[5])
    for group in optimizer.param_groups:
        param = group["params"][0]
        assert param is model.params[group["name"]]
        assert optimizer.state[param]["exp_avg"].shape == param.shape
        assert (optimizer.state[param]["exp_avg"][3:] == 0).all()  # new Gaussians start without momentum
    model.render(torch.eye(4)[None], Ks, 64, 64).features.sum().backward()
    optimizer.step()  # the edited optimizer still works
    reset_opacities(model, optimizer, value=0.01)
    assert model.opacities.max() <= 0.01 + 1e-6


def test_densification_uses_rendered_screen_gradients():
    model = small_model(n=30, sh_degree=0)
    optimizer = model.make_optimizer()
    Ks = torch.tensor([[[60.0, 0, 24], [0, 60, 24], [0, 0, 1]]])
    out = model.render(torch.eye(4)[None], Ks, 48, 48)
    (out.features - 1.0).abs().mean().backward()
    strategy = DensificationStrategy(StrategyConfig(absgrad=True))
    strategy.step_post_backward(model, optimizer, out, step=1)
    visible = out.radii[0] > 0
    expected = (out.means2d_absgrad[0] * torch.tensor([24.0, 24.0])).norm(dim=-1)
    assert torch.allclose(strategy.grad2d[visible], expected[visible])
    assert torch.equal(strategy.count, visible.float())


def _load_fit_script():
    spec = importlib.util.spec_from_file_location("fit_3dgs", REPO / "benchmarks" / "fit_3dgs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_fit_static_head_from_16_views_reaches_30_db():
    from avatars.gaussians import FitConfig, fit_gaussians

    script = _load_fit_script()
    images, viewmats, Ks, points = script.head_views(96)
    model = GaussianModel.from_points(points, torch.full_like(points, 0.5), sh_degree=2)
    result = fit_gaussians(
        model, images, viewmats, Ks, torch.tensor(script.BACKGROUND), FitConfig(steps=1000)
    )
    assert result.backend == "cpu-cpp"
    assert result.history[-1]["psnr"] >= 30.0
