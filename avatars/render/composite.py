"""Per-pixel compositing of projected Gaussians: the fused C++ kernel and its pure-torch fallback.

Both take the same inputs (screen-space splats for C cameras plus a K-channel feature per splat) and
return the composited features [C, H, W, K] and alpha [C, H, W], with the same rules (see
``projection.py`` for the constants): depth order per tile, alpha < 1/255 skipped, alpha clamped at
0.99, compositing stops before T would reach 1e-4.

Choice by measurement (``benchmarks/rasterizer.py --threads 1``, 256x256, 20k Gaussians, forward +
backward, CPU time of one thread on the shared 2-core machine): the C++ kernel (projection and compositing
fused with their analytic backward) 165 ms and 31 MB peak; the torch "pairs" version (every
(pixel, splat) overlap of a tile listed, transmittance by a segmented cumulative sum of log(1 - alpha),
``index_add`` accumulation, autograd backward) 1615 ms and 1.1 GB. So "cpu" is the C++ kernel; the torch
version is kept as the fallback when no compiler is available and as a second implementation in tests.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from avatars.render.projection import ALPHA_MAX, ALPHA_THRESHOLD, TRANSMITTANCE_MIN, Projected


class AbsGradSink:
    """Receives the per-splat sum over pixels of |dL/d means2d| (the "absgrad" of gsplat's densification)."""

    def __init__(self, means2d: Tensor):
        self._means2d = weakref.ref(means2d)

    def set(self, absgrad: Tensor) -> None:
        means2d = self._means2d()
        if means2d is not None:
            means2d.absgrad = absgrad  # same attribute name as gsplat sets


class _CompositeCpp(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, means2d, conics, opacities, features, extents, depths, width, height, tile_size, sink, ext
    ):
        out_features, final_T, n_iter, *bins = ext.rasterize_forward(
            means2d.contiguous(),
            conics.contiguous(),
            opacities.contiguous(),
            features.contiguous(),
            extents.contiguous(),
            depths.detach().contiguous(),
            width,
            height,
            tile_size,
            True,  # keep n_iter, the entries' hit boxes and the splats' entry lists for the backward
        )
        # bins: tile_offsets, gauss_ids, hit_boxes, splat_offsets, splat_entries, min_powers
        ctx.save_for_backward(means2d, conics, opacities, features, extents, final_T, n_iter, *bins)
        ctx.config = (width, height, tile_size, sink, ext)
        ctx.mark_non_differentiable(n_iter)
        return out_features, 1.0 - final_T

    @staticmethod
    def backward(ctx, grad_features, grad_alpha):
        means2d, conics, opacities, features, extents, final_T, n_iter, *bins = ctx.saved_tensors
        width, height, tile_size, sink, ext = ctx.config
        if grad_features is None:
            grad_features = torch.zeros(final_T.shape + (features.shape[-1],), dtype=features.dtype)
        if grad_alpha is None:
            grad_alpha = torch.zeros_like(final_T)
        grads = ext.rasterize_backward(
            means2d.contiguous(),
            conics.contiguous(),
            opacities.contiguous(),
            features.contiguous(),
            extents.contiguous(),
            *bins,
            final_T,
            n_iter,
            grad_features.contiguous(),
            grad_alpha.contiguous(),
            width,
            height,
            tile_size,
        )
        if sink is not None:
            sink.set(grads[..., 6:8])
        return (
            grads[..., 0:2],
            grads[..., 2:5],
            grads[..., 5],
            grads[..., 8:],
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def composite_cpp(
    ext,
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    features: Tensor,  # [C, N, K]
    extents: Tensor,  # [C, N, 2], zero for culled splats
    depths: Tensor,  # [C, N] sort key
    width: int,
    height: int,
    tile_size: int,
    sink: AbsGradSink | None,
) -> tuple[Tensor, Tensor]:
    """Fused C++/OpenMP compositing; returns features [C, H, W, K] and alpha [C, H, W].

    Without gradients (``torch.no_grad()`` or no input requiring grad) the kernel runs forward only and
    keeps no backward state (per-pixel n_iter, per-entry hit boxes)."""
    if not (torch.is_grad_enabled() and any(t.requires_grad for t in (means2d, conics, opacities, features))):
        out_features, final_T, *_ = ext.rasterize_forward(
            means2d.detach().contiguous(),
            conics.detach().contiguous(),
            opacities.detach().contiguous(),
            features.detach().contiguous(),
            extents.detach().contiguous(),
            depths.detach().contiguous(),
            width,
            height,
            tile_size,
            False,
        )
        return out_features, 1.0 - final_T
    return _CompositeCpp.apply(
        means2d,
        conics,
        opacities,
        features,
        extents.detach(),
        depths.detach(),
        width,
        height,
        tile_size,
        sink,
        ext,
    )


class _ProjectCpp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, width, height, near, far, eps2d, aa, ext):
        outs = ext.project_forward(
            means, quats, scales, opacities, viewmats, Ks, width, height, near, far, eps2d, aa
        )
        means2d, conics, depths, opacities_eff, extents, radii, compensations = outs
        ctx.save_for_backward(means, quats, scales, opacities, viewmats, Ks, radii)
        ctx.config = (width, height, near, far, eps2d, aa, ext)
        ctx.mark_non_differentiable(extents, radii, compensations)
        return means2d, conics, depths, opacities_eff, extents, radii, compensations

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_depths, v_opacities_eff, *_):
        means, quats, scales, opacities, viewmats, Ks, radii = ctx.saved_tensors
        width, height, near, far, eps2d, aa, ext = ctx.config
        C, N = radii.shape
        zeros = lambda *shape: torch.zeros(C, N, *shape, dtype=means.dtype)  # noqa: E731
        v_means, v_quats, v_scales, v_opacities = ext.project_backward(
            means, quats, scales, opacities, viewmats, Ks, width, height, near, far, eps2d, aa, radii,
            zeros(2) if v_means2d is None else v_means2d,
            zeros(3) if v_conics is None else v_conics,
            zeros() if v_depths is None else v_depths,
            zeros() if v_opacities_eff is None else v_opacities_eff,
        )  # fmt: skip
        return v_means, v_quats, v_scales, v_opacities, None, None, None, None, None, None, None, None, None


def project_cpp(
    ext,
    means,
    quats,
    scales,
    opacities,
    viewmats,
    Ks,
    width,
    height,
    near_plane,
    far_plane,
    eps2d,
    rasterize_mode,
) -> Projected:
    """The C++ twin of ``projection.project_gaussians`` (same outputs; no gradient to viewmats / Ks)."""
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"rasterize_mode must be 'classic' or 'antialiased', got {rasterize_mode!r}")
    outs = _ProjectCpp.apply(
        means, quats, scales, opacities, viewmats, Ks, width, height, float(near_plane), float(far_plane),
        float(eps2d), rasterize_mode == "antialiased", ext,
    )  # fmt: skip
    means2d, conics, depths, opacities_eff, extents, radii, compensations = outs
    return Projected(means2d, conics, depths, opacities_eff, extents, radii, compensations)


def bin_tiles(
    means2d: Tensor, extents: Tensor, depths: Tensor, width: int, height: int, tile_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Tile-splat entries sorted by (camera, tile, depth): returns (splat index c*N+n, tile index c*T+t,
    tile offsets [C*T+1]). Same rule as the C++ binning: tiles touched by mean ± extent."""
    C, N = depths.shape
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    T = tiles_x * tiles_y
    with torch.no_grad():
        m = means2d.detach().reshape(-1, 2)
        e = extents.detach().reshape(-1, 2)
        x0 = torch.floor((m[:, 0] - e[:, 0]) / tile_size).clamp(min=0)
        x1 = torch.floor((m[:, 0] + e[:, 0]) / tile_size).clamp(max=tiles_x - 1)
        y0 = torch.floor((m[:, 1] - e[:, 1]) / tile_size).clamp(min=0)
        y1 = torch.floor((m[:, 1] + e[:, 1]) / tile_size).clamp(max=tiles_y - 1)
        valid = (e[:, 0] > 0) & (e[:, 1] > 0) & (x0 <= x1) & (y0 <= y1)
        w = torch.where(valid, x1 - x0 + 1, torch.zeros_like(x0)).long()
        h = torch.where(valid, y1 - y0 + 1, torch.zeros_like(y0)).long()
        counts = w * h
        splat = torch.repeat_interleave(torch.arange(C * N), counts)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(splat.numel()) - first[splat]
        tx = x0.long()[splat] + local % w[splat]
        ty = y0.long()[splat] + local // w[splat]
        camera = splat // N
        tile = camera * T + ty * tiles_x + tx
        rank = torch.empty(C * N, dtype=torch.long)
        order = torch.argsort(depths.detach(), dim=1, stable=True)
        rank.view(C, N).scatter_(1, order, torch.arange(N).expand(C, N).contiguous())
        key = tile * N + rank[splat]
        sort = torch.argsort(key)
        splat, tile = splat[sort], tile[sort]
        offsets = torch.zeros(C * T + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(torch.bincount(tile, minlength=C * T), 0)
    return splat, tile, offsets


def composite_torch(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    features: Tensor,
    extents: Tensor,
    depths: Tensor,
    width: int,
    height: int,
    tile_size: int,
    max_pairs_per_chunk: int = 1 << 22,
) -> tuple[Tensor, Tensor]:
    """Pure-torch compositing ("pairs" form), autograd for the backward; memory bounded by chunking tiles."""
    C, N, K = features.shape
    tiles_x = -(-width // tile_size)
    T = tiles_x * -(-height // tile_size)
    splat, tile, offsets = bin_tiles(means2d, extents, depths, width, height, tile_size)
    # Zero-valued terms keep the graph connected, so backward() works on a scene with no overlaps.
    anchor = 0.0 * (features.sum() + opacities.sum() + means2d.sum() + conics.sum())
    out = torch.zeros(C * height * width, K, dtype=features.dtype) + anchor
    alpha_out = torch.zeros(C * height * width, dtype=features.dtype) + anchor
    means_flat, conics_flat = means2d.reshape(-1, 2), conics.reshape(-1, 3)
    opac_flat, feat_flat = opacities.reshape(-1), features.reshape(-1, K)
    tile_px = torch.arange(tile_size * tile_size)
    entries_per_chunk = max(1, max_pairs_per_chunk // (tile_size * tile_size))
    start = 0
    while start < splat.numel():
        # Chunks end on tile boundaries so every pixel's list is complete inside one chunk.
        stop = min(splat.numel(), start + entries_per_chunk)
        if stop < splat.numel():
            tile_end = int(tile[stop - 1])
            stop = int(offsets[tile_end + 1]) if int(offsets[tile_end]) <= start else int(offsets[tile_end])
        s, t = splat[start:stop], tile[start:stop]
        entry = torch.arange(start, stop)
        camera, t_local = t // T, t % T
        px = (t_local % tiles_x)[:, None] * tile_size + tile_px % tile_size  # [E, P]
        py = (t_local // tiles_x)[:, None] * tile_size + tile_px // tile_size
        inside = (px < width) & (py < height)
        dx = means_flat[s, 0, None] - (px + 0.5)
        dy = means_flat[s, 1, None] - (py + 0.5)
        a, b, c = conics_flat[s, 0, None], conics_flat[s, 1, None], conics_flat[s, 2, None]
        power = -0.5 * (a * dx * dx + c * dy * dy) - b * dx * dy
        alpha = torch.clamp(opac_flat[s, None] * torch.exp(power), max=ALPHA_MAX)
        hit = inside & (power <= 0) & (alpha >= ALPHA_THRESHOLD)
        e_idx, p_idx = hit.nonzero(as_tuple=True)
        alpha = alpha[e_idx, p_idx]
        pixel = (camera[e_idx] * height + py[e_idx, p_idx]) * width + px[e_idx, p_idx]
        order = torch.argsort(pixel * splat.numel() + entry[e_idx])  # per pixel, front to back
        pixel, alpha, e_idx = pixel[order], alpha[order], e_idx[order]
        log_t = torch.log1p(-alpha.double())
        cum = torch.cumsum(log_t, 0)
        new_pixel = torch.ones_like(pixel, dtype=torch.bool)
        new_pixel[1:] = pixel[1:] != pixel[:-1]
        seg_start = torch.cummax(torch.where(new_pixel, torch.arange(pixel.numel()), 0), 0).values
        log_T_incl = cum - (cum[seg_start] - log_t[seg_start])
        keep = (torch.exp(log_T_incl) > TRANSMITTANCE_MIN).detach()
        weight = (alpha * torch.exp(log_T_incl - log_t).to(alpha.dtype)) * keep
        out = out.index_add(0, pixel, weight[:, None] * feat_flat[s[e_idx]])
        alpha_out = alpha_out.index_add(0, pixel, weight)
        start = stop
    return out.reshape(C, height, width, K), alpha_out.reshape(C, height, width)
