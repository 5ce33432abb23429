"""GaussianSpeech's person-specific avatar (Aneja et al., GaussianSpeech, Sec. 4.1 "Avatar Initialization").

A GaussianAvatars rig (:mod:`avatars.rigged`) plus the four additions of the paper:

* **Volume-based pruning**: at every pruning step keep the k Gaussians of largest
  ``G_i = sigma_i * s_x * s_y * s_z`` (k = 25,000 in the paper; scaled by budget here), instead of
  GaussianAvatars' opacity threshold. As in GaussianAvatars, no triangle loses its last Gaussian.
* **Mouth subdivision**: before initialisation the teeth / mouth-interior triangles are split by uniform
  4-way (midpoint) subdivision, so that region starts with 4x as many Gaussians.
* **Expression-dependent colour**: ``c_i = theta_color(psi; z_i; v)`` (Sec. 4.1), a two-layer MLP of the
  FLAME expression code psi, a learned per-Gaussian latent z_i and the viewing direction v, replacing SH.
* **Losses** (Eq. 6): ``L_rgb`` (0.8 L1 + 0.2 D-SSIM, as GaussianAvatars) and GaussianAvatars' position
  and scaling regularizers always; the ArcFace global (Eqs. 1-3) and VGG patch (Eq. 4) perceptual terms
  (:mod:`avatars.perceptual`) only when their pretrained weights are registered (``benchmark.weights``:
  ``arcface-iresnet100``, ``vgg16-imagenet``), else skipped with a logged "missing, skipped" note; the
  wrinkle term (Eq. 5) with the offline default detector, a Hessian ridge filter (see :func:`ridge_features`).

Hyper-parameters the paper leaves open take GaussianAvatars' defaults (named where used) or are marked
"assumption". The CPU budgets shorten GaussianAvatars' 600k-iteration schedule; every interval is scaled
from it and the scaling is written next to each budget (``avatars.methods.gaussianspeech_avatar``).

The same code is plain **GaussianAvatars** (Qian et al. 2024) with :data:`GAUSSIAN_AVATARS` switches:
per-Gaussian spherical harmonics instead of the colour MLP, no mouth subdivision, 3DGS opacity pruning
instead of top-k, and only L_rgb and the two regularizers (``avatars.methods.gaussian_avatars``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avatars.gaussians import eval_sh, rgb_to_sh
from avatars.perceptual import global_perceptual_loss, patch_perceptual_loss
from avatars.render import rasterize
from avatars.rigged import MeshBinding, RiggedGaussians
from gsbench.errors import InputError, WeightsError
from gsbench.progress import log, training_progress, warn_once

MOUTH_REGIONS = ("teeth", "mouth_interior")


@dataclasses.dataclass(frozen=True)
class AvatarConfig:
    """Model and optimisation settings. Defaults: the paper where it says, else GaussianAvatars."""

    use_color_mlp: bool = True  # Table 2 ablation "w/o Color MLP": per-Gaussian RGB instead
    mouth_subdivision: bool = True  # Table 2 ablation "w/o mouth subdivision"
    latent_dim: int = 32  # assumption: the paper does not give the size of z_i
    color_hidden: int = 64  # assumption: width of the two-layer colour MLP (paper: "lightweight")
    condition_on_jaw: bool = True  # assumption: psi = [expr, jaw_pose]; our mouth opens by the jaw joint
    top_k: int = 25_000  # paper, Sec. 4.1
    # Our addition (not in either paper): start each Gaussian's colour at the mean colour of the training
    # pixels its centre projects to where it is visible (3DGS starts from the SfM points' colours;
    # GaussianAvatars from random colours and 600k steps). With a few thousand CPU steps, Adam at the
    # papers' feature learning rate (2.5e-3 per step) cannot move colours far from their start, so the
    # start matters; see ``initial_colors``. The colour MLP is warm-started to reproduce those colours.
    init_colors_from_images: bool = True
    # Local scale each Gaussian starts with, in units of its triangle's size (GaussianAvatars: 1). 0.5 gave
    # +0.3 dB at 250 steps but no gain at the quick budget (benchmarks/gaussian_avatars.py), so 1 stays.
    init_scale: float = 1.0
    color_init_images: int = 32  # training images projected for it
    color_warmup_steps: int = 100  # Adam steps fitting the colour MLP + latents to them
    # Schedule (GaussianAvatars: 600k its, densify every 2k from 10k to 600k, opacity reset every 60k).
    iterations: int = 600_000
    densify_from: int = 10_000
    densify_until: int = 600_000
    densify_interval: int = 2_000
    opacity_reset_interval: int = 60_000
    grad_threshold: float = 2e-4  # GaussianAvatars densify_grad_threshold (NDC units, as gsplat scales it)
    percent_dense: float = 0.01  # GaussianAvatars / 3DGS
    # Learning rates (GaussianAvatars): position 5e-3 -> 5e-5, scaling 0.017, rotation 1e-3, opacity 0.05,
    # features 2.5e-3 (here the latents z_i or the per-Gaussian RGB).
    lr_position: float = 5e-3
    lr_position_final: float = 5e-5
    lr_scale: float = 0.017
    lr_rotation: float = 1e-3
    lr_opacity: float = 0.05
    lr_feature: float = 2.5e-3
    lr_color_mlp: float = 1e-3  # assumption (Adam default scale for small MLPs)
    # Loss weights: GaussianAvatars for rgb / position / scaling.
    lambda_dssim: float = 0.2
    # Our addition (not in GaussianAvatars or GaussianSpeech): silhouette loss
    # ``lambda_alpha * mean |alpha - M|`` between the rendered opacity and the dataset's head mask M (see
    # ``silhouette_loss``). The papers train 600k steps, where the photometric loss on a black background
    # slowly removes Gaussians that spill outside the head; in a few thousand CPU steps that spill stays as
    # a halo of a few pixels around the head and dominates the error. Off by default: at 0.5-1.0 it moved
    # PSNR by < 0.1 dB in 250-step runs; the halo came from a too-large tracked mesh, not from the loss.
    lambda_alpha: float = 0.0
    lambda_xyz: float = 1e-2
    threshold_xyz: float = 1.0
    lambda_scale: float = 1.0
    threshold_scale: float = 0.6
    lambda_global: float = 0.01  # assumption: paper gives no value; used only with ArcFace weights
    lambda_patch: float = 0.01  # assumption: used only with VGG weights
    lambda_wrinkle: float = 1.0  # assumption: paper gives no value
    wrinkle_sigmas: tuple[float, ...] = (1.0, 2.0)  # assumption: ridge-filter scales in pixels
    num_patches: int = 16  # paper: 16 patches of 128x128
    patch_size: int = 128
    # Switches to plain GaussianAvatars (values of its code: arguments/__init__.py, train.py and 3DGS's
    # scene/gaussian_model.py, which it extends); the defaults above are GaussianSpeech's avatar.
    # Colour without the MLP: None = per-Gaussian RGB (GaussianSpeech Table 2 "w/o Color MLP"); 0-3 =
    # per-Gaussian spherical harmonics of that degree (GaussianAvatars: sh_degree = 3).
    sh_degree: int | None = None
    sh_degree_interval: int = 1_000  # 3DGS/GaussianAvatars train.py: one more SH band every 1,000 its
    # "top_k": GaussianSpeech's volume-based top-k; "opacity": GaussianAvatars/3DGS densify_and_prune
    # (opacity < min_opacity; after the first opacity reset also max world scale > max_world_scale x
    # extent; 3DGS's screen-size test is left out: its max_radii2D is zeroed by densification_postfix
    # just before the test, so it never fires in that code either)
    pruning: str = "top_k"
    min_opacity: float = 0.005  # GaussianAvatars train.py: densify_and_prune(..., 0.005, ...)
    max_world_scale: float = 0.1  # 3DGS densify_and_prune: big_points_ws = max scale > 0.1 x extent

    def __post_init__(self) -> None:
        from gsbench.errors import ConfigError

        if self.pruning not in ("top_k", "opacity"):
            raise ConfigError(f"unknown avatar pruning {self.pruning!r}", fix="use 'top_k' or 'opacity'")
        if self.sh_degree is not None and not 0 <= self.sh_degree <= 3:
            raise ConfigError(f"sh_degree {self.sh_degree} is not in 0..3", fix="use 0, 1, 2 or 3 (or None)")

    def scaled(self, **changes: Any) -> AvatarConfig:
        return dataclasses.replace(self, **changes)


GAUSSIAN_AVATARS = {
    "use_color_mlp": False,
    "sh_degree": 3,
    "mouth_subdivision": False,
    "pruning": "opacity",
    "lambda_wrinkle": 0.0,
    "lambda_global": 0.0,
    "lambda_patch": 0.0,
    "init_colors_from_images": False,  # GaussianAvatars: RGB2SH(torch.rand) colours at the triangle centres
}
"""The :class:`AvatarConfig` changes that make the GaussianSpeech avatar plain GaussianAvatars."""


# --- mouth subdivision --------------------------------------------------------------------------------


def mouth_faces(
    faces: np.ndarray, vertex_regions: np.ndarray | None, regions: tuple[str, ...] = MOUTH_REGIONS
) -> np.ndarray:
    """[F] bool: triangles whose vertices are all in ``regions`` (``tracking.head_model.REGIONS``)."""
    from tracking.head_model import REGIONS

    if vertex_regions is None:
        return np.zeros(len(faces), dtype=bool)
    codes = np.array([REGIONS[name] for name in regions])
    in_region = np.isin(vertex_regions, codes)
    return in_region[faces].all(axis=1)


def subdivide_faces(faces: np.ndarray, selected: np.ndarray, num_vertices: int) -> MeshBinding:
    """Uniform 4-way (midpoint) subdivision of the ``selected`` [F] triangles.

    Each selected triangle (a, b, c) becomes (a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca) with
    ``ab`` the midpoint of edge a-b (shared by neighbouring selected triangles). Unselected triangles keep
    their indices and order; the new triangles are appended. Returns the :class:`MeshBinding`.
    """
    faces = np.asarray(faces, np.int64)
    edge_ids: dict[tuple[int, int], int] = {}
    midpoint_edges: list[tuple[int, int]] = []

    def midpoint(i: int, j: int) -> int:
        key = (min(i, j), max(i, j))
        if key not in edge_ids:
            edge_ids[key] = num_vertices + len(midpoint_edges)
            midpoint_edges.append(key)
        return edge_ids[key]

    new_faces = []
    for a, b, c in faces[selected].tolist():
        ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
        new_faces += [(a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)]
    out = np.concatenate([faces[~selected], np.asarray(new_faces, np.int64).reshape(-1, 3)])
    edges = np.asarray(midpoint_edges, np.int64).reshape(-1, 2)
    return MeshBinding(faces=out, num_vertices=num_vertices, midpoint_edges=edges)


def build_binding(
    faces: np.ndarray, num_vertices: int, vertex_regions: np.ndarray | None, mouth_subdivision: bool
) -> MeshBinding:
    """The triangles to bind Gaussians to: the model's, with the mouth subdivided when asked."""
    if not mouth_subdivision:
        return MeshBinding(faces=np.asarray(faces, np.int64), num_vertices=num_vertices)
    selected = mouth_faces(faces, vertex_regions)
    if not selected.any():
        log("mouth subdivision: the head model labels no teeth/mouth-interior triangles; nothing subdivided")
    return subdivide_faces(faces, selected, num_vertices)


# --- colour --------------------------------------------------------------------------------------------


class ColorMLP(torch.nn.Module):
    """``c_i = theta_color(psi; z_i; v)``: two linear layers (GaussianSpeech Sec. 4.1), ReLU between,
    sigmoid out. psi [D_psi] per frame, z_i [N, D_z] per Gaussian, v [N, 3] unit view directions."""

    def __init__(self, condition_dim: int, latent_dim: int, hidden: int):
        super().__init__()
        self.condition_dim = condition_dim
        self.layer1 = torch.nn.Linear(condition_dim + latent_dim + 3, hidden)
        self.layer2 = torch.nn.Linear(hidden, 3)

    def forward(self, condition: Tensor, latents: Tensor, view_dirs: Tensor) -> Tensor:
        # layer1 of cat(psi, z_i, v_i): psi is the same for all N Gaussians, so W_psi psi + b is one
        # matrix-vector product added to [z_i, v_i] W_zv^T (the same sum as on the concatenated input, in
        # another order; 4x fewer multiplies with a 103-dim psi). Same parameters as nn.Linear.
        d = self.condition_dim
        weight, bias = self.layer1.weight, self.layer1.bias
        shared = torch.addmv(bias, weight[:, :d], condition.reshape(d))
        hidden = torch.addmm(shared, torch.cat([latents, view_dirs], dim=-1), weight[:, d:].T)
        return torch.sigmoid(self.layer2(torch.relu(hidden)))


def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues: [..., 3] -> [..., 3, 3]."""
    angle = axis_angle.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    axis = axis_angle / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(axis.shape[:-1] + (3, 3))
    sin, cos = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype).expand(skew.shape)
    return eye + sin * skew + (1 - cos) * (skew @ skew)


class GaussianSpeechAvatar(torch.nn.Module):
    """Rigged Gaussians with expression-dependent colour (or plain per-Gaussian RGB for the ablation)."""

    def __init__(self, binding: MeshBinding, condition_dim: int, config: AvatarConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.condition_dim = condition_dim
        self.rig = RiggedGaussians(binding, init_scale=config.init_scale)
        generator = torch.Generator().manual_seed(seed)
        n = self.rig.num_gaussians
        self.color_mlp: ColorMLP | None = None
        if config.use_color_mlp:
            torch.manual_seed(seed)  # nn.Linear init draws from the global generator
            self.color_mlp = ColorMLP(condition_dim, config.latent_dim, config.color_hidden)
            # assumption: z_i ~ N(0, 0.1^2), small so the MLP starts near a shared colour
            self.rig.add_param("latent", 0.1 * torch.randn(n, config.latent_dim, generator=generator))
        elif config.sh_degree is None:
            self.rig.add_param("rgb", torch.zeros(n, 3))  # logit 0 = grey 0.5
        else:
            # GaussianAvatars: random colours as degree-0 SH, higher bands zero
            self.rig.add_param("sh0", rgb_to_sh(torch.rand(n, 3, generator=generator))[:, None, :])
            self.rig.add_param("shN", torch.zeros(n, (config.sh_degree + 1) ** 2 - 1, 3))
            # SH bands in use (3DGS active_sh_degree: raised during the fit, saved with the avatar)
            self.register_buffer("active_sh_degree", torch.tensor(config.sh_degree))

    @property
    def num_gaussians(self) -> int:
        return self.rig.num_gaussians

    def colors(
        self, means: Tensor, condition: Tensor, head_rotation: Tensor, camera_centre: Tensor
    ) -> Tensor:
        """[N, 3] colours. View directions are expressed in the head frame (inverse global rotation) so
        that the colour depends on the view relative to the face, not on where the head is in the rig."""
        if "sh0" in self.rig.params:
            # GaussianAvatars renders SH with 3DGS's view direction: Gaussian centre - camera centre (world)
            degree = int(self.active_sh_degree)
            coeffs = torch.cat([self.rig.params["sh0"], self.rig.params["shN"]], dim=1)[
                :, : (degree + 1) ** 2
            ]
            return torch.clamp_min(eval_sh(degree, coeffs, means - camera_centre) + 0.5, 0.0)
        if self.color_mlp is None:
            return torch.sigmoid(self.rig.params["rgb"])
        view = F.normalize(means - camera_centre, dim=-1) @ head_rotation  # R^T d, row-vector form
        return self.color_mlp(condition, self.rig.params["latent"], view)

    def render(
        self,
        vertices: Tensor,
        condition: Tensor,
        head_rotation: Tensor,
        world_to_cam: Tensor,
        K: Tensor,
        width: int,
        height: int,
        background: Tensor | None = None,
        backend: str = "auto",
    ):
        """Render one frame into one camera. vertices [V, 3]; condition [D_psi]; head_rotation [3, 3];
        world_to_cam [4, 4]; K [3, 3]. Returns ``avatars.render.RenderOutput`` (C = 1)."""
        world = self.rig.world(vertices)
        centre = -world_to_cam[:3, :3].T @ world_to_cam[:3, 3]
        colors = self.colors(world.means, condition, head_rotation, centre)
        return rasterize(
            world.means, world.quats, world.scales, world.opacities, colors,
            world_to_cam[None], K[None], width, height, background=background, backend=backend,
        )  # fmt: skip

    def volume_score(self, vertices: Tensor) -> Tensor:
        """[N] ``G_i = sigma_i * s_x * s_y * s_z`` (world scales on ``vertices``), GaussianSpeech Sec. 4.1."""
        with torch.no_grad():
            world = self.rig.world(vertices)
            return world.opacities * world.scales.prod(dim=-1)


# --- losses ----------------------------------------------------------------------------------------------


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype) -> Tensor:
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(img1: Tensor, img2: Tensor, window_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of two [H, W, C] images in [0, 1] (3DGS ``utils/loss_utils.ssim``: 11x11 Gaussian
    window, sigma 1.5, zero padding, C1 = 0.01², C2 = 0.03²)."""
    x = img1.permute(2, 0, 1)[None]
    y = img2.permute(2, 0, 1)[None]
    channels = x.shape[1]
    g = _gaussian_window(window_size, sigma, x.dtype)
    # The 2D Gaussian window is separable: two 1D passes with zero padding give exactly the 2D
    # zero-padded convolution of 3DGS, at 2k instead of k² multiplies per pixel. The five maps are
    # blurred in one grouped convolution per pass (~20 % faster forward + backward at 256x256 than five).
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    n = maps.shape[1]
    window_y = g.view(1, 1, -1, 1).expand(n, 1, window_size, 1).contiguous()
    window_x = g.view(1, 1, 1, -1).expand(n, 1, 1, window_size).contiguous()
    pad = window_size // 2
    blurred = F.conv2d(
        F.conv2d(maps, window_y, padding=(pad, 0), groups=n), window_x, padding=(0, pad), groups=n
    )
    mu_x, mu_y, xx, yy, xy = blurred.split(channels, dim=1)
    sigma_x = xx - mu_x**2
    sigma_y = yy - mu_y**2
    sigma_xy = xy - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2)
    )
    return ssim_map.mean()


def photometric_loss(pred: Tensor, target: Tensor, lambda_dssim: float = 0.2) -> Tensor:
    """``L_rgb = (1 - lambda) L1 + lambda (1 - SSIM)`` with lambda = 0.2 (GaussianAvatars, 3DGS)."""
    return (1 - lambda_dssim) * (pred - target).abs().mean() + lambda_dssim * (1 - ssim(pred, target))


def silhouette_loss(alpha: Tensor, mask: Tensor) -> Tensor:
    """``mean |alpha - M|`` of the rendered opacity [H, W] (or [H, W, 1]) and the head mask M [H, W]
    (bool or float). Our addition, see ``AvatarConfig.lambda_alpha``."""
    return (alpha.reshape(mask.shape) - mask.to(alpha.dtype)).abs().mean()


def luminance(image: Tensor) -> Tensor:
    """[H, W, 3] RGB -> [H, W] Rec. 601 luma."""
    return image @ torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype)


def ridge_features(image: Tensor, mask: Tensor | None, sigmas: tuple[float, ...]) -> Tensor:
    """Offline wrinkle detector: a multi-scale Hessian ridge filter (Sato et al. 1998, as
    ``skimage.filters.sato(black_ridges=True)``), differentiable, on the luminance inside the face mask.

    This is **not** the learned wrinkle detector of the paper (ref. [41], weights not available offline):
    it is the documented offline default. Per scale sigma: Hessian of the Gaussian-smoothed luminance,
    response ``sigma² * max(lambda_max, 0)`` (dark creases curve upward across). Returns
    [len(sigmas), H, W] feature maps Psi_k, zero outside the mask.
    """
    lum = luminance(image)[None, None]
    out = []
    for sigma in sigmas:
        radius = max(1, int(math.ceil(3 * sigma)))
        coords = torch.arange(-radius, radius + 1, dtype=lum.dtype)
        g = torch.exp(-(coords**2) / (2 * sigma**2))
        g = g / g.sum()
        dg = -coords / sigma**2 * g
        ddg = (coords**2 / sigma**4 - 1 / sigma**2) * g
        # Separable derivative-of-Gaussian filters with replicate padding, the three second derivatives
        # at once: a y pass with the kernels (g, ddg, dg) into three channels, then a grouped x pass with
        # (ddg, g, dg) gives (hxx, hyy, hxy) (same values as three separate pairs of passes, ~2x faster).
        size = 2 * radius + 1
        ky = torch.stack([g, ddg, dg]).view(3, 1, size, 1)
        kx = torch.stack([ddg, g, dg]).view(3, 1, 1, size)
        t = F.conv2d(F.pad(lum, (0, 0, radius, radius), mode="replicate"), ky)
        hxx, hyy, hxy = F.conv2d(F.pad(t, (radius, radius, 0, 0), mode="replicate"), kx, groups=3)[0]
        lam_max = (hxx + hyy) / 2 + torch.sqrt(((hxx - hyy) / 2) ** 2 + hxy**2 + 1e-12)
        out.append(sigma**2 * torch.relu(lam_max))
    features = torch.stack(out)
    if mask is not None:
        features = features * mask.to(features.dtype)[None]
    return features


def wrinkle_loss(pred: Tensor, target: Tensor, mask: Tensor | None, sigmas: tuple[float, ...]) -> Tensor:
    """Eq. 5 with the ridge filter as Psi: ``sum_k mean |Psi_k(I_render) - Psi_k(I_gt)|``."""
    difference = ridge_features(pred, mask, sigmas) - ridge_features(target, mask, sigmas)
    return difference.abs().mean(dim=(1, 2)).sum()


PERCEPTUAL_WEIGHTS = {"global": "arcface-iresnet100", "patch": "vgg16-imagenet"}
"""Weight-registry names of the networks the perceptual terms use (``benchmark.weights``)."""


@dataclasses.dataclass
class PerceptualTerms:
    """The perceptual loss networks that were found (``networks``: term -> frozen module), the weight ids
    they came from, and the terms that are off with the reason (``disabled``: term -> reason)."""

    networks: dict[str, torch.nn.Module] = dataclasses.field(default_factory=dict)
    weight_ids: dict[str, str] = dataclasses.field(default_factory=dict)
    disabled: dict[str, str] = dataclasses.field(default_factory=dict)


def load_perceptual_terms(weights: Any, names: dict[str, str] | None = None) -> PerceptualTerms:
    """Load the global (ArcFace) and patch (VGG) loss networks from ``weights`` (a
    ``benchmark.weights.WeightRegistry`` or None; ``names`` overrides :data:`PERCEPTUAL_WEIGHTS`). A term
    whose file is missing or invalid is disabled and its reason warned about once per run (and recorded
    in ``disabled``): "missing, skipped"; nothing is downloaded or replaced."""
    terms = PerceptualTerms()
    for term, name in {**PERCEPTUAL_WEIGHTS, **(names or {})}.items():
        if weights is None:
            reason = f"no weight registry given; {term} perceptual loss ({name}) skipped"
        else:
            try:
                network, resolved = weights.load_network(name)
            except WeightsError as error:
                state = "invalid" if weights.candidates(name) else "missing"
                reason = f"{term} perceptual loss skipped, {name} {state}: {str(error).splitlines()[0]}"
            else:
                terms.networks[term] = network
                terms.weight_ids[term] = resolved.weight_id
                log(f"{term} perceptual loss uses {resolved.weight_id}")
                continue
        terms.disabled[term] = reason
        warn_once(reason)  # once per run, not once per job (it is recorded in every job's info())
    return terms


def resolve_perceptual_terms(weights: Any) -> dict[str, str]:
    """``{term: reason}`` of the perceptual terms that cannot run with ``weights`` (see
    :func:`load_perceptual_terms`)."""
    return load_perceptual_terms(weights).disabled


# --- fitting ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FitData:
    """Training images and the tracked meshes they show. Tf frames, C cameras, I images."""

    vertices: Tensor  # [Tf, V, 3] tracked FLAME vertices
    conditions: Tensor  # [Tf, D_psi] colour-MLP condition psi
    head_rotations: Tensor  # [Tf, 3, 3] global head rotation
    world_to_cam: Tensor  # [C, 4, 4]
    Ks: Tensor  # [C, 3, 3]
    images: Tensor  # [I, H, W, 3] uint8
    masks: Tensor  # [I, H, W] bool
    frame_index: Tensor  # [I] into vertices
    camera_index: Tensor  # [I] into cameras

    @property
    def height(self) -> int:
        return int(self.images.shape[1])

    @property
    def width(self) -> int:
        return int(self.images.shape[2])

    def target(self, i: int) -> tuple[Tensor, Tensor]:
        """(image on black outside the head mask [H, W, 3] float, mask [H, W] bool) of image ``i``."""
        mask = self.masks[i]
        return self.images[i].float() / 255.0 * mask[..., None], mask


def scene_extent(world_to_cam: Tensor) -> float:
    """3DGS ``getNerfppNorm`` radius: 1.1 x the largest distance of a camera centre from their mean."""
    centres = -torch.einsum("cji,cj->ci", world_to_cam[:, :3, :3], world_to_cam[:, :3, 3])
    return float(1.1 * (centres - centres.mean(0)).norm(dim=1).max().clamp(min=1e-3))


def initial_colors(avatar: GaussianSpeechAvatar, data: FitData, num_images: int) -> tuple[Tensor, Tensor]:
    """([N, 3] mean training colour of each Gaussian, [N] bool: seen in at least one image).

    On ``num_images`` training images spread evenly over the list, the avatar is rendered once with
    every Gaussian opaque and at half its size; a Gaussian counts as seen in an image when its centre
    projects inside the image and the head mask and its camera depth is within its own largest world scale
    of the rendered (expected) depth at that pixel, i.e. it is on the visible surface, not behind it (an
    assumption that holds when Gaussians start at triangle size, as here). Its colour is the mean of the
    pixels it was seen at.
    """
    rig = avatar.rig
    n = rig.num_gaussians
    total = torch.zeros(n, 3)
    count = torch.zeros(n)
    picks = torch.linspace(0, data.images.shape[0] - 1, min(num_images, data.images.shape[0])).round().long()
    with torch.no_grad():
        for i in picks.unique().tolist():
            frame, camera = int(data.frame_index[i]), int(data.camera_index[i])
            world = rig.world(data.vertices[frame])
            out = rasterize(
                world.means, world.quats, 0.5 * world.scales, torch.full((n,), 0.99), torch.zeros(n, 1),
                data.world_to_cam[camera][None], data.Ks[camera][None], data.width, data.height,
            )  # fmt: skip
            target, mask = data.target(i)
            xy = out.means2d[0].round().long()
            inside = (xy[:, 0] >= 0) & (xy[:, 0] < data.width) & (xy[:, 1] >= 0) & (xy[:, 1] < data.height)
            inside &= out.radii[0] > 0
            x = xy[:, 0].clamp(0, data.width - 1)
            y = xy[:, 1].clamp(0, data.height - 1)
            surface = out.depth[0, y, x, 0]
            on_surface = (out.depths[0] - surface).abs() < world.scales.max(dim=1).values
            seen = inside & mask[y, x] & on_surface
            total[seen] += target[y[seen], x[seen]]
            count[seen] += 1
    seen = count > 0
    colors = torch.full((n, 3), 0.5)
    colors[seen] = total[seen] / count[seen, None]
    if seen.any():
        colors[~seen] = colors[seen].mean(0)  # never seen (e.g. mouth interior when closed): mean colour
    return colors, seen


def warm_start_colors(
    avatar: GaussianSpeechAvatar, data: FitData, colors: Tensor, steps: int
) -> float | None:
    """Set the per-Gaussian colours to ``colors`` [N, 3]: directly (logits) without the colour MLP; with it,
    ``steps`` Adam steps fitting the MLP and latents to them (mean expression condition, view from the mean
    training camera), so that the photometric fit starts from the projected colours. Returns the final
    mean squared colour error of that fit (None without the MLP)."""
    rig = avatar.rig
    if "sh0" in rig.params:
        with torch.no_grad():
            rig.params["sh0"].copy_(rgb_to_sh(colors)[:, None, :])
        return None
    if avatar.color_mlp is None:
        with torch.no_grad():
            rig.params["rgb"].copy_(torch.logit(colors.clamp(0.02, 0.98)))
        return None
    condition = data.conditions.mean(0)
    centres = -torch.einsum("cji,cj->ci", data.world_to_cam[:, :3, :3], data.world_to_cam[:, :3, 3])
    with torch.no_grad():
        means = rig.world(data.vertices[0]).means
    view = F.normalize(means - centres.mean(0), dim=-1) @ data.head_rotations[0]
    params = [rig.params["latent"], *avatar.color_mlp.parameters()]
    optimizer = torch.optim.Adam(params, lr=2e-2)  # assumption: a fast fit; the real schedule follows
    for _ in range(steps):
        loss = (avatar.color_mlp(condition, rig.params["latent"], view) - colors).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach()) if steps else None


def make_optimizer(
    avatar: GaussianSpeechAvatar, config: AvatarConfig, extent: float = 1.0
) -> torch.optim.Adam:
    """Adam with GaussianAvatars' per-parameter groups; the position rate is scaled by the scene
    ``extent`` as GaussianAvatars' ``position_lr_init * spatial_lr_scale`` (= cameras_extent)."""
    params = avatar.rig.params
    groups = [
        {"params": [params["means"]], "lr": config.lr_position * extent, "name": "means"},
        {"params": [params["scales"]], "lr": config.lr_scale, "name": "scales"},
        {"params": [params["quats"]], "lr": config.lr_rotation, "name": "quats"},
        {"params": [params["opacities"]], "lr": config.lr_opacity, "name": "opacities"},
    ]
    if "sh0" in params:  # 3DGS: features_dc at feature_lr, features_rest at feature_lr / 20
        groups.append({"params": [params["sh0"]], "lr": config.lr_feature, "name": "sh0"})
        groups.append({"params": [params["shN"]], "lr": config.lr_feature / 20, "name": "shN"})
    elif avatar.color_mlp is not None:
        groups.append({"params": [params["latent"]], "lr": config.lr_feature, "name": "latent"})
        groups.append(
            {"params": list(avatar.color_mlp.parameters()), "lr": config.lr_color_mlp, "name": "mlp"}
        )
    else:
        groups.append({"params": [params["rgb"]], "lr": config.lr_feature, "name": "rgb"})
    return torch.optim.Adam(groups, lr=0.0, eps=1e-15)  # eps 1e-15 as 3DGS


def position_lr(config: AvatarConfig, step: int, extent: float = 1.0) -> float:
    """3DGS ``get_expon_lr_func``: log-linear from lr_position to lr_position_final over the run, times
    the scene extent (GaussianAvatars' spatial_lr_scale)."""
    t = min(max(step / max(config.iterations, 1), 0.0), 1.0)
    lr = math.exp((1 - t) * math.log(config.lr_position) + t * math.log(config.lr_position_final))
    return lr * extent


@dataclasses.dataclass
class FitLog:
    losses: list[float] = dataclasses.field(default_factory=list)  # total loss per iteration
    rgb_losses: list[float] = dataclasses.field(default_factory=list)
    events: list[str] = dataclasses.field(default_factory=list)
    disabled_terms: dict[str, str] = dataclasses.field(default_factory=dict)
    weight_ids: dict[str, str] = dataclasses.field(default_factory=dict)  # perceptual term -> weight id
    backend: str = ""


def fit_avatar(
    avatar: GaussianSpeechAvatar,
    data: FitData,
    config: AvatarConfig,
    *,
    seed: int = 0,
    weights: Any = None,
    canonical_vertices: Tensor | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> FitLog:
    """Optimise ``avatar`` on ``data`` for ``config.iterations`` single-image steps (GaussianAvatars'
    batch size 1), with 3DGS densification in the triangle frames and top-k volume pruning.

    ``canonical_vertices`` [V, 3] is the mesh the volume score is measured on (default: frame 0).
    """
    uses_perceptual = config.lambda_global > 0 or config.lambda_patch > 0
    perceptual = load_perceptual_terms(weights) if uses_perceptual else PerceptualTerms()
    fit_log = FitLog(disabled_terms=perceptual.disabled, weight_ids=perceptual.weight_ids)
    generator = torch.Generator().manual_seed(seed)
    extent = scene_extent(data.world_to_cam)
    if config.init_colors_from_images:
        colors, seen = initial_colors(avatar, data, config.color_init_images)
        residual = warm_start_colors(avatar, data, colors, config.color_warmup_steps)
        fit_log.events.append(
            f"colours initialised from {min(config.color_init_images, data.images.shape[0])} training images "
            f"({int(seen.sum())} of {seen.numel()} Gaussians seen"
            + ("" if residual is None else f"; colour MLP warm-start mse {residual:.4f}")
            + ")"
        )
    optimizer = make_optimizer(avatar, config, extent)
    canonical = canonical_vertices if canonical_vertices is not None else data.vertices[0]
    rig = avatar.rig
    grad_accum = torch.zeros(rig.num_gaussians)
    grad_count = torch.zeros(rig.num_gaussians)
    background = torch.zeros(3)
    num_images = data.images.shape[0]
    order = torch.randperm(num_images, generator=generator)
    cursor = 0
    # step, loss, Gaussians and ETA on the terminal; a line every 30 s in the job's log.txt
    with training_progress(config.iterations, "avatar fit") as progress:
        for step in range(1, config.iterations + 1):
            for group in optimizer.param_groups:
                if group["name"] == "means":
                    group["lr"] = position_lr(config, step, extent)
            if config.sh_degree is not None:
                avatar.active_sh_degree.fill_(min(config.sh_degree, step // config.sh_degree_interval))
            if cursor == num_images:
                order, cursor = torch.randperm(num_images, generator=generator), 0
            i = int(order[cursor])
            cursor += 1
            frame, camera = int(data.frame_index[i]), int(data.camera_index[i])
            target, mask = data.target(i)
            out = avatar.render(
                data.vertices[frame], data.conditions[frame], data.head_rotations[frame],
                data.world_to_cam[camera], data.Ks[camera], data.width, data.height, background,
            )  # fmt: skip
            fit_log.backend = out.backend
            pred = out.features[0]
            rgb = photometric_loss(pred, target, config.lambda_dssim)
            visible = out.radii[0] > 0
            position_reg, scale_reg = rig.regularizers(visible, config.threshold_xyz, config.threshold_scale)
            loss = rgb + config.lambda_xyz * position_reg + config.lambda_scale * scale_reg
            if config.lambda_alpha > 0:
                loss = loss + config.lambda_alpha * silhouette_loss(out.alpha[0], mask)
            if config.lambda_wrinkle > 0:
                loss = loss + config.lambda_wrinkle * wrinkle_loss(pred, target, mask, config.wrinkle_sigmas)
            if "global" in perceptual.networks:  # Eqs. 1-3
                loss = loss + config.lambda_global * global_perceptual_loss(
                    perceptual.networks["global"], pred, target, mask
                )
            if "patch" in perceptual.networks:  # Eq. 4
                loss = loss + config.lambda_patch * patch_perceptual_loss(
                    perceptual.networks["patch"],
                    pred,
                    target,
                    mask,
                    config.num_patches,
                    config.patch_size,
                    generator,
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            fit_log.losses.append(float(loss.detach()))
            fit_log.rgb_losses.append(float(rgb.detach()))
            if step < config.densify_until and out.means2d.grad is not None:
                # Pixel gradient -> NDC units (x W/2, H/2) as gsplat does, so GaussianAvatars' 2e-4 applies.
                g = out.means2d.grad[0] * torch.tensor([data.width / 2, data.height / 2])
                grad_accum[visible] += g[visible].norm(dim=-1)
                grad_count[visible] += 1
            optimizer.step()
            if on_step is not None:
                on_step(step, float(loss.detach()))
            progress.update(step, loss=fit_log.losses[-1], gaussians=rig.num_gaussians)
            if config.densify_from <= step < config.densify_until and step % config.densify_interval == 0:
                with torch.no_grad():
                    world_scales = rig.world(canonical).scales
                grad_avg = grad_accum / grad_count.clamp(min=1)
                cloned, split = rig.densify(
                    grad_avg,
                    config.grad_threshold,
                    world_scales,
                    config.percent_dense * extent,
                    generator,
                    optimizer,
                )
                if config.pruning == "top_k":
                    score = avatar.volume_score(canonical)
                    k = max(config.top_k, rig.mesh.num_faces)
                    if k > config.top_k and not any("top-k raised" in e for e in fit_log.events):
                        fit_log.events.append(f"top-k raised from {config.top_k} to the {k} bound triangles")
                    removed = rig.keep_top_k(score, k, optimizer)
                    pruned = f"top-k removed {removed}"
                else:  # GaussianAvatars / 3DGS densify_and_prune
                    with torch.no_grad():
                        world = rig.world(canonical)
                    remove = world.opacities < config.min_opacity
                    if step > config.opacity_reset_interval:
                        remove |= world.scales.max(dim=1).values > config.max_world_scale * extent
                    pruned = f"pruned {rig.prune(remove, optimizer)}"
                fit_log.events.append(
                    f"step {step}: cloned {cloned}, split {split}, {pruned}, now {rig.num_gaussians}"
                )
                grad_accum = torch.zeros(rig.num_gaussians)
                grad_count = torch.zeros(rig.num_gaussians)
            if step % config.opacity_reset_interval == 0 and step < config.iterations:
                rig.reset_opacity(0.01, optimizer)
                fit_log.events.append(f"step {step}: opacity reset")
    return fit_log


def check_condition_dim(expected: int, got: int, what: str) -> None:
    if expected != got:
        raise InputError(
            f"{what} has a {got}-dim expression condition but the avatar was built for {expected}",
            fix="drive the avatar with FLAME parameters of the head model it was trained on",
        )
