"""FaceFormer's sequence core, shared by HiCoDe (audio -> 3DMM, audio -> landmarks) and GaussianSpeech.

FaceFormer (Fan et al., CVPR 2022; public code EvelynFan/FaceFormer, ``faceformer.py``) maps speech
features to per-frame mesh offsets with one transformer decoder whose

* self-attention is **causal**: FaceFormer biases it with ALiBi (per-head slope times
  ``-floor(distance / period)``, :func:`alibi_causal_mask`); GaussianSpeech Eq. 10 uses a plain
  binary look-ahead mask (:func:`binary_causal_mask`);
* cross-attention to the audio is restricted by an **alignment mask** (:func:`alignment_mask`):
  ``"pairs"`` when audio runs at twice the video rate (50 Hz features, 25 fps: frame ``i`` sees tokens
  ``2i`` and ``2i + 1``, FaceFormer's BIWI setting), ``"diagonal"`` when both run at the video rate
  (FaceFormer's VOCASET setting after interpolation; GaussianSpeech Eq. 11, ``M_ij = delta_ij``);
* inputs are the previous frames' outputs (motion map), plus a style embedding, plus a **periodic**
  positional encoding (:class:`PeriodicPositionalEncoding`);
* output head is **zero-initialised** and predicts offsets from a template, so an untrained model
  outputs the template.

Everything here works in *offset* space: callers subtract their template from targets and add it to
predictions. ``SequenceDecoder.forward`` is teacher forcing (targets shifted by one frame),
``SequenceDecoder.rollout`` the autoregressive inference FaceFormer uses at test time. One
difference from FaceFormer's code, on purpose: the first decoder input is
``motion_map(0) + style`` in both modes (FaceFormer uses ``style`` alone at inference but
``motion_map(0) + style`` under teacher forcing), so the two modes agree exactly.

:class:`CausalTransformerEncoder` is the encoder-only stack (same masks, no cross-attention) for
sequence-to-sequence encoders such as GaussianSpeech's lip, wrinkle and expression encoders.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

BIASES = ("alibi", "binary")
ALIGNMENTS = ("pairs", "diagonal", "none")


@dataclasses.dataclass(frozen=True)
class SequenceConfig:
    """Sizes and masks of one FaceFormer-style model (defaults: FaceFormer's VOCASET model)."""

    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 1
    ffn_dim: int = 128  # FaceFormer: 2 * d_model
    period: int = 25  # frames per period of the positional encoding and of the ALiBi bias steps
    bias: str = "alibi"  # "alibi" (FaceFormer) | "binary" (GaussianSpeech Eq. 10)
    alignment: str = "pairs"  # "pairs" (50 Hz audio, 25 fps) | "diagonal" (Eq. 11) | "none" (no mask)
    max_len: int = 600  # FaceFormer's max_seq_len
    dropout: float = 0.1  # torch's TransformerDecoderLayer default, as FaceFormer

    def __post_init__(self) -> None:
        if self.bias not in BIASES:
            raise ValueError(f"bias must be one of {BIASES}, got {self.bias!r}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by num_heads {self.num_heads}")


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's per-head slopes (Press et al. 2022), as FaceFormer's ``init_biased_mask.get_slopes``:
    a geometric sequence starting at ``2^(-8/n)`` for ``n`` a power of two (0.25, 1/16, 1/64, 1/256
    for 4 heads), interleaved from the next power of two otherwise."""

    def power_of_two(n: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return torch.tensor(power_of_two(num_heads))
    closest = 2 ** math.floor(math.log2(num_heads))
    extra = power_of_two(2 * closest)[0::2][: num_heads - closest]
    return torch.tensor(power_of_two(closest) + extra)


def alibi_causal_mask(num_heads: int, length: int, period: int) -> torch.Tensor:
    """``[num_heads, T, T]`` additive mask: ``-slope_h * floor((i - j) / period)`` for ``j <= i``,
    ``-inf`` for ``j > i`` (the future). FaceFormer's ``init_biased_mask``."""
    i = torch.arange(length)[:, None]
    j = torch.arange(length)[None, :]
    steps = torch.div(i - j, period, rounding_mode="floor").float()
    bias = -alibi_slopes(num_heads)[:, None, None] * steps[None]
    return bias.masked_fill((j > i)[None], float("-inf"))


def binary_causal_mask(length: int) -> torch.Tensor:
    """``[T, T]`` bool, True = blocked: frame ``i`` may not attend to frames ``j > i`` (Eq. 10 of
    GaussianSpeech in its causal meaning; the paper prints the mask with the opposite sign)."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)


def alignment_mask(num_frames: int, num_tokens: int, kind: str) -> torch.Tensor:
    """``[T, S]`` bool, True = blocked: which audio tokens each frame's cross-attention may see.

    ``"pairs"``: frame ``i`` sees tokens ``2i`` and ``2i + 1`` (FaceFormer ``enc_dec_mask``, BIWI);
    ``"diagonal"``: frame ``i`` sees token ``i`` (Kronecker delta, GaussianSpeech Eq. 11);
    ``"none"``: nothing blocked (the "w/o alignment mask" ablation).
    """
    frame = torch.arange(num_frames)[:, None]
    token = torch.arange(num_tokens)[None, :]
    if kind == "pairs":
        allowed = (token == 2 * frame) | (token == 2 * frame + 1)
    elif kind == "diagonal":
        allowed = token == frame
    elif kind == "none":
        allowed = torch.ones(num_frames, num_tokens, dtype=torch.bool)
    else:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {kind!r}")
    blocked = ~allowed
    # A frame beyond the audio's end (rounding at the clip's tail) would see nothing, which makes
    # softmax NaN: let it see the last token(s) instead.
    empty = blocked.all(dim=1)
    if empty.any():
        blocked[empty, -1] = False
    return blocked


class PeriodicPositionalEncoding(nn.Module):
    """FaceFormer's periodic positional encoding: a sinusoid table of ``period`` rows tiled to
    ``max_len`` (so frames one period apart share their code)."""

    def __init__(self, d_model: int, period: int = 25, max_len: int = 600, dropout: float = 0.1):
        super().__init__()
        position = torch.arange(period, dtype=torch.float32)[:, None]
        div_term = torch.exp(
            torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
        )
        table = torch.zeros(period, d_model)
        table[:, 0::2] = torch.sin(position * div_term)
        table[:, 1::2] = torch.cos(position * div_term)[:, : d_model // 2]
        repeats = max_len // period + 1
        self.register_buffer("table", table.repeat(repeats, 1)[None], persistent=False)  # [1, L, d]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, d]
        if x.shape[1] > self.table.shape[1]:
            raise ValueError(f"sequence of {x.shape[1]} frames exceeds max_len {self.table.shape[1]}")
        return self.dropout(x + self.table[:, : x.shape[1]])


def _self_attention_mask(config: SequenceConfig, length: int, batch: int, device) -> torch.Tensor:
    """The self-attention mask in the form torch's layers take: ``[B * heads, T, T]`` float for ALiBi
    (per-head bias), ``[T, T]`` bool for the binary mask."""
    if config.bias == "alibi":
        mask = alibi_causal_mask(config.num_heads, length, config.period).to(device)
        return mask.repeat(batch, 1, 1)
    return binary_causal_mask(length).to(device)


class SequenceDecoder(nn.Module):
    """FaceFormer's decoder: memory (audio features) -> per-frame offsets ``[B, T, out_dim]``.

    ``memory`` holds ``S`` tokens: ``S = 2T`` under ``"pairs"`` alignment, ``S = T`` under
    ``"diagonal"``. ``style`` (``[B, style_dim]``) is FaceFormer's style embedding (a one-hot speaker
    there; HiCoDe's landmark identity here), added to every decoder input.
    """

    def __init__(self, config: SequenceConfig, audio_dim: int, out_dim: int, style_dim: int = 0):
        super().__init__()
        self.config = config
        self.out_dim = out_dim
        d = config.d_model
        self.audio_map = nn.Linear(audio_dim, d)  # FaceFormer: audio_feature_map
        self.motion_map = nn.Linear(out_dim, d)  # FaceFormer: vertice_map
        self.style_map = nn.Linear(style_dim, d, bias=False) if style_dim else None  # FaceFormer: obj_vector
        self.positional = PeriodicPositionalEncoding(d, config.period, config.max_len, config.dropout)
        layer = nn.TransformerDecoderLayer(
            d_model=d,
            nhead=config.num_heads,
            dim_feedforward=config.ffn_dim,
            dropout=config.dropout,
            batch_first=True,
        )
        self.decoder = nn.TransformerDecoder(layer, num_layers=config.num_layers)
        self.output = nn.Linear(d, out_dim)  # FaceFormer: vertice_map_r, zero-initialised
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def _style(self, style: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        if self.style_map is None:
            if style is not None:
                raise ValueError("this decoder was built with style_dim=0 but got a style")
            return torch.zeros(batch, 1, self.config.d_model, device=device)
        if style is None:
            raise ValueError("this decoder needs a style vector")
        return self.style_map(style)[:, None, :]

    def _decode(self, inputs: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        batch, length = inputs.shape[:2]
        tgt_mask = _self_attention_mask(self.config, length, batch, inputs.device)
        memory_mask = alignment_mask(length, memory.shape[1], self.config.alignment).to(inputs.device)
        hidden = self.decoder(self.positional(inputs), memory, tgt_mask=tgt_mask, memory_mask=memory_mask)
        return self.output(hidden)

    def forward(
        self, memory: torch.Tensor, targets: torch.Tensor, style: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher forcing: frame ``t`` is predicted from ``targets[:, :t]`` (offsets) and the memory."""
        batch = targets.shape[0]
        memory = self.audio_map(memory)
        previous = torch.cat([torch.zeros_like(targets[:, :1]), targets[:, :-1]], dim=1)
        inputs = self.motion_map(previous) + self._style(style, batch, targets.device)
        return self._decode(inputs, memory)

    def rollout(
        self, memory: torch.Tensor, num_frames: int, style: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Autoregressive inference: each frame's prediction is the next frame's input."""
        batch = memory.shape[0]
        memory = self.audio_map(memory)
        style_embedding = self._style(style, batch, memory.device)
        previous = torch.zeros(batch, 1, self.out_dim, device=memory.device)
        outputs = []
        for _ in range(num_frames):
            inputs = self.motion_map(previous) + style_embedding
            step = self._decode(inputs, memory)[:, -1:]
            outputs.append(step)
            previous = torch.cat([previous, step], dim=1)
        return torch.cat(outputs, dim=1)


class CausalTransformerEncoder(nn.Module):
    """Encoder-only causal transformer: ``[B, T, input_dim] -> [B, T, d_model]`` with the same
    periodic positional encoding and causal masks as :class:`SequenceDecoder` (no cross-attention).
    The alignment field of the config is unused."""

    def __init__(self, config: SequenceConfig, input_dim: int):
        super().__init__()
        self.config = config
        self.input_map = nn.Linear(input_dim, config.d_model)
        self.positional = PeriodicPositionalEncoding(
            config.d_model, config.period, config.max_len, config.dropout
        )
        layer = nn.TransformerEncoderLayer(
            d_model=config.d_model,
            nhead=config.num_heads,
            dim_feedforward=config.ffn_dim,
            dropout=config.dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=config.num_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length = x.shape[:2]
        mask = _self_attention_mask(self.config, length, batch, x.device)
        return self.encoder(self.positional(self.input_map(x)), mask=mask)
