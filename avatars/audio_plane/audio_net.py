"""Audio encoder of Audio-Plane (Sec. 3.2): per-frame DeepSpeech windows -> AudioNet -> AudioAttNet -> ``a``.

The paper: "The raw audio signal is first segmented into overlapping windows of 16 time intervals as VOCA.
Then the pre-trained RNN-based DeepSpeech is employed to extract per-frame audio features. Adjacent features
are further fused into a with a temporal filtering [Neural Voice Puppetry] for inter-frame consistency."
It gives no sizes. The two networks below are the ones of AD-NeRF / RAD-NeRF / ER-NeRF (and the 3DGS
talking heads built on them), which take exactly these ``[16, 29]`` DeepSpeech windows:

* :class:`AudioNet` (ER-NeRF ``AudioNet``): Conv1d 29->32->32->64->64 (kernel 3, stride 2, padding 1,
  LeakyReLU 0.02) over the 16 window frames, then FC 64->64->``dim_aud`` (ER-NeRF: 32).
* :class:`AudioAttNet` (ER-NeRF ``AudioAttNet``, the "temporal filtering"): Conv1d ``dim_aud``->16->8->4->2->1
  over ``seq_len`` = 8 neighbouring frames, Linear(8, 8) + softmax -> weights; ``a`` = weighted sum.

:func:`neighbour_windows` gathers the 8 frames idx-4 .. idx+3 of ER-NeRF's ``get_audio_features``
(att_mode 2), zero beyond the sequence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

SMOOTHING_FRAMES = 8  # ER-NeRF / AD-NeRF AudioAttNet seq_len


class AudioNet(nn.Module):
    """ER-NeRF's per-frame audio network: ``[B, 16, dim_in]`` windows -> ``[B, dim_aud]``."""

    def __init__(self, dim_in: int = 29, dim_aud: int = 32, window: int = 16):
        super().__init__()
        self.window = window
        self.encoder_conv = nn.Sequential(
            nn.Conv1d(dim_in, 32, kernel_size=3, stride=2, padding=1),  # 16 -> 8
            nn.LeakyReLU(0.02, True),
            nn.Conv1d(32, 32, kernel_size=3, stride=2, padding=1),  # 8 -> 4
            nn.LeakyReLU(0.02, True),
            nn.Conv1d(32, 64, kernel_size=3, stride=2, padding=1),  # 4 -> 2
            nn.LeakyReLU(0.02, True),
            nn.Conv1d(64, 64, kernel_size=3, stride=2, padding=1),  # 2 -> 1
            nn.LeakyReLU(0.02, True),
        )
        self.encoder_fc1 = nn.Sequential(nn.Linear(64, 64), nn.LeakyReLU(0.02, True), nn.Linear(64, dim_aud))

    def forward(self, windows: Tensor) -> Tensor:
        x = windows.transpose(1, 2)  # [B, dim_in, 16]
        x = self.encoder_conv(x).mean(-1)  # length is 1 for 16-frame windows (ER-NeRF squeezes it)
        return self.encoder_fc1(x)


class AudioAttNet(nn.Module):
    """ER-NeRF's temporal smoothing: ``[B, seq_len, dim_aud]`` -> ``[B, dim_aud]`` (softmax-weighted sum)."""

    def __init__(self, dim_aud: int = 32, seq_len: int = SMOOTHING_FRAMES):
        super().__init__()
        self.seq_len = seq_len
        channels = (dim_aud, 16, 8, 4, 2, 1)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv1d(c_in, c_out, kernel_size=3, stride=1, padding=1), nn.LeakyReLU(0.02, True)]
        self.attentionConvNet = nn.Sequential(*layers)
        self.attentionNet = nn.Sequential(nn.Linear(seq_len, seq_len), nn.Softmax(dim=1))

    def weights(self, features: Tensor) -> Tensor:
        """``[B, seq_len]`` softmax weights of the neighbouring frames."""
        y = self.attentionConvNet(features.transpose(1, 2))  # [B, 1, seq_len]
        return self.attentionNet(y.reshape(-1, self.seq_len))

    def forward(self, features: Tensor) -> Tensor:
        return (self.weights(features)[..., None] * features).sum(dim=1)


class AudioEncoderNet(nn.Module):
    """``a`` of Eq. 3: AudioNet on each of the 8 neighbouring windows, then AudioAttNet over them."""

    def __init__(self, dim_in: int = 29, dim_aud: int = 32, smoothing: bool = True):
        super().__init__()
        self.audio_net = AudioNet(dim_in, dim_aud)
        self.audio_att_net = AudioAttNet(dim_aud) if smoothing else None
        self.dim_aud = dim_aud
        # Per-channel standardisation of the input features with the training set's statistics (ours):
        # log-mel filterbank values span about [-10, 7], which made ``a`` large enough to saturate Eq. 4's
        # softmax onto one prototype at initialisation (no gradient, audio ignored).
        self.register_buffer("feature_mean", torch.zeros(dim_in))
        self.register_buffer("feature_std", torch.ones(dim_in))

    def set_normalisation(self, windows: Tensor) -> None:
        """Standardise by the mean/std over every frame of ``windows [..., dim_in]``."""
        flat = windows.reshape(-1, windows.shape[-1])
        self.feature_mean.copy_(flat.mean(0))
        self.feature_std.copy_(flat.std(0).clamp(min=1e-3))

    def forward(self, neighbours: Tensor) -> Tensor:
        """neighbours ``[B, 8, 16, dim_in]`` (the frame's window in slot 4) -> ``a`` ``[B, dim_aud]``."""
        neighbours = (neighbours - self.feature_mean) / self.feature_std
        b, k = neighbours.shape[:2]
        features = self.audio_net(neighbours.reshape(b * k, *neighbours.shape[2:])).reshape(b, k, -1)
        if self.audio_att_net is None:
            return features[:, k // 2]
        return self.audio_att_net(features)


def neighbour_windows(windows: np.ndarray, frames: np.ndarray, seq_len: int = SMOOTHING_FRAMES) -> np.ndarray:
    """``[len(frames), seq_len, 16, D]``: the windows of frames ``t - seq_len/2 .. t + seq_len/2 - 1``
    of one sequence (``windows [T, 16, D]``), zero outside it (ER-NeRF ``get_audio_features``)."""
    windows = np.asarray(windows, dtype=np.float32)
    index = np.asarray(frames)[:, None] + (np.arange(seq_len) - seq_len // 2)[None, :]
    valid = (index >= 0) & (index < windows.shape[0])
    out = windows[np.clip(index, 0, windows.shape[0] - 1)]
    out[~valid] = 0.0
    return out


def as_tensor(array: np.ndarray) -> Tensor:
    return torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32)
