"""Brute-force float64 reference rasterizer: every pixel composites every Gaussian, no tiles.

Written independently of the fast path (its own projection, written with explicit matrices as in the
3DGS paper, and dense per-pixel products over all depth-sorted Gaussians) so that comparing the two
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


def _rotation(quats: Tensor) -> Tensor:
    """[N, 3, 3] from wxyz quaternions [N, 4]."""
    w, x, y, z = (quats / quats.norm(dim=-1, keepdim=True)).T
    rows = [
        [1 - 2 * (y**2 + z**2), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x**2 + z**2), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x**2 + y**2)],
    ]
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


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
    """Returns features [C, H, W, D], alpha [C, H, W, 1], expected depth [C, H, W, 1] (float64).

    Memory O(pixels x N): tiny scenes only."""
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
        p = means @ W.T + t  # [N, 3] camera-space centres
        R = _rotation(quats)
        S = torch.diag_embed(scales)
        sigma = R @ S @ S.transpose(1, 2) @ R.transpose(1, 2)  # 3DGS Eq. 6
        tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
        z = p[:, 2]
        u = torch.clamp(p[:, 0] / z, -(cx / fx + FOV_MARGIN * tan_x), (width - cx) / fx + FOV_MARGIN * tan_x)
        v = torch.clamp(p[:, 1] / z, -(cy / fy + FOV_MARGIN * tan_y), (height - cy) / fy + FOV_MARGIN * tan_y)
        J = torch.zeros(N, 2, 3, **f64)
        J[:, 0, 0], J[:, 0, 2] = fx / z, -fx * u / z
        J[:, 1, 1], J[:, 1, 2] = fy / z, -fy * v / z
        cov2d = J @ W @ sigma @ W.T @ J.transpose(1, 2)  # 3DGS Eq. 5
        blurred = cov2d + eps2d * torch.eye(2, **f64)
        opacity = opacities
        if rasterize_mode == "antialiased":
            opacity = opacity * torch.sqrt(
                torch.clamp(torch.linalg.det(cov2d) / torch.linalg.det(blurred), min=0)
            )
        centers = torch.stack([fx * p[:, 0] / z + cx, fy * p[:, 1] / z + cy], -1)
        usable = (z > near_plane) & (z < far_plane) & (torch.linalg.det(blurred) > 0)
        conics = torch.linalg.inv(torch.where(usable[:, None, None], blurred, torch.eye(2, **f64)))
        # Every pixel x every Gaussian, sorted front to back: alpha [P, M].
        order = [n for n in sorted(range(N), key=lambda n: (z[n].item(), n)) if bool(usable[n])]
        d = pixels[:, None, :] - centers[order][None]  # [P, M, 2]
        power = -0.5 * torch.einsum("pmi,mij,pmj->pm", d, conics[order], d)  # -½ dᵀ Σ2D⁻¹ d
        alpha = torch.clamp(opacity[order] * torch.exp(power), max=ALPHA_MAX)
        alpha = torch.where((power > 0) | (alpha < ALPHA_THRESHOLD), torch.zeros_like(alpha), alpha)
        T_after = torch.cumprod(1 - alpha, dim=1)
        T_before = torch.cat([torch.ones_like(T_after[:, :1]), T_after[:, :-1]], dim=1)
        # Front to back, a pixel stops at the first splat that would bring T to 1e-4 or below; since T
        # only decreases, the splats it uses are exactly those with T_after > 1e-4.
        used = T_after > TRANSMITTANCE_MIN
        weight = torch.where(used, alpha * T_before, torch.zeros_like(alpha))
        image = weight @ features[cam, order]
        depth = weight @ z[order]
        T = torch.prod(torch.where(used, 1 - alpha, torch.ones_like(alpha)), dim=1)
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
