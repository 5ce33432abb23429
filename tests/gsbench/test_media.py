"""gsbench.media: probing, decoding and encoding videos, WAV I/O (the one media module of every layer)."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from gsbench import media
from gsbench.errors import MediaError
from gsbench.ffmpeg import ffmpeg_exe

FS = 16000


def _speech_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * FS)
    envelope = np.clip(np.sin(2 * np.pi * 3.3 * np.arange(n) / FS + rng.uniform(0, 6)), 0, None) ** 2
    return (0.3 * rng.normal(size=n) * envelope).astype(np.float32)


def _encode(path: Path, frames: np.ndarray, audio: np.ndarray | None) -> None:
    """H.264 (+ AAC) through the ffmpeg binary, independently of gsbench.media's encoder."""
    height, width = frames.shape[1:3]
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    args += ["-s", f"{width}x{height}", "-r", "25", "-i", "pipe:0"]
    if audio is not None:
        wav = path.with_suffix(".wav")
        wavfile.write(wav, FS, np.round(audio * 32767).astype(np.int16))
        args += ["-i", str(wav), "-c:a", "aac", "-b:a", "128k"]
    args += ["-c:v", "libx264", "-crf", "8", "-preset", "fast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(args, input=frames.tobytes(), check=True)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (20, 48, 64, 3), dtype=np.uint8)
    frames[:] = frames[:, :1, :1]  # flat colours compress losslessly enough to compare
    audio = _speech_like(rng, 0.8)
    _encode(root / "clip.mp4", frames, audio)
    _encode(root / "silent.mp4", frames, None)
    return root, frames, audio


def test_probe_reports_stream_properties(clip):
    root, frames, _ = clip
    info = media.probe_video(root / "clip.mp4")
    assert (info.width, info.height, info.num_frames, info.fps) == (64, 48, 20, 25.0)
    assert info.has_audio and info.audio_sample_rate == FS
    assert abs(info.duration_s - 0.8) < 0.05
    assert not media.probe_video(root / "silent.mp4").has_audio


def test_decode_round_trip(clip):
    root, frames, _ = clip
    decoded = media.read_frames(root / "clip.mp4", 64, 48)
    assert decoded.shape == frames.shape
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 3
    video, fps = media.read_video(root / "clip.mp4")
    assert fps == 25.0 and np.array_equal(video, decoded)
    assert np.array_equal(media.read_frames(root / "clip.mp4", 64, 48, np.array([3, 1]))[0], decoded[3])


def test_camera_mic_track_keeps_its_timing(clip):
    """AAC priming must not shift the mic track (it would bias every sync offset)."""
    root, _, audio = clip
    decoded = media.read_audio(root / "clip.mp4", FS)[: len(audio)]
    lags = np.arange(-200, 201)
    scores = [np.dot(np.roll(decoded, -lag)[300:-300], audio[300:-300]) for lag in lags]
    assert lags[int(np.argmax(scores))] == 0


def test_wav_round_trip(tmp_path):
    signal = np.sin(np.linspace(0, 100, 8000)).astype(np.float32) * 0.5
    media.write_wav(tmp_path / "a.wav", signal, FS)
    assert media.probe_audio(tmp_path / "a.wav") == (pytest.approx(0.5, abs=0.01), FS)
    assert np.abs(media.read_audio(tmp_path / "a.wav", FS) - signal).max() < 1e-3
    assert np.abs(media.read_wav(tmp_path / "a.wav") - signal).max() < 1 / 32767


def test_wav_bytes_are_the_canonical_pcm16_file(tmp_path):
    """44-byte RIFF header (PCM, mono, 16-bit) + little-endian samples round(clip(x) * 32767)."""
    audio = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, 1e-5], np.float64)
    media.write_wav(tmp_path / "a.wav", audio, 8000)
    samples = [0, 16384, -16384, 32767, -32767, 32767, -32767, 0]  # 0.5 * 32767 = 16383.5 -> even: 16384
    data = struct.pack("<8h", *samples)
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data"
    assert (tmp_path / "a.wav").read_bytes() == header + struct.pack("<I", len(data)) + data


def test_pcm16_scaling_precision():
    """float64 scaling is exact; float32 (the synthetic generator's, kept for its bytes) rounds."""
    candidates = np.random.default_rng(1).uniform(-1, 1, 20000).astype(np.float32)
    exact = np.array([round(Fraction(float(x)) * 32767) for x in candidates[:2000]])
    assert np.array_equal(media.to_pcm16(candidates[:2000]), exact)
    differ = media.to_pcm16(candidates) != media.to_pcm16(candidates, np.float32)
    assert 0 < differ.sum() < 50  # rare, one step each
    assert np.abs(media.to_pcm16(candidates).astype(int) - media.to_pcm16(candidates, np.float32)).max() == 1


def test_read_wav_strict_and_resampling(tmp_path):
    tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    wavfile.write(tmp_path / "8k.wav", 8000, np.round(tone * 16000).astype(np.int16))
    wavfile.write(tmp_path / "float.wav", FS, tone.astype(np.float32))
    wavfile.write(
        tmp_path / "stereo.wav", FS, np.stack([np.full(100, 1000), np.full(100, 3000)], 1).astype(np.int16)
    )
    with pytest.raises(MediaError, match="expected 16-bit PCM at 16000 Hz, got 16-bit PCM at 8000 Hz"):
        media.read_wav(tmp_path / "8k.wav")
    with pytest.raises(MediaError, match="got 32-bit float"):
        media.read_wav(tmp_path / "float.wav")
    resampled = media.read_wav(tmp_path / "8k.wav", resample=True)
    assert resampled.dtype == np.float32 and len(resampled) == 16000
    spectrum = np.abs(np.fft.rfft(resampled))
    assert abs(np.argmax(spectrum) * FS / len(resampled) - 440) < 2
    assert np.allclose(media.read_wav(tmp_path / "stereo.wav"), 2000 / 32768)
    with pytest.raises(MediaError, match="audio file not found"):
        media.read_wav(tmp_path / "none.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000junk")
    with pytest.raises(MediaError, match="cannot read WAV"):
        media.read_wav(tmp_path / "junk.wav")


def test_encoder_commands_keep_their_arguments():
    """The camera files and the result videos are encoded with the arguments they always had."""
    camera = media.video_command(
        Path("f.rgb"), (64, 48), 25.0, Path("o.mp4"), media.CAMERA_ENCODING, Path("a.wav")
    )
    assert camera[1:] == [
        "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", "64x48", "-r", "25", "-i", "f.rgb", "-i", "a.wav", "-map", "0:v:0", "-c:v", "libx264",
        "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1", "-g", "25",
        "-map", "1:a:0", "-c:a", "aac", "-aac_coder", "fast", "-b:a", "128k", "-ar", "16000",
        "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart", "-f", "mp4", "o.mp4",
    ]  # fmt: skip
    result = media.video_command(Path("f.rgb"), (65, 49), 30.0, Path("o.mp4"), media.RESULT_ENCODING)
    assert result[1:] == [
        "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", "65x49", "-r", "30", "-i", "f.rgb", "-map", "0:v:0", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1",
        "-f", "mp4", "o.mp4",
    ]  # fmt: skip
    with_audio = media.video_command(
        Path("f"), (64, 48), 25.0, Path("o"), media.RESULT_ENCODING, Path("a.wav")
    )
    assert with_audio[with_audio.index("-c:a") :][:7] == [
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-ar",
        "16000",
        "-shortest",
    ]


def test_write_video_round_trip_and_determinism(tmp_path):
    rng = np.random.default_rng(3)
    frames = np.repeat(rng.integers(0, 255, (10, 1, 1, 3), dtype=np.uint8), 48, 1).repeat(64, 2)
    audio = _speech_like(rng, 0.4)
    media.write_video(tmp_path / "a.mp4", frames, 25.0, audio)
    media.write_video(tmp_path / "b.mp4", frames, 25.0, audio)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()  # bitexact
    info = media.probe_video(tmp_path / "a.mp4")
    assert (info.num_frames, info.width, info.height, info.has_audio) == (10, 64, 48, True)
    decoded, fps = media.read_video(tmp_path / "a.mp4")
    assert fps == 25.0 and np.abs(decoded.astype(int) - frames).mean() < 3
    media.write_wav(tmp_path / "a.wav", audio)
    odd = frames[:, :47, :63]
    media.write_video(tmp_path / "odd.mp4", odd, 25.0, tmp_path / "a.wav", encoding=media.RESULT_ENCODING)
    info = media.probe_video(tmp_path / "odd.mp4")
    assert (info.width, info.height, info.has_audio) == (64, 48, True)  # padded to even for yuv420p
    slow = dataclasses.replace(media.CAMERA_ENCODING, crf=40)
    media.write_video(tmp_path / "c.mp4", frames, 25.0, encoding=slow)
    assert not media.probe_video(tmp_path / "c.mp4").has_audio


def test_parse_streams_reads_ffmpeg_input_lines():
    stderr = (
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':\n"
        "  Duration: 00:01:02.50, start: 0.000000, bitrate: 1000 kb/s\n"
        "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), "
        "1920x1080, 900 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)\n"
        "  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, 128 kb/s\n"
    )
    info = media.parse_streams(stderr)
    assert (info.video_codec, info.width, info.height, info.fps) == ("h264", 1920, 1080, 29.97)
    assert (info.audio_sample_rate, info.duration_s, info.image_demuxer) == (48000, 62.5, None)
    still = media.parse_streams(
        "Input #0, png_pipe, from 'x.mp4':\n  Stream #0:0: Video: png, rgb24, 64x48, 25 tbr\n"
    )
    assert still.image_demuxer == "png_pipe" and still.fps == 25.0 and still.audio_sample_rate is None


def test_frame_folders_are_read_in_frame_order(tmp_path):
    import cv2

    for index in (0, 1, 2, 10, 11):
        image = np.full((8, 8, 3), index * 20, np.uint8)
        cv2.imwrite(str(tmp_path / f"frame_{index}.png"), image)
    frames, fps = media.read_video_or_frames(tmp_path)
    assert fps is None and [int(f[0, 0, 0]) for f in frames] == [0, 20, 40, 200, 220]
    masks = media.read_mask_folder(tmp_path)
    assert masks.shape == (5, 8, 8) and masks[3].all() and not masks[0].any()
    cv2.imwrite(str(tmp_path / "frame_01.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(MediaError, match="order is ambiguous"):
        media.folder_images(tmp_path)
    with pytest.raises(MediaError, match="mask folder not found"):
        media.read_mask_folder(tmp_path / "none")


def test_truncated_and_missing_files_raise_media_errors(clip, tmp_path):
    root, _, _ = clip
    data = (root / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError, match="cut.mp4"):
        media.probe_video(tmp_path / "cut.mp4")
    with pytest.raises(MediaError, match="missing"):
        media.probe_video(tmp_path / "nothing.mp4")
    with pytest.raises(MediaError, match="no readable audio"):
        media.read_audio(root / "silent.mp4")
    with pytest.raises(MediaError, match="not a video file or a folder of frames"):
        media.read_video_or_frames(tmp_path / "x.txt")


def test_iter_frames_streams_resampled_and_scaled(clip):
    root, frames, _ = clip
    streamed = list(media.iter_frames(root / "clip.mp4", (64, 48)))
    assert np.array_equal(np.stack(streamed), media.read_frames(root / "clip.mp4", 64, 48))
    half = list(media.iter_frames(root / "clip.mp4", (64, 48), fps=12.5, scale_to=(32, 24)))
    assert len(half) == 10 and half[0].shape == (24, 32, 3)  # 20 frames at 25 fps = 0.8 s at 12.5 fps
    assert abs(int(half[3].mean()) - int(frames[6].mean())) < 4  # frame k at k / 12.5 s = source frame 2k
