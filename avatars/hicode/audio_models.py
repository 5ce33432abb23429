"""HiCoDe's two audio models, each a FaceFormer (``avatars.sequence.SequenceDecoder``), trained separately.

* **Audio-to-3DMM** (coarse, Eq. 13): audio features -> z_exp(t) per frame; 3dmm(t) = [z_exp(t); z_id] with
  z_id the subject's static identity. Our FLAME stand-in for the paper's BFM 3DMM: z_exp = [expr, jaw_pose],
  z_id = shape.
* **Audio-to-Landmark** (fine, Eq. 14): audio features + the landmarks of 20 random training frames (the
  identity, 478 × 20 points) -> lmds(t), the 478 MediaPipe landmarks of each frame. The identity enters as
  FaceFormer's style embedding (Linear(20·478·3 → d), added to every decoder input); landmarks are the
  pose-free canonical 3D points of :mod:`avatars.hicode.geometry`.

Both use ALiBi-biased causal self-attention, the periodic positional encoding, the "pairs" alignment of 50 Hz
audio to 25 fps frames (frame i sees audio tokens 2i, 2i+1) and a zero-initialised head predicting offsets
from a template (the training mean). Targets are standardised for the MSE (per coefficient for the 3DMM, one
scale for the landmark offsets; ours) and the loss is masked where a landmark was not detected.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import Tensor

from avatars.sequence import SequenceConfig, SequenceDecoder


@dataclasses.dataclass(frozen=True)
class AudioModelConfig:
    d_model: int = 64
    num_heads: int = 4
    num_layers: int = 1
    ffn_dim: int = 128
    epochs: int = 80
    lr: float = 1e-3
    identity_frames: int = 20  # the paper's 20 random frames

    def sequence_config(self) -> SequenceConfig:
        return SequenceConfig(
            d_model=self.d_model,
            num_heads=self.num_heads,
            num_layers=self.num_layers,
            ffn_dim=self.ffn_dim,
            period=25,
            bias="alibi",
            alignment="pairs",
        )


def pair_tokens(features: np.ndarray, num_frames: int) -> np.ndarray:
    """``[2 T, D]``: the first 2T native 50 Hz frames (the last one repeated when the audio is short)."""
    features = np.asarray(features, np.float32)
    need = 2 * num_frames
    if features.shape[0] >= need:
        return features[:need]
    pad = np.repeat(features[-1:], need - features.shape[0], axis=0)
    return np.concatenate([features, pad])


class AudioToSequence(torch.nn.Module):
    """One FaceFormer mapping audio tokens to standardised per-frame targets (template + offsets)."""

    def __init__(
        self,
        config: AudioModelConfig,
        audio_dim: int,
        template: Tensor,  # [D_out]
        scale: Tensor,  # [D_out] or []
        audio_mean: Tensor,  # [audio_dim]
        audio_std: Tensor,  # [audio_dim]
        style_dim: int = 0,
    ):
        super().__init__()
        out_dim = int(template.numel())
        self.decoder = SequenceDecoder(config.sequence_config(), audio_dim, out_dim, style_dim)
        # Copies: the arguments may share storage (e.g. placeholders when loading a checkpoint).
        self.register_buffer("template", template.float().reshape(-1).clone())
        self.register_buffer("scale", scale.float().expand(out_dim).clone())
        self.register_buffer("audio_mean", audio_mean.float().clone())
        self.register_buffer("audio_std", audio_std.float().clone())
        self.register_buffer("style", torch.zeros(style_dim))

    def _memory(self, tokens: Tensor) -> Tensor:
        return ((tokens - self.audio_mean) / self.audio_std)[None]

    def _style(self) -> Tensor | None:
        return self.style[None] if self.style.numel() else None

    def loss(self, tokens: Tensor, targets: Tensor, valid: Tensor | None = None) -> Tensor:
        """Eq. 13 / 14 (MSE), teacher forcing; ``tokens [2T, A]``, ``targets [T, D]``, ``valid [T, D]``."""
        offsets = ((targets - self.template) / self.scale)[None]
        predicted = self.decoder(self._memory(tokens), offsets, self._style())
        error = (predicted - offsets) ** 2
        if valid is None:
            return error.mean()
        return (error * valid[None]).sum() / valid.sum().clamp_min(1)

    @torch.no_grad()
    def predict(self, tokens: Tensor, num_frames: int) -> Tensor:
        """Autoregressive rollout (FaceFormer inference): ``[T, D]`` in target units."""
        offsets = self.decoder.rollout(self._memory(tokens), num_frames, self._style())[0]
        return offsets * self.scale + self.template


def fit_sequence_model(
    model: AudioToSequence,
    sequences: list[tuple[Tensor, Tensor, Tensor | None]],  # (tokens [2T, A], targets [T, D], valid)
    config: AudioModelConfig,
    seed: int,
) -> list[float]:
    """Adam, one sequence per step (FaceFormer's batch 1), ``config.epochs`` passes in seeded order."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    model.train()
    losses = []
    for _ in range(config.epochs):
        epoch = []
        for index in torch.randperm(len(sequences), generator=generator).tolist():
            tokens, targets, valid = sequences[index]
            loss = model.loss(tokens, targets, valid)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch.append(loss.item())
        losses.append(float(np.mean(epoch)))
    model.eval()
    return losses
