"""``rasterize``: the one differentiable Gaussian rasterization function every avatar renders through."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avatars.render.composite import AbsGradSink, composite_cpp, composite_torch, project_cpp
from avatars.render.projection import project_gaussians
from gsbench.errors import DependencyError, InputError

BACKENDS = ("auto", "cpu", "cpu-torch", "gsplat")


@dataclass
class RenderOutput:
    """What ``rasterize`` returns. C cameras, N Gaussians, D feature channels."""

    features: Tensor  # [C, H, W, D] composited features (+ (1 - alpha) * background)
    alpha: Tensor  # [C, H, W, 1] accumulated opacity
    depth: Tensor  # [C, H, W, 1] expected depth: sum_i w_i z_i / alpha (0 where alpha = 0)
    radii: Tensor  # [C, N] int32 pixel radius of each projected Gaussian; 0 = not rendered
    means2d: Tensor  # [C, N, 2] projected centres; .grad after backward, .absgrad on the CPU/gsplat paths
    depths: Tensor  # [C, N] camera-space z of each Gaussian centre
    backend: str  # which implementation ran: "cpu-cpp", "cpu-torch" or "gsplat"
    width: int
    height: int

    @property
    def n_cameras(self) -> int:
        return self.features.shape[0]

    @property
    def means2d_absgrad(self) -> Tensor | None:
        """[C, N, 2] sum over pixels of |dL/d means2d| (set by backward), the densification signal of
        AbsGS / gsplat's ``absgrad=True``; None before backward."""
        return getattr(self.means2d, "absgrad", None)


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4] wxyz, need not be normalized
    scales: Tensor,  # [N, 3] (activated, i.e. standard deviations in world units)
    opacities: Tensor,  # [N] (activated, in [0, 1])
    features: Tensor,  # [N, D] or [C, N, D]
    viewmats: Tensor,  # [C, 4, 4] world_to_cam, OpenCV
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    background: Tensor | None = None,  # [D] or [C, D]
    backend: str = "auto",
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    rasterize_mode: str = "classic",
    tile_size: int = 16,
) -> RenderOutput:
    """Render N 3D Gaussians into C pinhole cameras, differentiably (3DGS, Kerbl et al. 2023).

    Each Gaussian has centre ``means``, covariance ``R(quats) diag(scales)² R(quats)ᵀ``, opacity and a
    D-channel feature (RGB, a scalar such as a dynamism weight, or several at once). It is projected
    with the EWA approximation (Jacobian of the perspective projection at its centre, 3DGS Eq. 5) and
    ``eps2d`` px² is added to its 2D covariance. Per 16x16 tile, Gaussians are composited front to back
    by camera depth:

        C(p) = Σ_i f_i α_i T_i,  T_i = Π_{j<i} (1 - α_j),  α_i = min(0.99, o_i exp(-½ dᵀ Σ2D⁻¹ d))

    skipping α_i < 1/255 and stopping before T would fall to 1e-4. With ``rasterize_mode="antialiased"``
    the opacity is scaled by sqrt(det Σ2D / det(Σ2D + eps2d I)) (Mip-Splatting; gsplat's name).

    Args:
        means, quats, scales, opacities, features: the Gaussians (gradients flow to all five).
        viewmats: world_to_cam matrices; Ks: intrinsics in pixels; pixel j spans [j, j + 1).
        width, height: image size in pixels.
        background: added as ``(1 - alpha) * background`` (no gradient to it is needed, but it flows).
        backend: "auto" (gsplat on CUDA, else "cpu"), "cpu" (C++/OpenMP kernel, falling back to
            "cpu-torch" with a logged note if it cannot be built), "cpu-torch" (pure torch), "gsplat".
        near_plane, far_plane: Gaussians whose centre depth is outside (near, far) are culled.

    Returns:
        RenderOutput with features [C, H, W, D], alpha [C, H, W, 1], expected depth [C, H, W, 1],
        radii [C, N], means2d [C, N, 2] (call ``backward`` then read ``means2d.grad`` and
        ``means2d_absgrad``), depths [C, N] and ``backend``, the implementation that ran.
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown rasterizer backend {backend!r}", fix=f"use one of {', '.join(BACKENDS)}")
    C, N = viewmats.shape[0], means.shape[0]
    if features.dim() == 2:
        features = features.expand(C, N, features.shape[-1])
    if features.shape[:2] != (C, N):
        raise InputError(
            f"features must be [N, D] or [C, N, D] with C={C}, N={N}, got {tuple(features.shape)}"
        )
    if background is not None and background.dim() == 1:
        background = background.expand(C, background.shape[0])
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "cpu"
    if backend == "gsplat":
        return _rasterize_gsplat(
            means,
            quats,
            scales,
            opacities,
            features,
            viewmats,
            Ks,
            width,
            height,
            background,
            near_plane,
            far_plane,
            eps2d,
            rasterize_mode,
            tile_size,
        )
    if means.is_cuda:
        raise InputError(
            "the CPU rasterizer got CUDA tensors", fix="move them to the CPU or use backend='gsplat'"
        )

    ext = None
    if backend == "cpu":
        from avatars.render._extension import load_extension

        ext = load_extension()
    if ext is not None and not (viewmats.requires_grad or Ks.requires_grad):
        projected = project_cpp(
            ext, means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d,
            rasterize_mode,
        )  # fmt: skip
    else:  # pure torch (autograd also reaches viewmats and Ks)
        projected = project_gaussians(
            means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, eps2d,
            rasterize_mode,
        )  # fmt: skip
    means2d = projected.means2d
    sink = None
    if means2d.requires_grad:
        means2d.retain_grad()
        sink = AbsGradSink(means2d)
    # Depth is composited as one more feature channel, giving the expected depth in the same pass.
    features_ext = torch.cat([features, projected.depths[..., None].to(features.dtype)], dim=-1)

    if ext is not None:
        out, alpha = composite_cpp(
            ext,
            means2d,
            projected.conics,
            projected.opacities,
            features_ext,
            projected.extents,
            projected.depths,
            width,
            height,
            tile_size,
            sink,
        )
        used = "cpu-cpp"
    else:
        out, alpha = composite_torch(
            means2d,
            projected.conics,
            projected.opacities,
            features_ext,
            projected.extents,
            projected.depths,
            width,
            height,
            tile_size,
        )
        used = "cpu-torch"
    alpha = alpha[..., None]
    image, acc_depth = out[..., :-1], out[..., -1:]
    if background is not None:
        image = image + (1.0 - alpha) * background[:, None, None, :]
    return RenderOutput(
        features=image,
        alpha=alpha,
        depth=acc_depth / alpha.clamp(min=1e-10),
        radii=projected.radii,
        means2d=means2d,
        depths=projected.depths,
        backend=used,
        width=width,
        height=height,
    )


def _rasterize_gsplat(
    means,
    quats,
    scales,
    opacities,
    features,
    viewmats,
    Ks,
    width,
    height,
    background,
    near_plane,
    far_plane,
    eps2d,
    rasterize_mode,
    tile_size,
) -> RenderOutput:
    """Thin adapter to ``gsplat.rasterization`` (CUDA); same outputs as the CPU path."""
    try:
        import gsplat
    except ImportError as error:
        raise DependencyError(
            "backend 'gsplat' needs the gsplat package and a CUDA GPU",
            fix="pip install gsplat, or use backend='cpu'",
        ) from error
    if not means.is_cuda:
        raise InputError("backend 'gsplat' needs CUDA tensors", fix="move the tensors to a CUDA device")
    render, alpha, info = gsplat.rasterization(
        means,
        quats,
        scales,
        opacities,
        features,
        viewmats,
        Ks,
        width,
        height,
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        render_mode="RGB+ED",
        rasterize_mode=rasterize_mode,
        tile_size=tile_size,
        packed=False,
        absgrad=True,
    )
    image, depth = render[..., :-1], render[..., -1:]
    if background is not None:
        image = image + (1.0 - alpha) * background[:, None, None, :]
    means2d = info["means2d"]
    if means2d.requires_grad:
        means2d.retain_grad()
    radii = info["radii"]
    if radii.dim() == 3:  # gsplat >= 1.5 returns per-axis radii
        radii = radii.amax(-1)
    return RenderOutput(
        features=image,
        alpha=alpha,
        depth=depth,
        radii=radii.to(torch.int32),
        means2d=means2d,
        depths=info["depths"],
        backend="gsplat",
        width=width,
        height=height,
    )
