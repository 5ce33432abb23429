"""The fast paths of issue 22 give the results of the plain ones: the C++ kernel's float32 SIMD loops against
its scalar loops, forward-only rendering against the differentiable one, one thread against two, the
exact tile culling against the float64 reference, and the colour MLP's shared-condition product against
``nn.Linear`` on the concatenated input."""

from __future__ import annotations

import math

import pytest
import torch

from avatars.gaussian_speech_avatar import ColorMLP
from avatars.render import rasterize
from avatars.render._extension import load_extension
from avatars.render.reference import rasterize_reference
from tests.avatars.test_render import random_scene


@pytest.fixture(scope="module")
def ext():
    module = load_extension()
    if module is None:
        pytest.skip("the C++ rasterizer does not build here")
    return module


def _render_with_grads(params, w, h, weights):
    leaves = [p.clone().requires_grad_(i < 5) for i, p in enumerate(params)]
    out = rasterize(*leaves, w, h, backend="cpu")
    ((out.features * weights).sum() + out.alpha.sum() + 0.1 * out.depth.sum()).backward()
    return out, [p.grad for p in leaves[:5]], out.means2d.grad, out.means2d_absgrad


@pytest.mark.parametrize("dim", [3, 1, 6])  # channel loops compiled for K = 4 and 2, and the generic one
def test_simd_and_scalar_loops_agree(ext, dim):
    if not ext.simd_active():
        pytest.skip("no AVX2 + FMA on this CPU (the scalar loops are the only path)")
    # Dense enough for early termination, a third fully opaque (clamped alphas); 44x36 leaves partial tiles.
    params, w, h = random_scene(n=500, seed=4, width=44, height=36, log_scale=-2.2, dim=dim)
    params[3] = torch.where(torch.arange(500) % 3 == 0, torch.ones(500), params[3].clamp(0.3, 1.0))
    weights = torch.rand(2, h, w, dim, generator=torch.Generator().manual_seed(3))
    results = []
    for simd in (True, False):
        previous = ext.set_simd(simd)
        try:
            results.append(_render_with_grads(params, w, h, weights))
        finally:
            ext.set_simd(previous)
    (fast, fast_grads, fast_m2, fast_abs), (slow, slow_grads, slow_m2, slow_abs) = results
    assert (slow.alpha > 1 - 2e-4).float().mean() > 0.05  # some pixels stop early
    # exp differs by ~1 ulp between the paths: float32 round-off, nothing more.
    assert (fast.features - slow.features).abs().max() < 2e-6
    assert (fast.alpha - slow.alpha).abs().max() < 2e-6
    for a, b in zip(fast_grads + [fast_m2, fast_abs], slow_grads + [slow_m2, slow_abs], strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * b.abs().max())


def test_forward_only_rendering_equals_the_differentiable_one(ext):
    params, w, h = random_scene(n=200, seed=6)
    with torch.no_grad():
        plain = rasterize(*params, w, h, backend="cpu")
    leaves = [p.clone().requires_grad_(i < 5) for i, p in enumerate(params)]
    graded = rasterize(*leaves, w, h, backend="cpu")
    assert not plain.features.requires_grad and graded.features.requires_grad
    assert torch.equal(plain.features, graded.features.detach())
    assert torch.equal(plain.alpha, graded.alpha.detach())
    # The kernel keeps no backward state without gradients (n_iter and hit boxes are empty).
    means2d = torch.rand(1, 3, 2) * 16
    conics = torch.tensor([[1.0, 0.0, 1.0]]).expand(1, 3, 3).contiguous()
    opac, feats = torch.full((1, 3), 0.5), torch.rand(1, 3, 4)
    extents, depths = torch.full((1, 3, 2), 3.0), torch.rand(1, 3)
    kept = ext.rasterize_forward(means2d, conics, opac, feats, extents, depths, 16, 16, 16, True)
    lean = ext.rasterize_forward(means2d, conics, opac, feats, extents, depths, 16, 16, 16, False)
    assert kept[2].numel() == 256 and kept[5].shape == (kept[4].numel(), 4)
    assert lean[2].numel() == 0 and lean[5].numel() == 0
    assert torch.equal(kept[0], lean[0]) and torch.equal(kept[1], lean[1])


def test_one_and_two_threads_give_identical_results(ext):
    # Entries are written by one thread each and reduced in a fixed order: bitwise the same.
    params, w, h = random_scene(n=3000, cameras=1, seed=8, width=96, height=96, log_scale=-3.2)
    weights = torch.rand(1, h, w, 3, generator=torch.Generator().manual_seed(5))
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_render_with_grads(params, w, h, weights))
    finally:
        torch.set_num_threads(previous)
    (one, one_grads, *_), (two, two_grads, *_) = results
    assert torch.equal(one.features, two.features)
    for a, b in zip(one_grads, two_grads, strict=True):
        assert torch.equal(a, b)


def test_tile_culling_keeps_thin_diagonal_splats_exact(ext):
    # Long thin Gaussians at 45 degrees: their bounding boxes cover many tiles the ellipse never
    # reaches; binning drops those (tile_offsets has fewer entries than the boxes' tiles), and the image
    # still equals the brute-force reference to float64 round-off (in float32 such thin splats are only
    # good to ~1e-5, on either backend).
    n = 12
    gen = torch.Generator().manual_seed(9)
    means = torch.stack(
        [torch.rand(n, generator=gen) - 0.5, torch.rand(n, generator=gen) - 0.5, 3 + torch.zeros(n)], -1
    )
    angle = math.pi / 8  # quaternion of a 45-degree turn about z
    quats = torch.tensor([math.cos(angle), 0.0, 0.0, math.sin(angle)]).repeat(n, 1)
    scales = torch.tensor([0.6, 0.004, 0.004]).repeat(n, 1)
    params = [means, quats, scales, torch.full((n,), 0.9), torch.rand(n, 3, generator=gen)]
    params += [torch.eye(4)[None], torch.tensor([[[60.0, 0, 48], [0, 60, 48], [0, 0, 1]]])]
    out = rasterize(*[p.double() for p in params], 96, 96, backend="cpu")
    ref_features, ref_alpha, _ = rasterize_reference(*params, 96, 96)
    assert (out.features - ref_features).abs().max() < 1e-10
    assert (out.alpha - ref_alpha).abs().max() < 1e-10
    assert ref_alpha.max() > 0.5
    projected = ext.project_forward(*params[:4], params[5], params[6], 96, 96, 0.01, 1e10, 0.3, False)
    means2d, conics, depths, opac, extents = projected[:5]
    feats = torch.cat([params[4][None], depths[..., None]], -1).contiguous()
    offsets = ext.rasterize_forward(means2d, conics, opac, feats, extents, depths, 96, 96, 16, True)[3]
    box_tiles = 0
    for (x, y), (ex, ey) in zip(means2d[0].tolist(), extents[0].tolist(), strict=True):
        tx = min(5, math.floor((x + ex) / 16)) - max(0, math.floor((x - ex) / 16)) + 1
        ty = min(5, math.floor((y + ey) / 16)) - max(0, math.floor((y - ey) / 16)) + 1
        box_tiles += max(tx, 0) * max(ty, 0)
    assert int(offsets[-1]) < 0.7 * box_tiles


def test_color_mlp_shared_condition_equals_linear_on_the_concatenation():
    torch.manual_seed(1)
    mlp = ColorMLP(condition_dim=11, latent_dim=8, hidden=16)
    condition, latents = torch.randn(11), torch.randn(40, 8)
    views = torch.nn.functional.normalize(torch.randn(40, 3), dim=-1)
    inputs = torch.cat([condition.expand(40, -1), latents, views], dim=-1)
    expected = torch.sigmoid(mlp.layer2(torch.relu(mlp.layer1(inputs))))
    assert torch.allclose(mlp(condition, latents, views), expected, atol=1e-6)
    assert torch.allclose(mlp(condition[None], latents, views), expected, atol=1e-6)  # [1, D] as well


def test_binning_orders_each_tile_by_depth_and_lists_each_splats_entries(ext):
    # Binning runs in parallel chunks and sorts by a radix sort: each tile's list must still be what a
    # stable sort by depth gives (ties by index: a third of the splats share one depth), and each splat's
    # entry list (read by the backward's reduction) must name exactly its entries, in increasing tile order.
    params, w, h = random_scene(n=5000, cameras=2, seed=12, width=80, height=64, log_scale=-3.0)
    means, quats, scales, opac, colors, viewmats, Ks = params
    proj = ext.project_forward(means, quats, scales, opac, viewmats, Ks, w, h, 0.01, 1e10, 0.3, False)
    means2d, conics, depths, opac_eff, extents = proj[:5]
    depths = depths.clone()
    depths[:, ::3] = depths[:, :1]  # the sort key
    feats = torch.cat([colors.expand(2, -1, -1), depths[..., None]], -1).contiguous()
    outs = ext.rasterize_forward(means2d, conics, opac_eff, feats, extents, depths, w, h, 16, True)
    tile_offsets, gauss_ids, _, splat_offsets, splat_entries, _ = outs[3:]
    C, N, T = 2, 5000, 5 * 4
    assert torch.equal(torch.sort(splat_entries.long()).values, torch.arange(gauss_ids.numel()))
    ties = 0
    for job in range(C * T):
        ids = gauss_ids[tile_offsets[job] : tile_offsets[job + 1]].long()
        d = depths[job // T, ids]
        order = sorted(range(len(ids)), key=lambda k: (float(d[k]), int(ids[k])))
        assert order == list(range(len(ids)))
        ties += int((d[1:] == d[:-1]).sum())
    assert ties > 100
    entry_tile = torch.searchsorted(tile_offsets, torch.arange(gauss_ids.numel()), right=True) - 1
    for g in range(C * N):
        entries = splat_entries[splat_offsets[g] : splat_offsets[g + 1]].long()
        assert torch.all(gauss_ids[entries] == g % N)
        tiles = entry_tile[entries]
        assert torch.all(tiles // T == g // N) and torch.all(tiles[1:] > tiles[:-1])
