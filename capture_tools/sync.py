"""Temporal synchronization of the rig cameras to the master microphone.

Convention: ``sync_offset_s`` of a camera is the master-clock time of that camera's frame 0 (and of
sample 0 of its camera-mic track, which shares the video's clock). Camera frame ``i`` is therefore at
master time ``sync_offset_s + i / fps``.

Audio path: GCC-PHAT (Knapp & Carter 1976) between the camera-mic track ``c`` and the master track
``m``. With ``c(τ) = m(τ + offset)`` the generalized cross-correlation

    R(k) = IFFT( C*(f) M(f) / |C*(f) M(f)|^β )(k)                                   (GCC-PHAT, β=1)

peaks at ``k = offset · fs``. The peak is located to a fraction of a sample by evaluating R on a grid
``upsample`` times finer around the integer peak (directly from the spectrum: the band-limited
interpolation) and fitting a parabola through the three top values.
Confidence is ``1 - second_peak / peak`` (second peak: the highest value outside ±``guard`` samples
of the main one): near 1 for a clean, unique peak, near 0 for noise or periodic signals.

Visual fallback for a camera without a mic track: the mean brightness of every frame; the largest
upward step (a flash or lights-on) is located to a fraction of a frame from the partially lit frame(s)
under a box-exposure model (frame ``k`` integrates light over ``[k, k + 1)`` frame times). Its master
time comes from the
audio-synced cameras that see the same event (so any bias of the crossing rule cancels), or, when no
camera has audio, from the strongest onset in the master track (a clap with the flash).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from gsbench.errors import StageError


@dataclass(frozen=True)
class SyncParams:
    max_offset_s: float = 2.0  # search range of |offset|
    upsample: int = 16  # sub-sample grid of the GCC-PHAT peak
    phat_beta: float = 1.0
    band_hz: tuple[float, float] = (80.0, 7000.0)  # frequencies that carry speech; others are zeroed
    min_confidence: float = 0.25
    guard_s: float = 0.002  # exclusion zone around the main peak when looking for the second one
    min_event_step: float = 8.0  # brightness step (0..255) a visual event must exceed
    min_event_snr: float = 6.0  # ... and its ratio to the median absolute frame-to-frame change


@dataclass(frozen=True)
class AudioSync:
    offset_s: float
    confidence: float
    peak: float
    lags_s: np.ndarray  # [L] correlation around the peak, for the report plot
    correlation: np.ndarray  # [L]


def gcc_phat(
    camera: np.ndarray,
    master: np.ndarray,
    sample_rate: int,
    params: SyncParams = SyncParams(),
    master_spectra: dict[int, np.ndarray] | None = None,
) -> AudioSync:
    """Offset (s) of ``camera`` relative to ``master`` such that ``camera(τ) ≈ master(τ + offset)``.

    ``master_spectra``: a dict the caller keeps for one master track (keyed by FFT size), so the
    cameras of a take share the master's FFT."""
    camera = np.asarray(camera, np.float64)
    n = len(camera) + len(master)
    n_fft = 1 << int(np.ceil(np.log2(n)))
    spec_c = scipy.fft.rfft(camera - camera.mean(), n_fft)
    if master_spectra is not None and n_fft in master_spectra:
        spec_m = master_spectra[n_fft]
    else:
        master = np.asarray(master, np.float64)
        spec_m = scipy.fft.rfft(master - master.mean(), n_fft)
        if master_spectra is not None:
            master_spectra[n_fft] = spec_m
    cross = np.conj(spec_c) * spec_m
    magnitude = np.abs(cross)
    weight = np.where(magnitude > 1e-12 * magnitude.max(), magnitude, np.inf) ** params.phat_beta
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    in_band = (freqs >= params.band_hz[0]) & (freqs <= min(params.band_hz[1], sample_rate / 2))
    cross = np.where(in_band, cross / weight, 0.0)

    corr = scipy.fft.irfft(cross, n_fft)
    max_lag = int(min(params.max_offset_s * sample_rate, n_fft // 2 - 1))
    lags = np.arange(-max_lag, max_lag + 1)
    values = corr[lags % n_fft]
    best = int(np.argmax(values))
    peak = float(values[best])
    guard = max(1, int(params.guard_s * sample_rate))
    outside = np.ones(len(values), bool)
    outside[max(0, best - guard) : best + guard + 1] = False
    second = float(values[outside].max()) if outside.any() else 0.0
    confidence = float(np.clip(1.0 - max(second, 0.0) / peak, 0.0, 1.0)) if peak > 0 else 0.0

    # Sub-sample peak: R evaluated on a grid `upsample` times finer around the integer peak, directly
    # from the one-sided spectrum (the band-limited interpolation that zero-padding would give).
    up = params.upsample
    fine = lags[best] + np.arange(-2 * up, 2 * up + 1) / up
    fine_values = band_limited_correlation(cross, n_fft, lags[best] - 2.0, 1.0 / up, len(fine))
    k = int(np.argmax(fine_values))
    delta = 0.0
    if 0 < k < len(fine_values) - 1:
        y0, y1, y2 = fine_values[k - 1], fine_values[k], fine_values[k + 1]
        denominator = y0 - 2 * y1 + y2
        delta = 0.5 * (y0 - y2) / denominator if denominator < 0 else 0.0
    offset_s = (fine[k] + delta / up) / sample_rate
    window = slice(max(0, best - 40), best + 41)
    return AudioSync(
        offset_s=float(offset_s),
        confidence=confidence,
        peak=peak,
        lags_s=lags[window] / sample_rate,
        correlation=values[window].astype(np.float32),
    )


def band_limited_correlation(
    cross: np.ndarray, n_fft: int, first_lag: float, step: float, count: int
) -> np.ndarray:
    """``R(first_lag + j · step)`` for ``j < count``: the inverse real DFT of the one-sided spectrum
    ``cross`` (``[n_fft // 2 + 1]``) evaluated at fractional lags (samples),

        R(τ) = Σ_k w_k Re(X_k e^{2πi k τ / n_fft}),  w_k = 1 for k = 0 and n_fft / 2, else 2, over n_fft.

    The phases advance by one factor per grid step (``e^{2πi k step / n_fft}``): two complex
    exponentials per bin instead of ``count`` (the ``[count, bins]`` matrix of exponentials was most
    of the sync stage's time), and only non-zero bins are summed. Same sum, to rounding."""
    bins = np.flatnonzero(cross)
    weights = np.where((bins == 0) | (bins == n_fft // 2), 1.0, 2.0) / n_fft
    terms = weights * cross[bins] * np.exp(2j * np.pi * bins * (first_lag / n_fft))
    advance = np.exp(2j * np.pi * bins * (step / n_fft))
    values = np.empty(count)
    for j in range(count):
        values[j] = terms.sum().real
        terms *= advance
    return values


@dataclass(frozen=True)
class VisualEvent:
    time_s: float  # in the camera's own clock
    step: float  # brightness levels before -> after
    snr: float


def frame_brightness(frames: np.ndarray) -> np.ndarray:
    """Mean luma per frame, ``[T]`` in 0..255, from ``[T, H, W, 3]`` RGB."""
    weights = np.array([0.299, 0.587, 0.114])
    return frames.reshape(len(frames), -1, 3).mean(axis=1) @ weights


def find_visual_event(
    brightness: np.ndarray, fps: float, params: SyncParams = SyncParams()
) -> VisualEvent | None:
    """The largest upward brightness step, located to sub-frame precision; None when there is none."""
    b = np.asarray(brightness, np.float64)
    if len(b) < 4:
        return None
    diff = np.diff(b)
    noise = float(np.median(np.abs(diff))) + 1e-6
    # A step may be spread over two frames (partial exposure): score two-frame rises.
    rise2 = b[2:] - b[:-2]
    i = int(np.argmax(rise2))  # rise from frame i to frame i + 2
    lo_idx = i
    hi_idx = i + 2
    before = b[max(0, lo_idx - 3) : lo_idx + 1]
    after = b[hi_idx : hi_idx + 3]
    low, high = float(np.median(before)), float(np.median(after))
    step = high - low
    snr = step / noise
    if step < params.min_event_step or snr < params.min_event_snr:
        return None
    # Box-exposure model: frame k integrates light over [k, k + 1) frame times. Frame i is dark and
    # frame i + 2 fully lit; the lit fraction f of frame i + 1 puts the onset at i + 2 - f.
    lit_fraction = float(np.clip((b[lo_idx + 1] - low) / step, 0.0, 1.0))
    onset = hi_idx - lit_fraction
    return VisualEvent(time_s=onset / fps, step=step, snr=snr)


def master_onset_s(master: np.ndarray, sample_rate: int) -> float:
    """Time of the strongest energy onset in the master track (a clap), for the no-audio fallback."""
    hop = max(1, sample_rate // 1000)
    energy = np.convolve(np.asarray(master, np.float64) ** 2, np.ones(hop * 5) / (hop * 5), mode="same")[
        ::hop
    ]
    onset = np.diff(np.log(energy + 1e-10))
    return float((int(np.argmax(onset)) + 1) * hop / sample_rate)


def require_confidence(result: AudioSync, params: SyncParams, where: str, path: str) -> None:
    if result.confidence < params.min_confidence:
        raise StageError(
            f"{where}: sync confidence {result.confidence:.2f} is below the threshold "
            f"{params.min_confidence:.2f} (GCC-PHAT peak {result.peak:.3f})",
            path=path,
            fix="check that the camera-mic track records the same sound as the master mic, "
            "or lower --sync-min-confidence",
        )
