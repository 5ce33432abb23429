"""Read what ``gsbench metrics`` scores: videos or frame folders, mask folders, 16 kHz WAV audio."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np

from gsbench.errors import MediaError
from gsbench.ffmpeg import ffmpeg_exe

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def _probe_video(path: Path) -> tuple[int, int, float]:
    """(width, height, fps) parsed from ``ffmpeg -i`` (no ffprobe here)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    match = re.search(r"Stream #\S+.*Video:.*?(\d{2,5})x(\d{2,5})", proc.stderr)
    if match is None:
        raise MediaError("no video stream found", path=path, fix="pass an mp4 or a folder of frames")
    fps_match = re.search(r"([\d.]+) fps", proc.stderr) or re.search(r"([\d.]+) tbr", proc.stderr)
    fps = float(fps_match.group(1)) if fps_match else 25.0
    return int(match.group(1)), int(match.group(2)), fps


def read_video(path: Path) -> tuple[np.ndarray, float]:
    """[T, H, W, 3] uint8 RGB frames and fps of a video file, decoded with ffmpeg."""
    path = Path(path)
    width, height, fps = _probe_video(path)
    proc = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
    )
    if proc.returncode != 0:
        raise MediaError(
            f"ffmpeg could not decode it: {proc.stderr.decode(errors='replace')[-300:]}",
            path=path,
            fix="re-encode it as H.264 mp4",
        )
    frame_bytes = width * height * 3
    count = len(proc.stdout) // frame_bytes
    if count == 0:
        raise MediaError("video has no frames", path=path, fix="check the file")
    frames = np.frombuffer(proc.stdout[: count * frame_bytes], np.uint8).reshape(count, height, width, 3)
    return frames.copy(), fps


def _frame_order(name: str) -> tuple:
    """Natural order: the digit runs of a name compare as numbers (``frame_2`` before ``frame_10``)."""
    return tuple((1, int(part), "") if part.isdigit() else (0, 0, part) for part in re.split(r"(\d+)", name))


def _image_files(folder: Path) -> list[Path]:
    """The folder's images in frame order: numbers in the names compare as numbers, so ``frame_0 ...
    frame_36`` are read 0, 1, 2, ..., not 0, 1, 10, 11 as text order would (which pairs the wrong
    frames and still gives a plausible PSNR). Names that differ only in zero padding (``frame_1`` and
    ``frame_01``) have no order and are refused."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    files.sort(key=lambda p: (_frame_order(p.stem), p.suffix.lower(), p.name))
    for first, second in zip(files, files[1:], strict=False):
        if _frame_order(first.stem) == _frame_order(second.stem):
            raise MediaError(
                f"frames {first.name} and {second.name} have the same number: their order is ambiguous",
                path=folder,
                fix="keep one file per frame, numbered frame_0 ... or 00000 ...",
            )
    return files


def read_frames(path: Path) -> tuple[np.ndarray, float | None]:
    """Frames ``[T, H, W, 3] uint8 RGB`` of a video file or of a folder of images (in frame order).

    The fps is that of the video, or None for a folder.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return read_video(path)
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise MediaError("folder holds no .png/.jpg frames", path=path, fix="pass a folder of frames")
        frames = []
        for file in files:
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                raise MediaError("cannot decode image", path=file, fix="re-save it as PNG")
            frames.append(image[..., ::-1])
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise MediaError(f"frames differ in size {sorted(shapes)}", path=path, fix="use one resolution")
        return np.stack(frames), None
    raise MediaError(
        "not a video file or a folder of frames",
        path=path,
        fix=f"pass a {'/'.join(VIDEO_SUFFIXES)} file or a folder of .png/.jpg frames",
    )


def read_masks(folder: Path) -> np.ndarray:
    """[T, H, W] bool from a folder of mask images (in frame order; > 127 in the first channel is head)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MediaError("mask folder not found", path=folder, fix="pass the folder of per-frame masks")
    files = _image_files(folder)
    if not files:
        raise MediaError(
            "mask folder holds no .png/.jpg", path=folder, fix="pass the folder of per-frame masks"
        )
    masks = []
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise MediaError("cannot decode mask", path=file, fix="re-save it as PNG")
        masks.append(image > 127)
    return np.stack(masks)


def read_audio_16k(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz in [-1, 1] from a WAV (other rates resampled, channels averaged)."""
    from math import gcd

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    path = Path(path)
    if not path.is_file():
        raise MediaError("audio file not found", path=path, fix="pass the test sequence's audio.wav")
    try:
        rate, data = wavfile.read(path)
    except ValueError as exc:
        raise MediaError(f"cannot read WAV ({exc})", path=path, fix="convert it to 16-bit PCM WAV") from exc
    if data.dtype == np.int16:
        audio = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        audio = data.astype(np.float32) / 2147483648.0
    elif data.dtype == np.uint8:
        audio = (data.astype(np.float32) - 128.0) / 128.0
    else:
        audio = data.astype(np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if rate != 16000:
        g = gcd(int(rate), 16000)
        audio = resample_poly(audio, 16000 // g, int(rate) // g).astype(np.float32)
    return audio
