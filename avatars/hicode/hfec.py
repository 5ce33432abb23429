"""HiCoDe's deformation network F_Δ (Eq. 7) and its Hierarchical Facial Expression Control (HFEC, Eqs. 9-12).

Shapes are row-major: the paper writes Q ∈ R^{C×N} (one column per Gaussian) and K, V ∈ R^{C×L} (one column
per landmark); here ``Q [N, C]``, ``K [L, C]``, ``V [L, C]``, so ``Q @ K.T`` is the paper's ``Qᵀ × K``.

The paper fixes the order and the operators (landmark attention mean and std, AdaIN with them, then AdaIN
with the 3DMM statistics) but not the embeddings, the channel count, the normalisation axes or the head that
turns M into (Δr, Δs, Δl). Our choices, each recorded by :class:`DeformationConfig` and the method's
``config()``:

* Q = MLP(PE(l)): NeRF positional encoding (L = 10 frequencies, as Deformable 3DGS) of the Gaussian's
  canonical location normalised to [-1, 1] by the initial point cloud's box, then an MLP to C channels.
* Landmark tokens: K = W_K · E(p_k) + e_k and V = MLP_V([E(p_k), (p_k − p̄_k) / σ]), with E the *same*
  location embedding as Q (AdaAttN computes query and key with one encoder, so a Gaussian can attend to the
  landmarks near it), e_k a learned per-landmark embedding, p̄_k the landmark's mean training position and
  σ the training displacement scale.
* Eq. 9's softmax is over the L landmarks, without temperature (none in the paper).
* μ(·), σ(·) of Eqs. 11-12 are per channel over the N Gaussians (instance normalisation; AdaIN's axes
  with the Gaussians as the spatial positions), σ = sqrt(var + ε).
* "Mean and std of 3dmm(t)" (Eq. 12): each coefficient z_k becomes a token z_k · a_k + b_k ∈ R^C and
  Z_μ, Z_σ are the per-channel mean and std over the tokens (the literal reading, two scalars per frame,
  gives a degenerate modulation). ``zstats="mlp"`` is the StyleGAN-style alternative MLP(3dmm) → (Z_μ, Z_σ).
* The head from M [N, C] to (Δl, Δr, Δs) is an MLP whose last layer is zero-initialised, so the
  deformation starts at identity.

Ablations of Table 2 (``DeformationConfig.variant``): ``full`` (Eqs. 9-12), ``no_3dmm`` (M = y),
``no_landmarks`` (y = Q), ``addition`` (y = Q + W_μ, M = y + Z_μ), ``attention`` (y = W_μ, M = attention of
y over the 3DMM tokens), ``concat`` ("w/o HFEC": M = MLP([Q, A·3dmm, B·vec(lmds − p̄)])), ``none`` (audio
features control the Gaussians directly: M = MLP([Q, A·audio])).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

VARIANTS = ("full", "no_3dmm", "no_landmarks", "addition", "attention", "concat", "none")


@dataclasses.dataclass(frozen=True)
class DeformationConfig:
    channels: int = 64  # C
    pe_frequencies: int = 10  # L of the location positional encoding (Deformable 3DGS: 10)
    embed_layers: int = 3  # MLP depth of the location embedding (PE -> C)
    embed_hidden: int = 64
    head_layers: int = 1  # hidden layers of the M -> (Δl, Δr, Δs) head (last layer zero-init)
    head_hidden: int = 64
    zstats: str = "tokens"  # how Z_μ, Z_σ come from 3dmm(t): "tokens" | "mlp"
    eps: float = 1e-5  # inside the square roots of Eqs. 10-12
    variant: str = "full"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown HFEC variant {self.variant!r}; use one of {VARIANTS}")
        if self.zstats not in ("tokens", "mlp"):
            raise ValueError(f"unknown zstats {self.zstats!r}")


def positional_encoding(x: Tensor, num_frequencies: int) -> Tensor:
    """NeRF encoding ``[x, sin(2^k π x), cos(2^k π x)]_{k<L}``: [..., 3] -> [..., 3 + 6L]."""
    freqs = (2.0 ** torch.arange(num_frequencies, dtype=x.dtype, device=x.device)) * math.pi
    angles = x[..., None, :] * freqs[:, None]  # [..., L, 3]
    return torch.cat([x, angles.sin().flatten(-2), angles.cos().flatten(-2)], dim=-1)


def mlp(sizes: list[int]) -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def landmark_attention(q: Tensor, k: Tensor, v: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Landmark-based attention: ``(W_μ [N, C], W_σ [N, C])`` of ``q [N, C]``, ``k, v [L, C]``.

    The attention-weighted mean and standard deviation of the landmark values per Gaussian (AdaAttN).
    """
    attention = torch.softmax(q @ k.T, dim=-1)  # [N, L]: softmax(Qᵀ × K), over the landmarks
    # Eq. 9 (HiCoDe): W_μ = V × softmax(Qᵀ × K)ᵀ, and (V ∘ V) × softmax(Qᵀ × K)ᵀ of Eq. 10, in one product
    w_mu, second = (attention @ torch.cat([v, v * v], dim=-1)).chunk(2, dim=-1)
    # Eq. 10: W_σ = sqrt((V ∘ V) × softmax(Qᵀ × K)ᵀ − W_μ ∘ W_μ); clamped at 0 against round-off, + ε
    w_sigma = torch.sqrt((second - w_mu * w_mu).clamp_min(0.0) + eps)
    return w_mu, w_sigma


def instance_stats(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std over the first axis: ``x [N, C]`` -> ``([C], [C])``."""
    mean = x.mean(dim=0)
    std = torch.sqrt(x.var(dim=0, unbiased=False) + eps)
    return mean, std


def adain(x: Tensor, mean: Tensor, std: Tensor, eps: float = 1e-5) -> Tensor:
    """``std ⊙ (x − μ(x)) / σ(x) + mean`` (Huang & Belongie 2017) with μ, σ per channel over N.

    ``x [N, C]``; ``mean``, ``std`` ``[N, C]`` (Eq. 11, one per Gaussian) or ``[C]`` (Eq. 12).
    """
    mu, sigma = instance_stats(x, eps)
    return std * (x - mu) / sigma + mean


class LocationEmbedding(torch.nn.Module):
    """Q = MLP(PE(l)) for locations ``l [N, 3]`` already normalised to about [-1, 1].

    ``embed_layers`` linear layers, ReLU between them; with more than 4 layers the encoding is concatenated
    again to the input of layer 5 (Deformable 3DGS's skip at layer 4)."""

    SKIP = 4

    def __init__(self, config: DeformationConfig):
        super().__init__()
        self.frequencies = config.pe_frequencies
        encoded = 3 + 6 * config.pe_frequencies
        hidden, layers = config.embed_hidden, config.embed_layers
        sizes_in = [encoded] + [hidden] * (layers - 1)
        sizes_out = [hidden] * (layers - 1) + [config.channels]
        if layers > self.SKIP:
            sizes_in[self.SKIP] += encoded
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes_in, sizes_out, strict=True)
        )

    def forward(self, locations: Tensor) -> Tensor:
        encoded = positional_encoding(locations, self.frequencies)
        x = encoded
        for index, layer in enumerate(self.layers):
            if index == self.SKIP:
                x = torch.cat([x, encoded], dim=-1)
            x = layer(x)
            if index < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class LandmarkTokens(torch.nn.Module):
    """K, V ``[L, C]`` of the landmarks ``lmds(t) [L, 3]`` (normalised canonical positions)."""

    def __init__(self, num_landmarks: int, config: DeformationConfig):
        super().__init__()
        c = config.channels
        self.key = torch.nn.Linear(c, c)
        self.index_embedding = torch.nn.Parameter(torch.zeros(num_landmarks, c))
        self.value = mlp([c + 3, config.embed_hidden, c])

    def forward(self, embedded: Tensor, displacement: Tensor) -> tuple[Tensor, Tensor]:
        """``embedded [L, C]`` = E(p_k), ``displacement [L, 3]`` = (p_k − p̄_k) / σ."""
        keys = self.key(embedded) + self.index_embedding
        values = self.value(torch.cat([embedded, displacement], dim=-1))
        return keys, values


class ThreeDMMStatistics(torch.nn.Module):
    """(Z_μ, Z_σ) ``([C], [C])`` of one frame's ``3dmm(t) [K]`` (see the module docstring)."""

    def __init__(self, num_coefficients: int, config: DeformationConfig):
        super().__init__()
        c = config.channels
        self.mode = config.zstats
        self.eps = config.eps
        if self.mode == "tokens":
            generator = torch.Generator().manual_seed(0)
            self.scale = torch.nn.Parameter(torch.randn(num_coefficients, c, generator=generator))
            self.bias = torch.nn.Parameter(0.1 * torch.randn(num_coefficients, c, generator=generator))
        else:
            self.net = mlp([num_coefficients, config.embed_hidden, 2 * c])

    def tokens(self, coefficients: Tensor) -> Tensor:
        """``[K, C]``: token k = z_k · a_k + b_k (``tokens`` mode only)."""
        return coefficients[:, None] * self.scale + self.bias

    def forward(self, coefficients: Tensor) -> tuple[Tensor, Tensor]:
        if self.mode == "tokens":
            return instance_stats(self.tokens(coefficients), self.eps)
        mean, log_std = self.net(coefficients).chunk(2)
        return mean, torch.exp(log_std)


@dataclasses.dataclass
class Controls:
    """One frame's control signals (canonical, pose-free). Unused ones may be None for the ablations."""

    threedmm: Tensor | None = None  # [K] 3dmm(t) = [z_exp(t); z_id]
    landmarks: Tensor | None = None  # [L, 3] lmds(t), normalised canonical positions
    audio: Tensor | None = None  # [A] the frame's audio feature (variant "none" only)


class DeformationNetwork(torch.nn.Module):
    """F_Δ(l_cn, 3dmm(t), lmds(t)) = (Δr, Δs, Δl) (Eq. 7) through HFEC (Eqs. 9-12)."""

    def __init__(
        self,
        config: DeformationConfig,
        num_coefficients: int,
        num_landmarks: int,
        landmark_mean: Tensor,  # [L, 3] p̄ (normalised)
        landmark_scale: float,  # σ of the displacements (normalised units)
        audio_dim: int = 0,
    ):
        super().__init__()
        self.config = config
        c = config.channels
        self.location = LocationEmbedding(config)
        self.landmark_tokens = LandmarkTokens(num_landmarks, config)
        self.threedmm = ThreeDMMStatistics(num_coefficients, config)
        self.register_buffer("landmark_mean", landmark_mean.clone().float())
        self.landmark_scale = float(landmark_scale)
        if config.variant == "attention":
            self.z_key = torch.nn.Linear(c, c)
            self.z_value = torch.nn.Linear(c, c)
        if config.variant == "concat":
            self.z_embed = torch.nn.Linear(num_coefficients, c)
            self.l_embed = torch.nn.Linear(3 * num_landmarks, c)
            self.fuse = mlp([3 * c, config.embed_hidden, c])
        if config.variant == "none":
            self.a_embed = torch.nn.Linear(audio_dim, c)
            self.fuse = mlp([2 * c, config.embed_hidden, c])
        self.head = mlp([c] + [config.head_hidden] * config.head_layers + [10])
        last = self.head[-1]
        torch.nn.init.zeros_(last.weight)  # deformation starts at identity
        torch.nn.init.zeros_(last.bias)

    def modulated(self, locations: Tensor, controls: Controls, q: Tensor | None = None) -> Tensor:
        """M ``[N, C]`` for normalised canonical locations ``[N, 3]`` (``q``: their embedding Q when
        already computed; it does not depend on the frame)."""
        cfg = self.config
        if q is None:
            q = self.location(locations.detach())  # canonical locations detached, as Deformable 3DGS
        if cfg.variant == "none":
            a = self.a_embed(controls.audio)
            return self.fuse(torch.cat([q, a.expand(q.shape[0], -1)], dim=-1))
        if cfg.variant == "no_landmarks":
            z_mu, z_sigma = self.threedmm(controls.threedmm)
            return adain(q, z_mu, z_sigma, cfg.eps)  # Eq. 12 applied to y = Q
        displacement = (controls.landmarks - self.landmark_mean) / self.landmark_scale
        if cfg.variant == "concat":
            z = self.z_embed(controls.threedmm)
            lm = self.l_embed(displacement.flatten())
            n = q.shape[0]
            return self.fuse(torch.cat([q, z.expand(n, -1), lm.expand(n, -1)], dim=-1))
        k, v = self.landmark_tokens(self.location(controls.landmarks), displacement)
        w_mu, w_sigma = landmark_attention(q, k, v, cfg.eps)
        if cfg.variant == "addition":
            z_mu, _ = self.threedmm(controls.threedmm)
            return q + w_mu + z_mu
        if cfg.variant == "attention":
            tokens = self.threedmm.tokens(controls.threedmm)
            y = w_mu
            weights = torch.softmax(y @ self.z_key(tokens).T, dim=-1)
            return weights @ self.z_value(tokens)
        # Eq. 11 (HiCoDe): y = AdaIN(l, (W_μ, W_σ)) = W_σ (Q − μ(Q)) / σ(Q) + W_μ
        y = adain(q, w_mu, w_sigma, cfg.eps)
        if cfg.variant == "no_3dmm":
            return y
        z_mu, z_sigma = self.threedmm(controls.threedmm)
        # Eq. 12 (HiCoDe): M = AdaIN(y, (Z_μ, Z_σ)) = Z_σ (y − μ(y)) / σ(y) + Z_μ
        return adain(y, z_mu, z_sigma, cfg.eps)

    def forward(
        self, locations: Tensor, controls: Controls, q: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(Δl [N, 3] in normalised units, Δr [N, 4], Δs [N, 3] in log scale)."""
        out = self.head(self.modulated(locations, controls, q))
        return out[:, :3], out[:, 3:7], out[:, 7:]
