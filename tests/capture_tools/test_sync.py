import numpy as np
import pytest

from capture_tools.sync import (
    SyncParams,
    band_limited_correlation,
    find_visual_event,
    gcc_phat,
    require_confidence,
)
from gsbench.errors import StageError

FS = 16000


def fractional_shift(signal: np.ndarray, delay_samples: float) -> np.ndarray:
    """``signal`` delayed by a (fractional) number of samples, band-limited (circular)."""
    freqs = np.fft.rfftfreq(len(signal))
    return np.fft.irfft(np.fft.rfft(signal) * np.exp(-2j * np.pi * freqs * delay_samples), len(signal))


def speech_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Noise bursts with a syllable-rate envelope (what the mics record)."""
    n = int(seconds * FS)
    envelope = np.clip(np.sin(2 * np.pi * 4 * np.arange(n) / FS + rng.uniform(0, 6)), 0, None) ** 2
    return rng.normal(size=n) * envelope


@pytest.mark.parametrize("offset_s", [0.01234567, -0.0375, 0.3, 0.0])
def test_gcc_phat_recovers_sub_sample_offsets(offset_s):
    rng = np.random.default_rng(0)
    master = speech_like(rng, 4.0)
    # camera(τ) = master(τ + offset): the master advanced by the offset, plus its own noise and a reflection
    camera = fractional_shift(master, -offset_s * FS)[: 3 * FS]
    camera = 0.5 * camera + 0.1 * np.roll(camera, 77) + rng.normal(0, 0.05, len(camera))
    result = gcc_phat(camera, master, FS)
    assert abs(result.offset_s - offset_s) * FS < 0.1  # a tenth of a sample (6 µs)
    assert result.confidence > 0.5


def test_unrelated_signals_have_low_confidence_and_raise():
    rng = np.random.default_rng(1)
    result = gcc_phat(rng.normal(size=2 * FS), speech_like(rng, 3.0), FS)
    params = SyncParams()
    assert result.confidence < params.min_confidence
    with pytest.raises(StageError, match="camera cam03, take t0: sync confidence"):
        require_confidence(result, params, "camera cam03, take t0", "takes/t0/cam03.mp4")


def test_visual_event_sub_frame_crossing():
    fps = 25.0
    brightness = np.full(50, 40.0)
    step_time = 20.37 / fps  # the flash starts 37% into frame 20's interval
    for k in range(50):  # each frame integrates over its interval [k, k+1) / fps
        lit = np.clip((k + 1) / fps - step_time, 0, 1 / fps) * fps
        brightness[k] += 120.0 * lit
    brightness += np.random.default_rng(2).normal(0, 0.3, 50)
    event = find_visual_event(brightness, fps)
    assert event is not None
    assert abs(event.time_s - step_time) * fps < 0.02


def test_no_visual_event_in_flat_video():
    brightness = 50 + np.random.default_rng(3).normal(0, 0.5, 60)
    assert find_visual_event(brightness, 25.0) is None


def test_band_limited_correlation_equals_the_direct_inverse_dft():
    rng = np.random.default_rng(4)
    n_fft = 4096
    cross = np.fft.rfft(rng.normal(size=n_fft))
    cross[:40] = 0.0  # out-of-band bins are zero in gcc_phat
    lags = 17.0 + np.arange(-32, 33) / 16
    bins = np.arange(len(cross))
    weights = np.where((bins == 0) | (bins == n_fft // 2), 1.0, 2.0) / n_fft
    direct = (np.exp(2j * np.pi * np.outer(lags, bins) / n_fft) @ (weights * cross)).real
    fast = band_limited_correlation(cross, n_fft, lags[0], 1 / 16, len(lags))
    assert np.allclose(fast, direct, rtol=0, atol=1e-12 * np.abs(direct).max())
    # at integer lags it is the plain inverse FFT
    assert np.allclose(fast[::16], np.fft.irfft(cross, n_fft)[15:20], atol=1e-12)
