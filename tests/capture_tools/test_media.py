import numpy as np
import pytest
from session_factory import FS, encode, speech_like

from capture_tools.media import probe_audio, probe_video, read_audio, read_frames, write_wav
from capture_tools.sync import gcc_phat
from gsbench.errors import MediaError


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (20, 48, 64, 3), dtype=np.uint8)
    frames[:] = frames[:, :1, :1]  # flat colours compress losslessly enough to compare
    audio = speech_like(rng, 0.8)
    encode(root / "clip.mp4", frames, audio)
    encode(root / "silent.mp4", frames, None)
    return root, frames, audio


def test_probe_reports_stream_properties(clip):
    root, frames, _ = clip
    info = probe_video(root / "clip.mp4")
    assert (info.width, info.height, info.num_frames, info.fps) == (64, 48, 20, 25.0)
    assert info.has_audio and info.audio_sample_rate == FS
    assert abs(info.duration_s - 0.8) < 0.05
    assert not probe_video(root / "silent.mp4").has_audio


def test_decode_round_trip(clip):
    root, frames, _ = clip
    decoded = read_frames(root / "clip.mp4", 64, 48)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 3


def test_camera_mic_track_keeps_its_timing(clip):
    """AAC priming must not shift the mic track (it would bias every sync offset)."""
    root, _, audio = clip
    decoded = read_audio(root / "clip.mp4", FS)
    result = gcc_phat(decoded[: len(audio)], audio, FS)
    assert abs(result.offset_s) * FS < 0.5


def test_wav_round_trip(tmp_path):
    signal = np.sin(np.linspace(0, 100, 8000)).astype(np.float32) * 0.5
    write_wav(tmp_path / "a.wav", signal, FS)
    assert probe_audio(tmp_path / "a.wav") == (pytest.approx(0.5, abs=0.01), FS)
    assert np.abs(read_audio(tmp_path / "a.wav", FS) - signal).max() < 1e-3


def test_truncated_and_missing_files_raise_media_errors(clip, tmp_path):
    root, _, _ = clip
    data = (root / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="cut.mp4"):
        probe_video(tmp_path / "cut.mp4")
    with pytest.raises(MediaError, match="missing"):
        probe_video(tmp_path / "nothing.mp4")
    with pytest.raises(MediaError, match="no readable audio"):
        read_audio(root / "silent.mp4")
