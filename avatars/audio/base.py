"""The audio-encoder interface, the two frame alignments, and the offline (no-weights) encoders."""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avatars import audio_features
from gsbench.errors import InputError, WeightsError

logger = logging.getLogger("avatars.audio")

NATIVE_RATE = audio_features.FEATURE_RATE  # 50 Hz: hop 320 at 16 kHz (wav2vec2/HuBERT/DeepSpeech alike)
SAMPLE_RATE = audio_features.SAMPLE_RATE  # 16 kHz: every encoder's input
SILENCE_PEAK = 1e-4  # -80 dBFS: a peak below this is a silent recording, not speech


class EncoderUnavailable(WeightsError):
    """The pretrained encoder is simply absent here (weights not registered, no imported features):
    the one case :func:`resolve_encoder` answers with the offline fallback. A registered folder that is
    broken (sha256 changed, other architecture, missing file) raises other errors, never this one."""


def check_audio(audio: np.ndarray, source: str | Callable[[], str] | None = None) -> np.ndarray:
    """``audio`` as ``[N]`` float32 (16 kHz mono assumed): ``[N, C]`` / ``[C, N]`` are mixed down
    (logged); empty, non-finite or silent audio raises :class:`InputError` naming ``source``."""

    def name() -> str:
        return (source() if callable(source) else source) or "audio"

    audio = np.asarray(audio)
    if audio.ndim == 2 and min(audio.shape) > 1:
        channel_axis = 1 if audio.shape[1] <= audio.shape[0] else 0
        logger.info("%s: %d channels mixed down to mono", name(), audio.shape[channel_axis])
        audio = audio.mean(axis=channel_axis)
    audio = np.ascontiguousarray(audio.reshape(-1) if audio.ndim <= 2 else audio, dtype=np.float32)
    if audio.ndim != 1:
        raise InputError(f"{name()}: audio of shape {audio.shape} is not [N] or [N, channels]")
    if audio.size == 0:
        raise InputError(f"{name()}: the audio is empty (0 samples)", fix="pass the sequence's speech")
    if not np.isfinite(audio).all():
        raise InputError(f"{name()}: the audio has NaN/inf samples", fix="re-export the recording")
    peak = float(np.abs(audio).max())
    if peak < SILENCE_PEAK:
        raise InputError(
            f"{name()}: the audio is silent (peak {peak:.1e} < {SILENCE_PEAK:g}, -80 dBFS; "
            f"{audio.size / SAMPLE_RATE:.2f} s)",
            fix="check the microphone track of this sequence",
        )
    return audio


def prepare_audio(audio: np.ndarray, sample_rate: int, source: str = "audio") -> np.ndarray:
    """``[N]`` float32 16 kHz mono of ``audio`` (``[N]`` or ``[N, C]``) at ``sample_rate``: mixed down,
    resampled (polyphase, ``scipy.signal.resample_poly``; logged) and checked by :func:`check_audio`."""
    audio = check_audio(audio, source)
    if int(sample_rate) != SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(sample_rate), SAMPLE_RATE)
        logger.info("%s: resampled from %d Hz to %d Hz", source, sample_rate, SAMPLE_RATE)
        audio = resample_poly(audio.astype(np.float64), SAMPLE_RATE // g, int(sample_rate) // g)
        audio = check_audio(audio.astype(np.float32), source)
    return audio


def load_audio(path: str | Path) -> np.ndarray:
    """A WAV file (any sample rate, PCM or float, mono or multi-channel) as ``[N]`` float32 16 kHz mono."""
    from gsbench.media import read_wav_samples

    data, rate = read_wav_samples(path, fix=f"ffmpeg -i {path} -ac 1 -ar 16000 out.wav")
    return prepare_audio(data, rate, str(path))


def interpolate_features(features: np.ndarray, rate: float, fps: float, num_frames: int) -> np.ndarray:
    """``[num_frames, D]``: ``features [K, D]`` (frame k at ``k / rate`` s) linearly interpolated to
    the video frame times ``t / fps``, edges held.

    On the dataset's clock (frame ``t`` at ``t / fps``). FaceFormer's ``linear_interpolation`` instead
    stretches the K features over the T frames (``F.interpolate(size=T, align_corners=True)``), which maps
    the last feature onto the last frame; with ``K = 2T`` at 25 fps the two differ by up to one native
    frame (20 ms) at the end of a sequence. Ours keeps audio and video in sync on the shared clock."""
    features = np.asarray(features, dtype=np.float32)
    source_t = np.arange(features.shape[0]) / rate
    target_t = np.arange(num_frames) / fps
    out = np.empty((num_frames, features.shape[1]), np.float32)
    for d in range(features.shape[1]):
        out[:, d] = np.interp(target_t, source_t, features[:, d])
    return out


def interpolate_features_torch(features, rate: float, fps: float, num_frames: int):
    """Torch twin of :func:`interpolate_features` for ``features [B, K, D]`` (differentiable):
    ``[B, num_frames, D]`` sampled at ``t / fps`` s, frame ``k`` at ``k / rate`` s, edges held."""
    import torch

    count = features.shape[1]
    position = torch.arange(num_frames, dtype=torch.float64, device=features.device) * (rate / fps)
    position = position.clamp(0.0, count - 1)
    lower = position.floor().long()
    upper = (lower + 1).clamp(max=count - 1)
    weight = (position - lower).to(features.dtype)[None, :, None]
    return features[:, lower] * (1.0 - weight) + features[:, upper] * weight


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


def frame_pairs(features: np.ndarray, rate: float, fps: float, num_frames: int) -> np.ndarray:
    """``[num_frames, r, D]`` with ``r = rate / fps``: native frames ``r t .. r t + r - 1`` per video
    frame ``t`` (FaceFormer's ``enc_dec_mask`` for 50 Hz audio and 25 fps), zero beyond the signal."""
    ratio = rate / fps
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise InputError(
            f"{rate:g} Hz features cannot be paired with {fps:g} fps video ({ratio:.3f} per frame)",
            fix="use video_rate (interpolation) or windows for this frame rate",
        )
    ratio = round(ratio)
    features = np.asarray(features, dtype=np.float32)
    out = np.zeros((num_frames * ratio, features.shape[1]), np.float32)
    keep = min(out.shape[0], features.shape[0])
    out[:keep] = features[:keep]
    return out.reshape(num_frames, ratio, features.shape[1])


class AudioEncoder(abc.ABC):
    """One speech encoder: ``encode(audio_16k) -> [K, dim]`` at ``rate`` Hz."""

    name: str
    dim: int
    rate: float = NATIVE_RATE
    pretrained: bool = False
    cacheable: bool = True  # False: ``encode`` is already a file lookup (imported features)

    @property
    def id(self) -> str:
        """Stable id for results: name + weight sha256 prefix, or the offline feature's parameters."""
        return self.name

    @abc.abstractmethod
    def encode(self, audio: np.ndarray) -> np.ndarray:
        """``[K, dim]`` float32 features of ``audio [N]`` (16 kHz mono float)."""

    def _checked(self, audio: np.ndarray, cache: Any) -> np.ndarray:
        """:func:`check_audio`, naming the sequence's file when the dataset cache knows it."""

        def source() -> str:
            if cache is not None and hasattr(cache, "describe"):
                from avatars.audio.cache import audio_hash

                return cache.describe(audio_hash(np.asarray(audio, np.float32)))
            return f"audio array of shape {np.shape(audio)}"

        return check_audio(audio, source)

    def _encode_cached(self, audio: np.ndarray, cache: Any) -> np.ndarray:
        audio = self._checked(audio, cache)
        if cache is None:
            return self.encode(audio)
        return cache.get_or_compute(self, audio)

    def features(self, audio: np.ndarray, cache: Any = None) -> np.ndarray:
        """``[K, dim]`` native-rate features of ``audio`` (checked, through ``cache`` when given)."""
        return self._encode_cached(audio, cache)

    def video_rate(self, audio: np.ndarray, fps: float, num_frames: int, cache: Any = None) -> np.ndarray:
        """FaceFormer alignment: ``[num_frames, dim]`` (native features interpolated to ``fps``)."""
        return interpolate_features(self._encode_cached(audio, cache), self.rate, fps, num_frames)

    def windows(
        self, audio: np.ndarray, fps: float, num_frames: int, window: int = 16, cache: Any = None
    ) -> np.ndarray:
        """ER-NeRF alignment: ``[num_frames, window, dim]`` zero-padded windows."""
        return window_features(self._encode_cached(audio, cache), self.rate, fps, num_frames, window)

    def pairs(self, audio: np.ndarray, fps: float, num_frames: int, cache: Any = None) -> np.ndarray:
        """FaceFormer's BIWI / HiCoDe alignment: ``[num_frames, rate / fps, dim]``, video frame ``t``
        gets native frames ``r t .. r t + r - 1`` (``r = rate / fps``, an integer: 2 at 25 fps), the
        tokens its alignment mask lets it see; zero beyond the signal."""
        return frame_pairs(self._encode_cached(audio, cache), self.rate, fps, num_frames)


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


PRETRAINED_ENCODERS: dict[str, str] = {
    "wav2vec2-base-960h": "wav2vec 2.0 base, fine-tuned on LibriSpeech 960 h (GaussianSpeech, FaceFormer)",
    "hubert-large-ls960-ft": "HuBERT large, fine-tuned on LibriSpeech 960 h (HiCoDe)",
    "deepspeech-0.1.0": "DeepSpeech 0.1.0 character logits, imported per sequence (Audio-Plane, ER-NeRF)",
}
"""Pretrained encoders: the two Hugging Face ones load from a registered folder, DeepSpeech's features
are imported per dataset (``gsbench audio import-features``)."""

ENCODER_NAMES: tuple[str, ...] = (*PRETRAINED_ENCODERS, *OFFLINE_ENCODERS)


def open_encoder(name: str, weights: Any = None, *, cache: Any = None, **options: Any) -> AudioEncoder:
    """The encoder called ``name``.

    ``weights`` is the weight registry (``benchmark.weights.WeightRegistry``) the Hugging Face encoders
    are found in; ``cache`` the dataset's feature cache, where imported features (DeepSpeech) are found.
    ``options`` go to the encoder (``output="extract_features"`` for the wav2vec 2.0 / HuBERT TCN
    output, ``device``). Raises :class:`EncoderUnavailable` when the encoder is simply absent here, and
    other ``GsbenchError``s when what is registered is broken.
    """
    if name in OFFLINE_ENCODERS:
        return OFFLINE_ENCODERS[name]()
    if name == "deepspeech-0.1.0":
        from avatars.audio.imported import open_imported

        return open_imported(name, cache)
    if name in PRETRAINED_ENCODERS:
        from avatars.audio.pretrained import open_pretrained

        return open_pretrained(name, weights, **options)
    raise InputError(f"unknown audio encoder {name!r}", fix=f"use one of: {', '.join(ENCODER_NAMES)}")


def resolve_encoder(
    preferred: str, fallback: str, weights: Any = None, *, cache: Any = None, **options: Any
) -> tuple[AudioEncoder, str | None]:
    """``preferred`` when usable, else the offline ``fallback`` and the reason (for ``info()``).

    Only an *absent* encoder falls back (:class:`EncoderUnavailable`: weights not registered, no
    registry given, no imported features); a broken registration (sha256 changed, other architecture,
    missing file, stale or partial import) raises, so it is fixed rather than silently replaced.
    Pass ``cache=method.audio_cache``: DeepSpeech's imported features are found through it.
    """
    try:
        return open_encoder(preferred, weights, cache=cache, **options), None
    except EncoderUnavailable as error:
        reason = f"{preferred} unavailable ({error}); using offline {fallback}"
        logger.info(reason)
        return open_encoder(fallback, weights), reason


DEFAULT_FALLBACKS: dict[str, str] = {
    "wav2vec2-base-960h": "logmel50",
    "hubert-large-ls960-ft": "logmel50",
    "deepspeech-0.1.0": "filterbank29",
}
"""The offline encoder each pretrained one is replaced by when absent (method-specs 0.3)."""


@dataclasses.dataclass(frozen=True)
class EncoderStatus:
    name: str
    state: str  # "usable" | "absent" (the fallback is used) | "broken" (an error until fixed)
    detail: str  # the encoder id when usable, else the reason
    fix: str = ""
    fallback: str | None = None


def encoder_status(name: str, weights: Any = None, cache: Any = None) -> EncoderStatus:
    """Whether encoder ``name`` can be opened here (registry ``weights``, dataset ``cache``), without
    loading a model; for ``gsbench doctor``, ``weights list`` and ``audio encoders``."""
    from gsbench.errors import GsbenchError

    fallback = DEFAULT_FALLBACKS.get(name)
    try:
        encoder = open_encoder(name, weights, cache=cache)
    except EncoderUnavailable as error:
        reason = str(error).split(" (fix: ")[0]
        return EncoderStatus(name, "absent", f"{reason}; methods use {fallback}", error.fix or "", fallback)
    except GsbenchError as error:
        return EncoderStatus(name, "broken", str(error).split(" (fix: ")[0], error.fix or "", fallback)
    return EncoderStatus(name, "usable", encoder.id, "", fallback)
