"""Brute-force float64 reference rasterizer: every pixel composites every Gaussian, no tiles.

Written independently of the fast path (its own projection, written with explicit matrices as in the
3DGS paper, and a literal front-to-back loop over depth-sorted Gaussians) so that comparing the two
tests both. Slow (O(C x pixels x N) memory traffic): tests only, tiny scenes.

Rules shared with the fast backends (3DGS / gsplat): pixel centres at ``j + 0.5``; a Gaussian is used
only when its camera depth is in (near, far); its 2D covariance gets ``eps2d`` on the diagonal (and in
antialiased mode its opacity the factor sqrt(det Σ2D / det(Σ2D + eps2d I))); at a pixel it is skipped
when alpha < 1/255; alpha is clamped to 0.99; compositing stops before T would fall to 1e-4.
"""

from __future__ import annotations

import torch
from torch import Tensor

from avatars.render.projection import ALPHA_MAX, ALPHA_THRESHOLD, FOV_MARGIN, TRANSMITTANCE_MIN


def _rotation(quat: Tensor) -> Tensor:
    w, x, y, z = quat / quat.norm()
    return torch.stack(
        [
            torch.stack([1 - 2 * (y**2 + z**2), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x**2 + z**2), 2 * (y * z - w * x)]),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x**2 + y**2)]),
        ]
    )


def rasterize_reference(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    features: Tensor,  # [N, D] or [C, N, D]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    background: Tensor | None = None,  # [D] or [C, D]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    rasterize_mode: str = "classic",
) -> tuple[Tensor, Tensor, Tensor]:
    """Returns features [C, H, W, D], alpha [C, H, W, 1], expected depth [C, H, W, 1] (float64)."""
    f64 = dict(dtype=torch.float64)
    means, quats, scales, opacities = (t.to(**f64) for t in (means, quats, scales, opacities))
    viewmats, Ks, features = viewmats.to(**f64), Ks.to(**f64), features.to(**f64)
    C, N = viewmats.shape[0], means.shape[0]
    if features.dim() == 2:
        features = features.expand(C, N, features.shape[-1])
    D = features.shape[-1]
    ys, xs = torch.meshgrid(torch.arange(height, **f64), torch.arange(width, **f64), indexing="ij")
    pixels = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1) + 0.5  # [P, 2]
    images, alphas, depths = [], [], []
    for cam in range(C):
        W, t = viewmats[cam, :3, :3], viewmats[cam, :3, 3]
        fx, fy, cx, cy = Ks[cam, 0, 0], Ks[cam, 1, 1], Ks[cam, 0, 2], Ks[cam, 1, 2]
        splats = []
        for n in range(N):
            p = W @ means[n] + t
            if not (near_plane < p[2].item() < far_plane):
                continue
            R = _rotation(quats[n])
            S = torch.diag(scales[n])
            sigma = R @ S @ S.T @ R.T  # 3DGS Eq. 6
            tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
            u = torch.clamp(p[0] / p[2], -(cx / fx + FOV_MARGIN * tan_x), (width - cx) / fx + FOV_MARGIN * tan_x)
            v = torch.clamp(p[1] / p[2], -(cy / fy + FOV_MARGIN * tan_y), (height - cy) / fy + FOV_MARGIN * tan_y)
            zero = torch.zeros((), **f64)
            J = torch.stack(
                [torch.stack([fx / p[2], zero, -fx * u / p[2]]), torch.stack([zero, fy / p[2], -fy * v / p[2]])]
            )
            cov2d = J @ W @ sigma @ W.T @ J.T  # 3DGS Eq. 5
            blurred = cov2d + eps2d * torch.eye(2, **f64)
            if torch.linalg.det(blurred).item() <= 0:
                continue
            opacity = opacities[n]
            if rasterize_mode == "antialiased":
                opacity = opacity * torch.sqrt(torch.clamp(torch.linalg.det(cov2d) / torch.linalg.det(blurred), min=0))
            center = torch.stack([fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy])
            splats.append((p[2].item(), n, center, torch.linalg.inv(blurred), opacity, p[2]))
        splats.sort(key=lambda s: (s[0], s[1]))
        T = torch.ones(pixels.shape[0], **f64)
        done = torch.zeros(pixels.shape[0], dtype=torch.bool)
        image = torch.zeros(pixels.shape[0], D, **f64)
        depth = torch.zeros(pixels.shape[0], **f64)
        for _, n, center, conic, opacity, z in splats:
            d = pixels - center
            power = -0.5 * torch.einsum("pi,ij,pj->p", d, conic, d)
            alpha = torch.clamp(opacity * torch.exp(power), max=ALPHA_MAX)
            skip = done | (power > 0) | (alpha < ALPHA_THRESHOLD)
            next_T = T * (1 - alpha)
            stop = ~skip & (next_T <= TRANSMITTANCE_MIN)
            done = done | stop
            use = ~skip & ~stop
            weight = torch.where(use, alpha * T, torch.zeros_like(T))
            image = image + weight[:, None] * features[cam, n]
            depth = depth + weight * z
            T = torch.where(use, next_T, T)
        alpha_img = 1 - T
        depth = depth / alpha_img.clamp(min=1e-10)
        if background is not None:
            bg = background.to(**f64)
            bg = bg[cam] if bg.dim() == 2 else bg
            image = image + T[:, None] * bg
        images.append(image.reshape(height, width, D))
        alphas.append(alpha_img.reshape(height, width, 1))
        depths.append(depth.reshape(height, width, 1))
    return torch.stack(images), torch.stack(alphas), torch.stack(depths)
