"""The audio-encoder interface, the two frame alignments, and the offline (no-weights) encoders."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from avatars import audio_features
from gsbench.errors import InputError

NATIVE_RATE = audio_features.FEATURE_RATE  # 50 Hz: hop 320 at 16 kHz (wav2vec2/HuBERT/DeepSpeech alike)


def interpolate_features(features: np.ndarray, rate: float, fps: float, num_frames: int) -> np.ndarray:
    """``[num_frames, D]``: ``features [K, D]`` (frame k at ``k / rate`` s) linearly interpolated to
    the video frame times ``t / fps`` (FaceFormer's ``linear_interpolation``; edges held)."""
    features = np.asarray(features, dtype=np.float32)
    source_t = np.arange(features.shape[0]) / rate
    target_t = np.arange(num_frames) / fps
    out = np.empty((num_frames, features.shape[1]), np.float32)
    for d in range(features.shape[1]):
        out[:, d] = np.interp(target_t, source_t, features[:, d])
    return out


def window_features(
    features: np.ndarray, rate: float, fps: float, num_frames: int, window: int = 16
) -> np.ndarray:
    """``[num_frames, window, D]``: per video frame, ``window`` native frames centred on it
    (``c - window//2 .. c + window//2 - 1`` with ``c = round(t / fps * rate)``), zero beyond the
    signal (ER-NeRF's DeepSpeech windows: 16 frames, 8 each side)."""
    features = np.asarray(features, dtype=np.float32)
    centres = np.round(np.arange(num_frames) / fps * rate).astype(np.int64)
    index = centres[:, None] + (np.arange(window) - window // 2)[None, :]
    valid = (index >= 0) & (index < features.shape[0])
    out = features[np.clip(index, 0, features.shape[0] - 1)]
    out[~valid] = 0.0
    return out


class AudioEncoder(abc.ABC):
    """One speech encoder: ``encode(audio_16k) -> [K, dim]`` at ``rate`` Hz."""

    name: str
    dim: int
    rate: float = NATIVE_RATE
    pretrained: bool = False

    @property
    def id(self) -> str:
        """Stable id for results: name + weight sha256 prefix, or the offline feature's parameters."""
        return self.name

    @abc.abstractmethod
    def encode(self, audio: np.ndarray) -> np.ndarray:
        """``[K, dim]`` float32 features of ``audio [N]`` (16 kHz mono float)."""

    def _encode_cached(self, audio: np.ndarray, cache: Any) -> np.ndarray:
        if cache is None:
            return self.encode(audio)
        return cache.get_or_compute(self, audio)

    def video_rate(self, audio: np.ndarray, fps: float, num_frames: int, cache: Any = None) -> np.ndarray:
        """FaceFormer alignment: ``[num_frames, dim]`` (native features interpolated to ``fps``)."""
        return interpolate_features(self._encode_cached(audio, cache), self.rate, fps, num_frames)

    def windows(
        self, audio: np.ndarray, fps: float, num_frames: int, window: int = 16, cache: Any = None
    ) -> np.ndarray:
        """ER-NeRF alignment: ``[num_frames, window, dim]`` zero-padded windows."""
        return window_features(self._encode_cached(audio, cache), self.rate, fps, num_frames, window)


class LogMelEncoder(AudioEncoder):
    """Offline default: 80 log-mel bands at 50 Hz (``avatars.audio_features.log_mel``); no weights."""

    pretrained = False

    def __init__(self, n_mels: int = 80):
        self.config = audio_features.LogMelConfig(n_mels=n_mels)
        self.dim = n_mels
        self.name = "logmel50" if n_mels == 80 else f"filterbank{n_mels}"

    @property
    def id(self) -> str:
        c = self.config
        return f"{self.name}(n_mels={c.n_mels},win={c.win_length},hop={c.hop_length},no-weights)"

    def encode(self, audio: np.ndarray) -> np.ndarray:
        return audio_features.log_mel(audio, self.config)


OFFLINE_ENCODERS: dict[str, Any] = {
    "logmel50": lambda: LogMelEncoder(80),
    # DeepSpeech-shaped offline feature (29 dims, as DeepSpeech 0.1.0's character logits): 29 log-mel bands
    "filterbank29": lambda: LogMelEncoder(29),
}


def open_encoder(name: str, weights: Any = None) -> AudioEncoder:
    """The encoder called ``name``; raises a ``GsbenchError`` when it cannot be used here."""
    if name in OFFLINE_ENCODERS:
        return OFFLINE_ENCODERS[name]()
    raise InputError(
        f"audio encoder {name!r} is not available",
        fix=f"use one of: {', '.join(OFFLINE_ENCODERS)} (pretrained encoders need registered weights)",
    )


def resolve_encoder(preferred: str, fallback: str, weights: Any = None) -> tuple[AudioEncoder, str | None]:
    """``preferred`` when usable, else the offline ``fallback`` and the reason (for ``info()``)."""
    try:
        return open_encoder(preferred, weights), None
    except Exception as error:  # noqa: BLE001 - any reason the pretrained encoder is unusable is reported
        reason = f"{preferred} unavailable ({error}); using offline {fallback}"
        return open_encoder(fallback, weights), reason
