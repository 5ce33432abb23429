"""ffmpeg I/O for raw rig media: probe, decode frames, extract audio, write WAV.

There is no ffprobe here (imageio-ffmpeg ships none), so :func:`probe_video` parses the stream lines
of ``ffmpeg -i`` and counts frames with a stream-copy pass (fast: no decoding). Decoding goes through
ffmpeg-python with ``cmd=ffmpeg_exe()`` into raw pipes.

Time convention: a video's frame ``i`` is at ``i / fps`` seconds of that file's own clock, and its
audio track (the camera mic) starts at 0 of the same clock, as ffmpeg decodes mp4 edit lists
(AAC priming samples are dropped by the demuxer).
"""

from __future__ import annotations

import re
import subprocess
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from gsbench.errors import MediaError
from gsbench.ffmpeg import ffmpeg_exe
from gsbench.io import atomic_path


@dataclass(frozen=True)
class VideoInfo:
    path: str
    fps: float
    width: int
    height: int
    num_frames: int
    duration_s: float
    has_audio: bool
    audio_sample_rate: int | None
    codec: str

    def to_dict(self) -> dict:
        return asdict(self)


_VIDEO_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<codec>[^\s,]+).*?, (?P<w>\d{2,5})x(?P<h>\d{2,5})")
_FPS = re.compile(r"(?P<fps>\d+(?:\.\d+)?)(?P<k>k?) (?:fps|tbr)")
_AUDIO_LINE = re.compile(r"Stream #\d+:\d+.*?: Audio: [^,]+, (?P<rate>\d+) Hz")
_DURATION = re.compile(r"Duration: (?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)")


def _run_ffmpeg(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True)


def _first_error_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "rror" in line or "nvalid" in line or "not found" in line:
            return line
    return lines[-1] if lines else "unknown ffmpeg error"


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def folder_images(path: Path) -> list[Path]:
    """The frames of a camera stored as an image folder (``00000.jpg ...``), in name order."""
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise MediaError(
            "camera folder holds no images",
            path=path,
            fix=f"put the frames there ({', '.join(IMAGE_SUFFIXES)})",
        )
    return images


def probe_video(path: str | Path, folder_fps: float | None = None) -> VideoInfo:
    """fps, resolution, frame count, duration and audio presence of one video file, or of an image
    folder (a camera stored as ``00000.jpg ...``: no audio, rate ``folder_fps``, rig.yaml's)."""
    path = Path(path)
    if not path.exists():
        raise MediaError("video file is missing", path=path)
    if path.is_dir():
        import cv2

        images = folder_images(path)
        first = cv2.imread(str(images[0]), cv2.IMREAD_UNCHANGED)
        if first is None:
            raise MediaError("cannot decode image", path=images[0])
        if not folder_fps:
            raise MediaError(
                "an image folder has no frame rate of its own", path=path, fix="set fps in rig.yaml"
            )
        return VideoInfo(
            path=str(path),
            fps=float(folder_fps),
            width=int(first.shape[1]),
            height=int(first.shape[0]),
            num_frames=len(images),
            duration_s=len(images) / float(folder_fps),
            has_audio=False,
            audio_sample_rate=None,
            codec="images",
        )
    # One ffmpeg run: the input's stream lines on stderr (they come before the output's), and one
    # framecrc line per video packet (= frame for camera codecs) on stdout, without decoding; unlike
    # the "frame=" progress line this does not depend on the ffmpeg version.
    counted = _run_ffmpeg(["-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
    stderr = counted.stderr.decode("utf-8", "replace")
    video = _VIDEO_LINE.search(stderr)
    if video is None:
        raise MediaError(
            f"not a readable video ({_first_error_line(stderr)})",
            path=path,
            fix="re-export or re-copy the file; a truncated mp4 has no index (moov atom)",
        )
    line = stderr[video.start() : stderr.find("\n", video.start())]
    fps_match = _FPS.search(line)
    if fps_match is None:
        raise MediaError("video stream has no frame rate", path=path)
    fps = float(fps_match["fps"]) * (1000.0 if fps_match["k"] else 1.0)
    audio = _AUDIO_LINE.search(stderr)
    duration = _DURATION.search(stderr)
    duration_s = (
        (int(duration["h"]) * 3600 + int(duration["m"]) * 60 + float(duration["s"])) if duration else 0.0
    )
    if counted.returncode != 0:
        raise MediaError(f"video stream cannot be read ({_first_error_line(stderr)})", path=path)
    num_frames = sum(1 for line in counted.stdout.splitlines() if line.strip() and not line.startswith(b"#"))
    _check_frame_count(path, stderr, num_frames, duration_s, fps)
    return VideoInfo(
        path=str(path),
        fps=fps,
        width=int(video["w"]),
        height=int(video["h"]),
        num_frames=num_frames,
        duration_s=duration_s,
        has_audio=audio is not None,
        audio_sample_rate=int(audio["rate"]) if audio else None,
        codec=video["codec"],
    )


# Demuxers of still images: ffmpeg opens an image renamed .mp4 as a one-frame "video".
_IMAGE_DEMUXER = re.compile(r"Input #\d+, (?P<demuxer>\w+_pipe|image2)\b")
# What ffmpeg's mov demuxer says when a file's index lists packets that are not (wholly) in the file:
# an mp4 written with +faststart (index first) and cut short still opens and copies the frames it has.
_TRUNCATED = ("partial file", "corrupt input packet", "Packet corrupt")
MAX_MISSING_FRAMES = 2  # declared (duration x fps) minus readable frames tolerated (container rounding)


def _check_frame_count(path: Path, stderr: str, num_frames: int, duration_s: float, fps: float) -> None:
    """Refuse a stream whose readable frames do not match what the file declares.

    A cut-short file must not pass as a shorter take: the frames stage would then silently place fewer
    frames on the master timeline. The container's duration covers every stream (audio may run up to
    an AAC frame longer than video), hence the tolerance of :data:`MAX_MISSING_FRAMES` where the header
    states no frame count."""
    image = _IMAGE_DEMUXER.search(stderr)
    if image is not None:
        raise MediaError(
            f"is a still image ({image['demuxer']}), not a video",
            path=path,
            fix="put the camera's video recording here",
        )
    if num_frames == 0:
        raise MediaError("video has no frames", path=path)
    if num_frames == 1 or duration_s <= 0:
        raise MediaError(
            f"video stream has {num_frames} frame(s) and a duration of {duration_s:g} s",
            path=path,
            fix="put the camera's whole recording of the take here",
        )
    truncated = next((marker for marker in _TRUNCATED if marker in stderr), None)
    declared, source = _declared_frames(path), "its index declares"
    if declared <= 0:
        declared, source = int(round(duration_s * fps)), f"it declares {duration_s:g} s x {fps:g} fps ="
    if truncated is not None or declared - num_frames > MAX_MISSING_FRAMES:
        raise MediaError(
            f"truncated or corrupt: {num_frames} readable frames, {source} {declared}"
            + (f" (ffmpeg: {truncated})" if truncated else ""),
            path=path,
            fix="re-copy the file from the camera (the copy was cut short)",
        )


def _declared_frames(path: Path) -> int:
    """The video stream's own frame count as its header states it (mp4: the sample table), which a
    copy cut short still carries; 0 when the container states none. The container's duration is no
    substitute: it spans the audio track too, which may be longer than the video."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


def read_frames(
    path: str | Path, width: int, height: int, frame_indices: np.ndarray | None = None
) -> np.ndarray:
    """Decode every frame (or the listed ones) of a video or image folder: ``[T, H, W, 3] uint8`` RGB."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, width, height, frame_indices)
    # One decoder thread: camera frames are small, and the stages already decode one video per core;
    # ffmpeg's frame threads cost ~40% more CPU here for the same pixels.
    process = (
        ffmpeg.input(str(path), threads=1)
        .output("pipe:", format="rawvideo", pix_fmt="rgb24", vsync="passthrough", map="0:v:0")
        .global_args("-hide_banner", "-nostdin", "-loglevel", "error")
    )
    try:
        out, _ = process.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as exc:
        raise MediaError(
            f"cannot decode ({_first_error_line(exc.stderr.decode('utf-8', 'replace'))})", path=path
        ) from exc
    frame_bytes = width * height * 3
    if len(out) % frame_bytes:
        raise MediaError(f"decoded size is not a whole number of {width}x{height} frames", path=path)
    frames = np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)
    if frame_indices is not None:
        frames = frames[np.asarray(frame_indices)]
    return frames


def _read_folder(path: Path, width: int, height: int, frame_indices: np.ndarray | None) -> np.ndarray:
    import cv2

    images = folder_images(path)
    if frame_indices is not None:
        images = [images[int(i)] for i in np.asarray(frame_indices)]
    frames = np.empty((len(images), height, width, 3), np.uint8)
    for index, image_path in enumerate(images):
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise MediaError("cannot decode image", path=image_path, fix="re-copy the camera's frames")
        if image.shape[:2] != (height, width):
            raise MediaError(
                f"image is {image.shape[1]}x{image.shape[0]}, the camera's first frame is {width}x{height}",
                path=image_path,
                fix="every frame of a camera must have one size",
            )
        frames[index] = image[:, :, ::-1]
    return frames


def read_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """The first audio track of any media file as mono float32 at ``sample_rate`` (``[N]``)."""
    path = Path(path)
    if not path.exists():
        raise MediaError("audio file is missing", path=path)
    process = (
        ffmpeg.input(str(path))
        .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate, map="0:a:0")
        .global_args("-hide_banner", "-nostdin", "-loglevel", "error")
    )
    try:
        out, _ = process.run(cmd=ffmpeg_exe(), capture_stdout=True, capture_stderr=True)
    except ffmpeg.Error as exc:
        raise MediaError(
            f"no readable audio track ({_first_error_line(exc.stderr.decode('utf-8', 'replace'))})", path=path
        ) from exc
    audio = np.frombuffer(out, np.float32).copy()
    if audio.size == 0:
        raise MediaError("audio track is empty", path=path)
    return audio


def read_audio_many(paths: list[str | Path], sample_rate: int = 16000) -> list[np.ndarray]:
    """:func:`read_audio` of several files with one ffmpeg process (one output file per input).

    Starting ffmpeg costs more than decoding a few seconds of a camera-mic track, so the sync stage
    decodes a take's cameras together. When the joint run fails, each file is decoded alone so that the
    error names the file at fault."""
    import tempfile

    paths = [Path(p) for p in paths]
    if len(paths) <= 1 or not all(p.exists() for p in paths):
        return [read_audio(p, sample_rate) for p in paths]
    with tempfile.TemporaryDirectory(prefix="gsbench-audio-") as folder:
        args = ["-loglevel", "error", "-y"]
        for path in paths:
            args += ["-i", str(path)]
        outputs = [Path(folder) / f"{index}.f32" for index in range(len(paths))]
        for index, output in enumerate(outputs):
            args += ["-map", f"{index}:a:0", "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1"]
            args += ["-ar", str(sample_rate), str(output)]
        result = _run_ffmpeg(args)
        audios = [np.fromfile(o, np.float32) if o.exists() else np.empty(0, np.float32) for o in outputs]
    if result.returncode != 0 or any(a.size == 0 for a in audios):
        return [read_audio(p, sample_rate) for p in paths]
    return audios


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = 16000) -> None:
    """16-bit PCM mono WAV, written atomically."""
    pcm = (np.clip(np.asarray(audio, np.float64), -1.0, 1.0) * 32767.0).round().astype("<i2")
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(sample_rate)
            handle.writeframes(pcm.tobytes())


def probe_audio(path: str | Path) -> tuple[float, int]:
    """``(duration_s, sample_rate)`` of an audio file's first audio track."""
    path = Path(path)
    if not path.exists():
        raise MediaError("audio file is missing", path=path)
    stderr = _run_ffmpeg(["-i", str(path)]).stderr.decode("utf-8", "replace")
    audio = _AUDIO_LINE.search(stderr)
    duration = _DURATION.search(stderr)
    if audio is None or duration is None:
        raise MediaError(
            f"not a readable audio file ({_first_error_line(stderr)})",
            path=path,
            fix="write the master mic as 16-bit PCM WAV",
        )
    return int(duration["h"]) * 3600 + int(duration["m"]) * 60 + float(duration["s"]), int(audio["rate"])
