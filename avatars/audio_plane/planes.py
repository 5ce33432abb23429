"""The Audio Factorization Plane (Audio-Plane, Shen et al., Sec. 3.3, Eqs. 4-6).

The audio-aware 4D volume (x, y, z, audio) is factorised into

* three audio-independent **space planes** ``P_XY, P_XZ, P_YZ ∈ R^{H×H×D}`` (EG3D tri-plane), and
* three audio-dependent "planes" ``P_ZA, P_YA, P_XA``, each spanned by a spatial **1D grid**
  ``L_Z, L_Y, L_X ∈ R^{H×D}`` and the shared learnable **audio prototype grid** ``A ∈ R^{H×D}``
  (the "audio codebook"); they are never stored as planes.

Per Gaussian at (x, y, z) with audio feature ``a``:

* Eq. 4: ``f_a = Softmax(Q Kᵀ / √d_k) V`` with ``Q = a``, ``K = V = A`` (cross-attention, Fig. 3);
* Eq. 5: ``f_za = f_z · f_a``, ``f_z`` the interpolation of ``L_Z`` at z (elementwise product);
* Eq. 6: ``f = ∪_s ∪_(i,j,k) Interp(P^s_ij) · f^s_k · f^s_a`` over ``(i,j,k) ∈ {(X,Y,Z), (X,Z,Y), (Y,Z,X)}``
  and scales ``s ∈ {1, 2, 3, 4}`` (``P^s ∈ R^{sH×sH×D}``, ``L^s, A^s ∈ R^{sH×D}``), ``∪`` = concatenation:
  ``4 × 3 × D`` features (192 at the paper's D = 16).

What the paper leaves open (each recorded in the method's ``config()``):

* ``Q = a`` although ``a`` (32-d from the ER-NeRF audio net) and ``A``'s rows (D) differ in size: a
  per-scale ``Linear(dim_a -> D)`` query projection, K = V = A^s without projection, one head (ours).
* "bilinear" interpolation on a 1D grid is linear interpolation (ours: ``grid_sample`` on a 1-row image).
* Coordinates: the canonical head box mapped to [-1, 1], grid corners on the box faces
  (``align_corners=True``), border padding outside (ours).
* Initialisation: space planes and 1D grids uniform(0.1, 0.5) as K-planes' planes; A ~ N(0, 1) so that the
  prototypes differ and the attention is audio-selective from the start (ours).

Ablations (Tables 1 and 2):

* ``attention="mlp"`` (Table 2 "MLP" backbone): an MLP maps ``a`` directly to the ``sH`` attention
  scores (softmax), ``f_a = scores · A``, instead of the Q·Kᵀ cross-attention.
* ``fusion="multiply" | "add" | "concat"`` (Table 2): how the three (plane, grid) sets of one scale are
  fused; ``concat`` is Eq. 6 (the paper's choice), the other two give D features per scale.
* :class:`SpatialAudioConcat` (Table 1 "w/o A"): "the audio feature is directly concatenated with spatial
  embedding" (Fig. 1 (a)); the spatial embedding is the multi-scale space tri-plane alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAIRS = ((0, 1, 2), (0, 2, 1), (1, 2, 0))  # (i, j, k) = (X, Y, Z), (X, Z, Y), (Y, Z, X)
FUSIONS = ("concat", "multiply", "add")
ATTENTIONS = ("cross-attention", "mlp")


def interp_plane(plane: Tensor, uv: Tensor) -> Tensor:
    """Bilinear interpolation of ``plane [D, R, R]`` at ``uv [N, 2]`` in [-1, 1] -> ``[N, D]``
    (u along the plane's second axis = columns, v along rows)."""
    out = F.grid_sample(
        plane[None], uv[None, :, None, :], mode="bilinear", padding_mode="border", align_corners=True
    )
    return out[0, :, :, 0].T


def interp_line(line: Tensor, u: Tensor) -> Tensor:
    """Linear interpolation of ``line [D, R]`` at ``u [N]`` in [-1, 1] -> ``[N, D]``."""
    uv = torch.stack([u, torch.zeros_like(u)], dim=-1)
    return interp_plane(line[:, None, :], uv)


class PrototypeAttention(nn.Module):
    """Eq. 4: ``f_a = Softmax(Q Kᵀ / √d_k) V``, ``Q = W_q a``, ``K = V = A`` (``A [sH, D]``).

    ``backbone="mlp"`` is Table 2's alternative: an MLP predicts the ``sH`` attention scores from ``a``.
    """

    def __init__(
        self,
        dim_audio: int,
        num_prototypes: int,
        dim: int,
        backbone: str = "cross-attention",
        query_norm: bool = True,
    ):
        super().__init__()
        if backbone not in ATTENTIONS:
            raise ValueError(f"attention backbone {backbone!r} not in {ATTENTIONS}")
        self.backbone = backbone
        # Pre-norm of the query input, as in transformer cross-attention blocks (ours): without it ``a``
        # grew during training until the softmax saturated onto one prototype (f_a constant in time).
        self.norm = nn.LayerNorm(dim_audio) if query_norm else nn.Identity()
        self.prototypes = nn.Parameter(torch.randn(num_prototypes, dim))  # A^s
        if backbone == "cross-attention":
            self.query = nn.Linear(dim_audio, dim)
        else:
            hidden = max(dim, 64)
            self.score_mlp = nn.Sequential(
                nn.Linear(dim_audio, hidden), nn.ReLU(), nn.Linear(hidden, num_prototypes)
            )

    def scores(self, audio: Tensor) -> Tensor:
        """``[B, sH]`` attention weights of ``audio [B, dim_audio]`` over the prototypes."""
        audio = self.norm(audio)
        if self.backbone == "mlp":
            return torch.softmax(self.score_mlp(audio), dim=-1)
        q = self.query(audio)  # Q = a (projected to d_k = D)
        return torch.softmax(q @ self.prototypes.T / math.sqrt(q.shape[-1]), dim=-1)

    def forward(self, audio: Tensor) -> Tensor:
        """``f_a [B, D]``."""
        if self.backbone == "cross-attention":
            q = self.query(self.norm(audio))[:, None, :]  # [B, 1, D]
            kv = self.prototypes[None].expand(audio.shape[0], -1, -1)
            return F.scaled_dot_product_attention(q, kv, kv)[:, 0]
        return self.scores(audio) @ self.prototypes


class AudioPlane(nn.Module):
    """``{P^s_XY, P^s_XZ, P^s_YZ, L^s_X, L^s_Y, L^s_Z, A^s}`` for ``s`` in ``scales`` (Eq. 6)."""

    def __init__(
        self,
        dim_audio: int,
        resolution: int = 64,
        dim: int = 16,
        scales: tuple[int, ...] = (1, 2, 3, 4),
        fusion: str = "concat",
        attention: str = "cross-attention",
        seed: int = 0,
        query_norm: bool = True,
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion {fusion!r} not in {FUSIONS}")
        self.resolution, self.dim, self.scales, self.fusion = resolution, dim, tuple(scales), fusion
        generator = torch.Generator().manual_seed(seed)
        self.planes = nn.ParameterList()  # per scale [3, D, sH, sH]: XY, XZ, YZ
        self.lines = nn.ParameterList()  # per scale [3, D, sH]: X, Y, Z
        for s in self.scales:
            size = s * resolution
            self.planes.append(nn.Parameter(0.1 + 0.4 * torch.rand(3, dim, size, size, generator=generator)))
            self.lines.append(nn.Parameter(0.1 + 0.4 * torch.rand(3, dim, size, generator=generator)))
        torch.manual_seed(seed)  # nn.Linear / prototype init draw from the global generator
        self.attention = nn.ModuleList(
            PrototypeAttention(dim_audio, s * resolution, dim, attention, query_norm) for s in self.scales
        )

    @property
    def out_dim(self) -> int:
        per_scale = 3 * self.dim if self.fusion == "concat" else self.dim
        return len(self.scales) * per_scale

    def audio_features(self, audio: Tensor) -> list[Tensor]:
        """``[f^s_a [B, D] for s]`` (Eq. 4 at every scale)."""
        return [attention(audio) for attention in self.attention]

    def forward(self, xyz: Tensor, audio: Tensor | None = None, f_a: list[Tensor] | None = None) -> Tensor:
        """``f [N, out_dim]`` of points ``xyz [N, 3]`` (in [-1, 1]) under one frame's audio ``a [1, dim_a]``
        (or its precomputed ``f_a``)."""
        if f_a is None:
            f_a = self.audio_features(audio)
        per_scale = []
        for index, _ in enumerate(self.scales):
            planes, lines, fa = self.planes[index], self.lines[index], f_a[index].reshape(1, -1)
            sets = []
            for plane_index, (i, j, k) in enumerate(PAIRS):
                p_ij = interp_plane(planes[plane_index], xyz[:, [i, j]])  # Interp(P^s_ij)
                f_k = interp_line(lines[k], xyz[:, k])  # f^s_k on L^s_k
                sets.append(p_ij * f_k * fa)  # Eq. 5 (f_k · f_a) times the space plane, Eq. 6
            if self.fusion == "concat":
                per_scale.append(torch.cat(sets, dim=-1))
            elif self.fusion == "multiply":
                per_scale.append(sets[0] * sets[1] * sets[2])
            else:
                per_scale.append(sets[0] + sets[1] + sets[2])
        return torch.cat(per_scale, dim=-1)  # ∪ over s (Eq. 6)


class SpatialAudioConcat(nn.Module):
    """Table 1 "w/o A": multi-scale space tri-plane features concatenated with the audio feature ``a``."""

    def __init__(
        self,
        dim_audio: int,
        resolution: int = 64,
        dim: int = 16,
        scales: tuple[int, ...] = (1, 2, 3, 4),
        seed: int = 0,
    ):
        super().__init__()
        self.dim_audio, self.dim, self.scales = dim_audio, dim, tuple(scales)
        generator = torch.Generator().manual_seed(seed)
        self.planes = nn.ParameterList(
            nn.Parameter(0.1 + 0.4 * torch.rand(3, dim, s * resolution, s * resolution, generator=generator))
            for s in self.scales
        )

    @property
    def out_dim(self) -> int:
        return len(self.scales) * 3 * self.dim + self.dim_audio

    def forward(self, xyz: Tensor, audio: Tensor | None = None, f_a: list[Tensor] | None = None) -> Tensor:
        spatial = [
            interp_plane(planes[p], xyz[:, [i, j]])
            for planes in self.planes
            for p, (i, j, _) in enumerate(PAIRS)
        ]
        return torch.cat([*spatial, audio.reshape(1, -1).expand(xyz.shape[0], -1)], dim=-1)
