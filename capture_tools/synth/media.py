"""Writing the rig's media: camera mp4s (h264 yuv420p + the camera mic as AAC) and 16-bit WAVs.

ffmpeg runs with ``-fflags +bitexact`` and no metadata so the same frames give the same bytes.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from gsbench.errors import DependencyError, MediaError
from gsbench.ffmpeg import ffmpeg_exe
from gsbench.io import atomic_path


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = 16000) -> None:
    """16-bit PCM mono WAV, written atomically."""
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, sample_rate, pcm)


def write_video(
    path: str | Path,
    frames: np.ndarray,  # [T, H, W, 3] uint8 RGB
    fps: float,
    audio: np.ndarray | None = None,  # [N] float in [-1, 1], N = T / fps * sample_rate
    sample_rate: int = 16000,
    crf: int = 18,
    threads: int = 1,
) -> None:
    """Encode ``frames`` (+ ``audio`` as AAC) to an mp4, atomically."""
    frames = np.ascontiguousarray(frames, np.uint8)
    count, height, width, _ = frames.shape
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="gsbench-synth-") as workdir, atomic_path(path) as tmp:
        # frames through a file, not stdin: subprocess feeds a pipe 512 bytes per system call
        raw = Path(workdir) / "frames.rgb"
        frames.tofile(raw)
        command = [
            ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}",
            "-i", str(raw),
        ]  # fmt: skip
        if audio is not None:
            wav = Path(workdir) / "mic.wav"
            write_wav(wav, audio, sample_rate)
            command += ["-i", str(wav)]
        command += [
            "-map", "0:v:0", "-c:v", "libx264", "-preset", "ultrafast", "-crf", str(crf),
            "-pix_fmt", "yuv420p", "-threads", str(threads), "-g", str(max(1, int(round(fps)))),
        ]  # fmt: skip
        if audio is not None:
            # the fast AAC coder: ~4x less CPU than the default two-loop search, same bitrate
            command += ["-map", "1:a:0", "-c:a", "aac", "-aac_coder", "fast", "-b:a", "128k",
                        "-ar", str(sample_rate)]  # fmt: skip
        command += ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                    "-flags:a", "+bitexact", "-movflags", "+faststart", "-f", "mp4", str(tmp)]  # fmt: skip
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        except OSError as error:
            raise DependencyError(f"cannot run ffmpeg ({error})", fix="apt-get install ffmpeg") from None
        if result.returncode != 0:
            raise MediaError(
                f"ffmpeg failed to encode ({result.stderr.decode(errors='replace').strip()[-400:]})",
                path=path,
                fix="check free disk space and that the folder is writable",
            )


def read_video_frames(path: str | Path) -> np.ndarray:
    """Decode every frame of a video as RGB uint8 [T, H, W, 3] (ffmpeg, no ffprobe needed)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader]
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)


def read_video_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio track of a media file as mono float32 at ``sample_rate``."""
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
               "-map", "0:a:0", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        raise MediaError(
            f"no decodable audio track ({result.stderr.decode(errors='replace').strip()[-300:]})",
            path=path,
            fix="re-generate the session",
        )
    return np.frombuffer(result.stdout, np.float32).copy()
