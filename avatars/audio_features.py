"""Offline 50 Hz audio features: log-mel filterbank energies and MFCCs (no pretrained network).

This is the encoder methods fall back to when a pretrained speech encoder (HuBERT, wav2vec 2.0,
DeepSpeech) is not available, and the one the ``retrieval`` baseline uses. It is named
``logmel50`` / ``mfcc50`` in results so a leaderboard never passes it off as a learned encoder.

Framing follows the 3D talking-head code bases (ER-NeRF, TalkingGaussian): 16 kHz audio, hop 320
samples (20 ms, 50 Hz), so audio frame ``k`` is centred at ``k * 0.02`` s and a 25 fps video frame
``t`` covers audio frames ``2t`` and ``2t + 1``. The window is 25 ms Hann (400 samples) zero-padded to
an FFT of 512; 80 mel bands (HTK mel scale) between 20 Hz and 7.6 kHz; ``log(energy + 1e-6)``.
MFCCs are the orthonormal DCT-II of the log-mel bands (as python_speech_features / HTK do).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from scipy.fft import dct

SAMPLE_RATE = 16000
HOP_LENGTH = 320  # 20 ms -> 50 Hz
FEATURE_RATE = SAMPLE_RATE / HOP_LENGTH  # 50.0


@dataclasses.dataclass(frozen=True)
class LogMelConfig:
    sample_rate: int = SAMPLE_RATE
    hop_length: int = HOP_LENGTH
    win_length: int = 400  # 25 ms
    n_fft: int = 512
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float = 7600.0
    log_floor: float = 1e-6

    @property
    def encoder_id(self) -> str:
        return f"logmel50(n_mels={self.n_mels},win={self.win_length},hop={self.hop_length},no-weights)"


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.cache
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular HTK-mel filters ``[n_mels, n_fft // 2 + 1]`` (peak 1)."""
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank.flags.writeable = False
    return bank


def num_feature_frames(num_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Feature frames for ``num_samples`` samples: one per hop, centred framing (``ceil(N / hop)``)."""
    return max(1, -(-int(num_samples) // hop_length))


def log_mel(audio: np.ndarray, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """Log-mel energies ``[K, n_mels]`` float32 at 50 Hz of ``audio [N]`` (16 kHz mono float).

    Frame ``k`` is the window centred at sample ``k * hop`` (the signal is zero-padded by half a window
    at both ends), so ``K = ceil(N / hop)`` and feature time ``k / 50`` s lines up with video time.
    """
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    num_frames = num_feature_frames(audio.shape[0], config.hop_length)
    half = config.win_length // 2
    padded = np.pad(audio, (half, half + config.hop_length * num_frames))
    starts = np.arange(num_frames) * config.hop_length
    frames = padded[starts[:, None] + np.arange(config.win_length)[None, :]]  # [K, win]
    frames = frames * np.hanning(config.win_length + 1)[:-1]  # periodic Hann
    power = np.abs(np.fft.rfft(frames, n=config.n_fft, axis=1)) ** 2  # [K, n_fft/2+1]
    bank = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
    return np.log(power @ bank.T + config.log_floor).astype(np.float32)


def mfcc(audio: np.ndarray, num_coefficients: int = 13, config: LogMelConfig = LogMelConfig()) -> np.ndarray:
    """MFCCs ``[K, num_coefficients]`` at 50 Hz: orthonormal DCT-II of :func:`log_mel`."""
    return dct(log_mel(audio, config).astype(np.float64), type=2, axis=1, norm="ortho")[
        :, :num_coefficients
    ].astype(np.float32)


def frame_windows(
    features: np.ndarray,
    num_video_frames: int,
    fps: float,
    window: int = 16,
    feature_rate: float = FEATURE_RATE,
) -> np.ndarray:
    """Per video frame, ``window`` feature frames around it: ``[T, window, D]``.

    Video frame ``t`` (time ``t / fps``) is centred on feature index ``c = round(t / fps * rate)``;
    the window is ``c - window // 2 .. c + window // 2 - 1`` (the DeepSpeech layout of ER-NeRF: 16
    frames, 8 each side), with edge frames repeated beyond the signal.
    """
    features = np.asarray(features)
    centres = np.round(np.arange(num_video_frames) / fps * feature_rate).astype(np.int64)
    offsets = np.arange(window) - window // 2
    index = np.clip(centres[:, None] + offsets[None, :], 0, features.shape[0] - 1)
    return features[index]
