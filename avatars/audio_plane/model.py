"""Audio-Plane's dynamic Gaussian head (Shen et al., Sec. 3.2-3.4): static 3D Gaussians (Eqs. 1-2) in the
canonical head frame, deformed by the Audio-Plane field (Eqs. 3-7), rendered with the dynamism channel
splatted beside the colour (Eq. 8), placed in the world by the request's rigid head pose.

Frames. Gaussians live in a *normalised canonical frame* ``u`` = (x - c) / h, where x is FLAME's canonical
frame (metres, zero pose, the subject's shape), c the centre of the padded canonical head box and h its
largest half-extent, so the head spans [-1, 1] on its longest axis and the Audio-Plane's grids cover the box.
A canonical point is placed in the world with the tracked rigid pose as FLAME does (rotation about the root
joint J0, then translation): ``x_world = R (x - J0) + J0 + t`` (ours; the paper takes head pose from the
Face2Face tracker). Gaussian orientations are rotated by the same R; spherical harmonics are evaluated with
the view direction expressed in the canonical frame, so colours move with the head.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from avatars.audio_plane.audio_net import AudioEncoderNet
from avatars.audio_plane.deformation import DeformationMLP, DynamismMLP, GaussianState, deform
from avatars.audio_plane.planes import AudioPlane, SpatialAudioConcat
from avatars.gaussians import GaussianModel, eval_sh
from avatars.render import RenderOutput, rasterize
from avatars.rigged import matrix_to_quaternion, quaternion_multiply


@dataclasses.dataclass(frozen=True)
class AudioPlaneConfig:
    """Model, loss and schedule. Defaults are the paper's (``paper`` budget); see ``ASSUMPTIONS``."""

    # Audio-Plane (Sec. 3.3; Implementation Details: H = 64, D = 16, s ∈ {1, 2, 3, 4})
    plane_resolution: int = 64
    feature_dim: int = 16
    scales: tuple[int, ...] = (1, 2, 3, 4)
    attention: str = "cross-attention"  # Table 2 backbone: "cross-attention" | "mlp"
    fusion: str = "concat"  # Table 2 fusion: "concat" | "multiply" | "add"
    query_norm: bool = True  # LayerNorm on a before Eq. 4's query (ours, see ASSUMPTIONS)
    use_audio_plane: bool = True  # Table 1 'A'; False: audio concatenated with a spatial embedding
    dynamic_splatting: bool = True  # Table 1 'D'; False: d ≡ 1, no L_mask
    # audio (Sec. 3.2): DeepSpeech [16, 29] windows, AudioNet + AudioAttNet (ER-NeRF)
    audio_encoder: str = "deepspeech-0.1.0"
    audio_fallback: str = "filterbank29"
    audio_dim: int = 32
    audio_smoothing: bool = True
    # D1, D2
    d1_width: int = 64
    d2_hidden: int = 32
    # Gaussians (Sec. 4.1: 1,000 random points)
    num_init_gaussians: int = 1_000
    sh_degree: int = 3
    sh_degree_interval: int = 1_000
    init_opacity: float = 0.1
    box_padding: float = 0.15
    # schedule (Sec. 4.1: coarse 3,000 + fine 100,000 iterations)
    coarse_iterations: int = 3_000
    fine_iterations: int = 100_000
    densify_from: int = 500
    densify_until: int = 15_000
    densify_every: int = 100
    opacity_reset_every: int = 3_000
    grow_grad2d: float = 2e-4
    # losses (Sec. 3.5 / 4.1)
    lambda_lpips: float = 0.05
    lambda_mask: float = 0.1
    margin: float = 0.2
    mask_norm: str = "pixel"  # "pixel": mean_p max(0, |m-g| - margin); "image": max(0, mean_p |m-g| - margin)
    mouth_dilation: float = 0.35  # dilation radius of the mouth mask, x the mouth width
    # learning rates
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    lr_grid: float = 5e-3
    lr_prototypes: float = 5e-4
    lr_network: float = 5e-4
    max_train_frames: int = 100_000

    @property
    def iterations(self) -> int:
        return self.coarse_iterations + self.fine_iterations

    def replace(self, **changes: Any) -> AudioPlaneConfig:
        if "scales" in changes:
            changes["scales"] = tuple(changes["scales"])
        return dataclasses.replace(self, **changes)


ASSUMPTIONS: dict[str, str] = {
    "plane_resolution, feature_dim, scales": "paper (Sec. 4.1, Eq. 6): H = 64, D = 16, s in {1,2,3,4}",
    "attention": "paper: Q = a, K = V = A (Eq. 4); ours: per-scale Linear(audio_dim -> D) query projection "
    "(a and A's rows differ in size), K = V = A^s unprojected, one head",
    "fusion": "paper: concatenation (Eq. 6, Table 2's best); product inside each (plane, grid) pair",
    "line interpolation": "paper says 'bilinear'; a 1D grid is interpolated linearly (ours)",
    "coordinates": "ours: canonical FLAME head box (padded by box_padding) scaled isotropically to [-1, 1] "
    "on its longest axis; grids align_corners=True, border padding",
    "grid init": "ours: space planes and 1D grids uniform(0.1, 0.5) (K-planes), prototypes A ~ N(0, 1)",
    "audio": "paper: DeepSpeech over 16-frame windows + temporal filtering; notes (ER-NeRF): AudioNet "
    "Conv1d 29-32-32-64-64 + FC 64-64-32, AudioAttNet over 8 frames; filterbank29 (29 log-mel bands, 50 Hz) "
    "when DeepSpeech features are unavailable",
    "audio normalisation": "ours: window features standardised per channel with the training frames' "
    "mean/std before AudioNet (raw filterbank values saturated Eq. 4's softmax onto one prototype)",
    "d1": "paper: 'an MLP'; ours: 4DGS deformation heads (Linear(f, W), per attribute ReLU-Linear(W,W)-ReLU-"
    "Linear(W,out)) for dmu, drot, dscale, dopacity, dSH-DC; last layers zero-initialised (GaussianTalker's "
    "small-gain init) so the fine stage starts at the coarse head",
    "d2": "paper: 'a tiny MLP'; ours: f -> d2_hidden -> 1, sigmoid (target is a 0-1 mask)",
    "eq7": "ours: G' = G + d * dG on the stored parameters (log scales, logit opacity, unnormalised quats)",
    "eq8": "ours: d splatted as a 4th feature channel of the same rasterize call on G' geometry, black "
    "background",
    "eq9 norm": "ours: per-pixel hinge mean_p max(0, |m - g| - margin) (mask_norm='pixel'); the literal "
    "image norm max(0, mean|m - g| - margin) is 0 whenever the mouth covers < margin of the image "
    "(mask_norm='image')",
    "mouth mask": "ours: polygon of the outer-lip MediaPipe points (iBUG 48-59) of the training camera, "
    "dilated by mouth_dilation x mouth width; frames without a detection get no L_mask",
    "gaussians": "paper: 1,000 random points; ours: uniform in the canonical head box, random colours, "
    "opacity 0.1, scales from 3-NN distances (3DGS random init); SH degree 3 at paper",
    "densification": "ours: 3DGS/gsplat DefaultStrategy (avatars.gaussians) in the normalised frame "
    "(scene scale 1 = head half-size), over both stages",
    "learning rates": "ours: 3DGS Gaussian lrs (means 1.6e-4 -> 1.6e-6 in head half-sizes); TalkingGaussian: "
    "grids 5e-3, MLPs 5e-4 (Adam); audio prototypes A at the MLP rate (at the grid rate they grew until "
    "Eq. 4's softmax saturated)",
    "query norm": "ours: LayerNorm(a) before the query projection (pre-norm cross-attention); keeps Eq. 4's "
    "logits from growing until the softmax picks one prototype for every frame",
    "lpips": "paper: lambda 0.05; LPIPS v0.1 AlexNet (lpips-alexnet) only when registered, else skipped",
    "pose": "ours: x_world = R (x - J0) + J0 + t with the request's FLAME rotation/translation; neck and eye "
    "poses are not modelled (withheld at test time); jaw/expression motion is what the deformation learns",
    "batch": "ours: one training image per step (3DGS); the paper gives no batch size",
    "training composite": "paper: the head is combined with torso and background at inference; ours: the "
    "training loss compares the head composited over the frame outside its mask (the harness rule) with the "
    "frame, as ER-NeRF/TalkingGaussian composite over the ground-truth background",
}


@dataclasses.dataclass(frozen=True)
class Placement:
    """Normalised canonical frame -> FLAME canonical frame: ``x = centre + half_size * u``; ``root`` = J0."""

    centre: Tensor  # [3]
    half_size: float
    root: Tensor  # [3]


class AudioPlaneHead(nn.Module):
    """Gaussians + audio encoder + Audio-Plane (or the w/o-A embedding) + D1 + D2."""

    def __init__(self, config: AudioPlaneConfig, audio_in: int, seed: int = 0):
        super().__init__()
        self.config = config
        torch.manual_seed(seed)
        self.audio = AudioEncoderNet(audio_in, config.audio_dim, config.audio_smoothing)
        field_args = dict(
            resolution=config.plane_resolution, dim=config.feature_dim, scales=config.scales, seed=seed
        )
        if config.use_audio_plane:
            self.field: nn.Module = AudioPlane(
                config.audio_dim,
                fusion=config.fusion,
                attention=config.attention,
                query_norm=config.query_norm,
                **field_args,
            )
        else:
            self.field = SpatialAudioConcat(config.audio_dim, **field_args)
        torch.manual_seed(seed + 1)
        self.d1 = DeformationMLP(self.field.out_dim, config.d1_width)
        self.d2 = DynamismMLP(self.field.out_dim, config.d2_hidden) if config.dynamic_splatting else None
        self.gaussians = GaussianModel(
            torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0),
            torch.zeros(0, 1, 3), torch.zeros(0, (config.sh_degree + 1) ** 2 - 1, 3),
        )  # fmt: skip

    def init_random(self, low: Tensor, high: Tensor, generator: torch.Generator) -> None:
        """Sec. 4.1: ``num_init_gaussians`` random points, uniform in the box [low, high] (normalised
        frame)."""
        n = self.config.num_init_gaussians
        points = low + (high - low) * torch.rand(n, 3, generator=generator)
        colors = torch.rand(n, 3, generator=generator)
        model = GaussianModel.from_points(points, colors, self.config.sh_degree, self.config.init_opacity)
        self.gaussians.params = model.params

    def resize(self, n: int) -> None:
        """Give the Gaussian parameters ``n`` rows (before loading a densified checkpoint)."""
        for name, value in list(self.gaussians.params.items()):
            self.gaussians.params[name] = nn.Parameter(value.detach().new_zeros((n,) + value.shape[1:]))

    def grid_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.field.named_parameters() if name.startswith(("planes", "lines"))]

    def prototype_parameters(self) -> list[nn.Parameter]:
        return [m.prototypes for m in getattr(self.field, "attention", [])]

    def network_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.grid_parameters() + self.prototype_parameters()}
        nets = [p for p in self.field.parameters() if id(p) not in ids]
        nets += list(self.audio.parameters()) + list(self.d1.parameters())
        if self.d2 is not None:
            nets += list(self.d2.parameters())
        return nets

    def state(self) -> GaussianState:
        p = self.gaussians.params
        return GaussianState(p["means"], p["quats"], p["scales"], p["opacities"], p["sh0"], p["shN"])

    def deformed(self, neighbours: Tensor | None) -> tuple[GaussianState, Tensor | None]:
        """(G', d) for one frame's audio ``neighbours [1, 8, 16, C]``; ``None``: the static coarse head."""
        gaussians = self.state()
        if neighbours is None:
            return gaussians, None
        a = self.audio(neighbours)  # [1, audio_dim]
        f = self.field(gaussians.means, a)  # Eq. 6 (or the w/o-A concatenation)
        delta = self.d1(f)  # ΔG = D1(f)
        d = self.d2(f) if self.d2 is not None else None  # d = D2(f)
        return deform(gaussians, delta, d), d  # Eq. 7


def rotation_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues [3] -> [3, 3] (exact identity at zero)."""
    angle = axis_angle.norm()
    if float(angle) < 1e-12:
        return torch.eye(3, dtype=axis_angle.dtype)
    k = axis_angle / angle
    skew = torch.stack(
        [torch.zeros(()), -k[2], k[1], k[2], torch.zeros(()), -k[0], -k[1], k[0], torch.zeros(())]
    ).reshape(3, 3)
    return torch.eye(3) + torch.sin(angle) * skew + (1 - torch.cos(angle)) * skew @ skew


def render_head(
    head: AudioPlaneHead,
    placement: Placement,
    neighbours: Tensor | None,
    rotation: Tensor,  # [3] axis-angle (FLAME global rotation about J0)
    translation: Tensor,  # [3]
    world_to_cam: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    sh_degree: int | None = None,
    backend: str = "auto",
) -> tuple[RenderOutput, Tensor | None]:
    """Render one frame. ``features[..., :3]`` is the colour (Eq. 2), ``features[..., 3]`` (when the
    dynamism d exists) the splatted dynamic map g (Eq. 8). Returns (output, d [N] or None)."""
    g, d = head.deformed(neighbours)
    R = rotation_matrix(rotation)
    h, c, root = placement.half_size, placement.centre, placement.root
    canonical = c + h * g.means  # FLAME canonical frame, metres
    means = (canonical - root) @ R.T + root + translation  # x_world = R (x - J0) + J0 + t
    quats = quaternion_multiply(
        matrix_to_quaternion(R).expand(len(canonical), 4), nn.functional.normalize(g.quats, dim=-1)
    )
    scales = h * torch.exp(g.scales)
    opacities = torch.sigmoid(g.opacities)
    degree = head.config.sh_degree if sh_degree is None else min(sh_degree, head.config.sh_degree)
    coeffs = torch.cat([g.sh0, g.shN], dim=1)[:, : (degree + 1) ** 2]
    camera_centre = -world_to_cam[:3, :3].T @ world_to_cam[:3, 3]
    centre_canonical = R.T @ (camera_centre - translation - root) + root  # the camera seen from the head
    rgb = torch.clamp_min(eval_sh(degree, coeffs, canonical - centre_canonical) + 0.5, 0.0)
    features = rgb if d is None else torch.cat([rgb, d[:, None]], dim=-1)
    out = rasterize(
        means, quats, scales, opacities, features, world_to_cam[None], K[None], width, height,
        background=torch.zeros(features.shape[-1]), backend=backend,
    )  # fmt: skip
    return out, d


def mask_hinge_loss(g: Tensor, m: Tensor, margin: float, norm: str = "pixel") -> Tensor:
    """Eq. 9: ``L_mask = max(0, ||m - g|| - margin)`` of the splatted dynamic map g and the dilated mouth
    mask m ([H, W]); ``norm="pixel"`` applies the hinge per pixel and averages, ``"image"`` to the mean
    absolute difference (see ASSUMPTIONS["eq9 norm"])."""
    difference = (m.to(g.dtype) - g).abs()
    if norm == "pixel":
        return torch.relu(difference - margin).mean()
    if norm == "image":
        return torch.relu(difference.mean() - margin)
    raise ValueError(f"mask_norm {norm!r} not in ('pixel', 'image')")


def mouth_masks(
    points: np.ndarray, detected: np.ndarray, height: int, width: int, dilation: float
) -> tuple[np.ndarray, np.ndarray]:
    """Reference masks m (Sec. 3.4): the outer-lip polygon of MediaPipe landmarks ``[T, 478, 2]`` (iBUG
    48-59), dilated by ``dilation`` x the mouth width. Returns (masks [T, H, W] bool, valid [T] bool)."""
    import cv2

    from tracking.landmarks import to_ibug68

    lips = to_ibug68(np.asarray(points, np.float64))[:, 48:60]
    valid = np.asarray(detected, bool) & np.isfinite(lips).all(axis=(1, 2))
    masks = np.zeros((len(lips), height, width), bool)
    for t in np.nonzero(valid)[0]:
        canvas = np.zeros((height, width), np.uint8)
        polygon = np.round(lips[t] - 0.5).astype(np.int32)  # pixel centres at j + 0.5
        cv2.fillPoly(canvas, [polygon], 1)
        radius = max(1, int(round(dilation * float(np.ptp(lips[t][:, 0])))))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        masks[t] = cv2.dilate(canvas, kernel) > 0
    return masks, valid
