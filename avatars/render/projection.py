"""3DGS projection of 3D Gaussians to screen-space 2D Gaussians (EWA splatting), in torch autograd.

The C++ backend has a fused twin of this function with an analytic backward (``csrc/rasterize_cpu.cpp``,
``project_forward`` / ``project_backward``): ~100 small torch ops per step cost more than the O(N) math.
This torch version serves the "cpu-torch" backend and calls whose viewmats / Ks need gradients.

Conventions follow gsplat's ``fully_fused_projection``: OpenCV cameras (x right, y down, z forward),
``world_to_cam`` view matrices, pixel ``j`` spans ``[j, j + 1)`` so its centre is ``j + 0.5``,
quaternions ``wxyz`` (normalized here), ``eps2d`` pixels² added to the 2D covariance (the 0.3 px
"low-pass" dilation of 3DGS) and, in ``antialiased`` mode, the opacity compensation of Mip-Splatting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0  # 3DGS: a splat with alpha below this at a pixel is skipped there
ALPHA_MAX = 0.99  # 3DGS clamp of the per-splat alpha
TRANSMITTANCE_MIN = 1e-4  # 3DGS early termination: stop before T would drop to this
FOV_MARGIN = 0.3  # 3DGS linearizes at x/z, y/z clamped to the field of view widened by 30 %


@dataclass
class Projected:
    """Screen-space Gaussians for C cameras (all tensors [C, N, ...])."""

    means2d: Tensor  # [C, N, 2] pixels
    conics: Tensor  # [C, N, 3] upper triangle (a, b, c) of the inverse 2D covariance
    depths: Tensor  # [C, N] camera-space z
    opacities: Tensor  # [C, N] opacity used for compositing (x compensation in antialiased mode)
    extents: Tensor  # [C, N, 2] half sizes in pixels of the box outside which alpha < 1/255 (no grad)
    radii: Tensor  # [C, N] int32, ceil(max(extents)); 0 = culled
    compensations: Tensor  # [C, N] sqrt(det(cov2d) / det(cov2d + eps2d I)); ones in classic mode


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [N, 3, 3] from quaternions [N, 4] (wxyz, any norm)."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """Σ = R S Sᵀ Rᵀ (3DGS Eq. 6), [N, 3, 3]."""
    rs = quat_to_rotmat(quats) * scales[..., None, :]
    return rs @ rs.transpose(-1, -2)


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] wxyz
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4] world_to_cam
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    rasterize_mode: str = "classic",
) -> Projected:
    """Project N Gaussians into C pinhole cameras (3DGS Eqs. 4-5 with the EWA Jacobian)."""
    rot = viewmats[:, None, :3, :3]  # [C, 1, 3, 3]
    trans = viewmats[:, None, :3, 3]  # [C, 1, 3]
    means_cam = (rot @ means[None, :, :, None])[..., 0] + trans  # [C, N, 3]
    cov_cam = rot @ covariance_3d(quats, scales)[None] @ rot.transpose(-1, -2)  # [C, N, 3, 3]

    x, y, z = means_cam.unbind(-1)
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    in_depth = (z > near_plane) & (z < far_plane)
    # Guard the division for culled splats; their values are masked out below.
    z_safe = torch.where(in_depth, z, torch.ones_like(z))

    # Linearize the perspective projection at a point clamped to 1.3x the field of view (3DGS).
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + FOV_MARGIN * tan_fovx
    lim_x_neg = cx / fx + FOV_MARGIN * tan_fovx
    lim_y_pos = (height - cy) / fy + FOV_MARGIN * tan_fovy
    lim_y_neg = cy / fy + FOV_MARGIN * tan_fovy
    tx = z_safe * torch.minimum(torch.maximum(x / z_safe, -lim_x_neg), lim_x_pos)
    ty = z_safe * torch.minimum(torch.maximum(y / z_safe, -lim_y_neg), lim_y_pos)
    zeros = torch.zeros_like(z_safe)
    jac = torch.stack(
        [fx / z_safe, zeros, -fx * tx / z_safe**2, zeros, fy / z_safe, -fy * ty / z_safe**2], dim=-1
    ).reshape(z.shape + (2, 3))  # [C, N, 2, 3]
    cov2d = jac @ cov_cam @ jac.transpose(-1, -2)  # [C, N, 2, 2]

    a, b, c = cov2d[..., 0, 0], cov2d[..., 0, 1], cov2d[..., 1, 1]
    det_orig = a * c - b * b
    a, c = a + eps2d, c + eps2d
    det = a * c - b * b
    if rasterize_mode == "antialiased":
        compensations = torch.sqrt(torch.clamp(det_orig / det, min=0.0))
    elif rasterize_mode == "classic":
        compensations = torch.ones_like(det)
    else:
        raise ValueError(f"rasterize_mode must be 'classic' or 'antialiased', got {rasterize_mode!r}")
    valid = in_depth & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)

    means2d = torch.stack([fx * x / z_safe + cx, fy * y / z_safe + cy], dim=-1)
    opacities_eff = opacities[None, :] * compensations  # [C, N]

    with torch.no_grad():
        # Mahalanobis radius at which opacity * exp(-r²/2) = 1/255: beyond it the alpha test fails,
        # so culling tiles outside this box changes nothing (unlike a fixed 3 sigma).
        ratio = (opacities_eff / ALPHA_THRESHOLD).clamp_min(1.0)
        sigma_radius = torch.sqrt(2.0 * torch.log(ratio))
        extents = torch.stack(
            [sigma_radius * torch.sqrt(a.clamp_min(0.0)), sigma_radius * torch.sqrt(c.clamp_min(0.0))], -1
        )
        mx, my = means2d[..., 0], means2d[..., 1]
        on_screen = (
            (mx + extents[..., 0] > 0)
            & (mx - extents[..., 0] < width)
            & (my + extents[..., 1] > 0)
            & (my - extents[..., 1] < height)
        )
        visible = valid & on_screen & (opacities_eff >= ALPHA_THRESHOLD) & torch.isfinite(means2d).all(-1)
        extents = torch.where(visible[..., None], extents, torch.zeros_like(extents))
        radii = torch.ceil(extents.amax(-1)).to(torch.int32)
        radii = torch.where(visible, radii.clamp_min(1), torch.zeros_like(radii))
    return Projected(
        means2d=means2d,
        conics=conics,
        depths=z,
        opacities=opacities_eff,
        extents=extents,
        radii=radii,
        compensations=compensations,
    )


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    return math.ceil(width / tile_size), math.ceil(height / tile_size)
