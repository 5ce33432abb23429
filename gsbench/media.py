"""Media I/O for every layer: probe, decode and encode videos with ffmpeg, read and write WAV files.

There is no ffprobe here (imageio-ffmpeg ships none), so :func:`probe_video` and :func:`probe_audio`
parse the stream lines of ``ffmpeg -i`` (:func:`parse_streams`) and count frames with a stream-copy
pass (fast: no decoding). Decoding goes through ffmpeg into raw pipes; encoding through ffmpeg from a
raw file, with the settings of a :class:`VideoEncoding`.

Time convention: a video's frame ``i`` is at ``i / fps`` seconds of that file's own clock, and its
audio track (a camera mic) starts at 0 of the same clock, as ffmpeg decodes mp4 edit lists (AAC
priming samples are dropped by the demuxer).

Audio in memory is mono float32 in [-1, 1] (16 kHz unless a rate is given); on disk, 16-bit PCM WAV.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from gsbench.errors import DependencyError, MediaError
from gsbench.ffmpeg import ffmpeg_exe
from gsbench.io import atomic_path

SAMPLE_RATE = 16000  # Hz, DESIGN.md: audio is 16 kHz mono
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


# -- ffmpeg ----------------------------------------------------------------------------------------
def run_ffmpeg(args: list[str]) -> subprocess.CompletedProcess:
    """``ffmpeg -hide_banner -nostdin ARGS`` with stdout and stderr captured (bytes)."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True)


def ffmpeg_error_line(stderr: str | bytes) -> str:
    """The line of ffmpeg's stderr that says what went wrong (the last error-like one, else the last)."""
    if isinstance(stderr, bytes):
        stderr = stderr.decode("utf-8", "replace")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if "rror" in line or "nvalid" in line or "not found" in line:
            return line
    return lines[-1] if lines else "unknown ffmpeg error"


@dataclasses.dataclass(frozen=True)
class StreamInfo:
    """What ``ffmpeg -i`` prints about an input's first video and audio streams (None: not stated)."""

    video_codec: str | None
    width: int | None
    height: int | None
    fps: float | None  # the video stream's "fps" (else "tbr") figure
    audio_sample_rate: int | None
    duration_s: float | None
    image_demuxer: str | None  # set when ffmpeg opened a still image (image2, png_pipe, ...)


_VIDEO_LINE = re.compile(r"Stream #\d+:\d+.*?: Video: (?P<codec>[^\s,]+).*?, (?P<w>\d{2,5})x(?P<h>\d{2,5})")
_FPS = re.compile(r"(?P<fps>\d+(?:\.\d+)?)(?P<k>k?) (?:fps|tbr)")
_AUDIO_LINE = re.compile(r"Stream #\d+:\d+.*?: Audio: [^,]+, (?P<rate>\d+) Hz")
_DURATION = re.compile(r"Duration: (?P<h>\d+):(?P<m>\d+):(?P<s>\d+(?:\.\d+)?)")
# Demuxers of still images: ffmpeg opens an image renamed .mp4 as a one-frame "video".
_IMAGE_DEMUXER = re.compile(r"Input #\d+, (?P<demuxer>\w+_pipe|image2)\b")


def parse_streams(stderr: str) -> StreamInfo:
    """Parse the input section of ``ffmpeg -i``'s stderr (it comes before any output's)."""
    video = _VIDEO_LINE.search(stderr)
    fps = None
    if video is not None:
        line = stderr[video.start() : stderr.find("\n", video.start())]
        fps_match = _FPS.search(line)
        if fps_match is not None:
            fps = float(fps_match["fps"]) * (1000.0 if fps_match["k"] else 1.0)
    audio = _AUDIO_LINE.search(stderr)
    duration = _DURATION.search(stderr)
    image = _IMAGE_DEMUXER.search(stderr)
    return StreamInfo(
        video_codec=video["codec"] if video else None,
        width=int(video["w"]) if video else None,
        height=int(video["h"]) if video else None,
        fps=fps,
        audio_sample_rate=int(audio["rate"]) if audio else None,
        duration_s=(int(duration["h"]) * 3600 + int(duration["m"]) * 60 + float(duration["s"]))
        if duration
        else None,
        image_demuxer=image["demuxer"] if image else None,
    )


def probe_streams(path: str | Path) -> StreamInfo:
    """:func:`parse_streams` of ``ffmpeg -i path`` (no decoding; ffmpeg exits 1: no output named)."""
    return parse_streams(run_ffmpeg(["-i", str(path)]).stderr.decode("utf-8", "replace"))


# -- probing ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
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
        return dataclasses.asdict(self)


def natural_order(name: str) -> tuple:
    """Sort key: the digit runs of a name compare as numbers (``frame_2`` before ``frame_10``)."""
    return tuple((1, int(part), "") if part.isdigit() else (0, 0, part) for part in re.split(r"(\d+)", name))


def folder_images(path: str | Path) -> list[Path]:
    """The image files (.jpg/.jpeg/.png) of a folder of frames, in frame order.

    Numbers in the names compare as numbers, so ``frame_0 ... frame_36`` are read 0, 1, 2, ..., not 0,
    1, 10, 11 as text order would (zero-padded names such as ``00000.jpg`` are in the same order
    either way). Names that differ only in zero padding (``frame_1`` and ``frame_01``) have no order
    and are refused; so is a folder without images."""
    path = Path(path)
    files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    files.sort(key=lambda p: (natural_order(p.stem), p.suffix.lower(), p.name))
    for first, second in zip(files, files[1:], strict=False):
        if natural_order(first.stem) == natural_order(second.stem):
            raise MediaError(
                f"frames {first.name} and {second.name} have the same number: their order is ambiguous",
                path=path,
                fix="keep one file per frame, numbered frame_0 ... or 00000 ...",
            )
    if not files:
        raise MediaError(
            "folder holds no images",
            path=path,
            fix=f"put the frames there ({', '.join(IMAGE_SUFFIXES)})",
        )
    return files


def probe_video(path: str | Path, folder_fps: float | None = None) -> VideoInfo:
    """fps, resolution, frame count, duration and audio presence of one video file, or of an image
    folder (a camera stored as ``00000.jpg ...``: no audio, rate ``folder_fps``, rig.yaml's).

    A still image renamed as video, a stream of one frame or of no duration, and a file whose
    readable frames fall short of what it declares (a copy cut short) raise :class:`MediaError`."""
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
    counted = run_ffmpeg(["-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
    stderr = counted.stderr.decode("utf-8", "replace")
    info = parse_streams(stderr)
    if info.video_codec is None:
        raise MediaError(
            f"not a readable video ({ffmpeg_error_line(stderr)})",
            path=path,
            fix="re-export or re-copy the file; a truncated mp4 has no index (moov atom)",
        )
    if info.fps is None:
        raise MediaError("video stream has no frame rate", path=path)
    duration_s = info.duration_s or 0.0
    if counted.returncode != 0:
        raise MediaError(f"video stream cannot be read ({ffmpeg_error_line(stderr)})", path=path)
    num_frames = sum(1 for line in counted.stdout.splitlines() if line.strip() and not line.startswith(b"#"))
    _check_frame_count(path, stderr, info, num_frames, duration_s)
    return VideoInfo(
        path=str(path),
        fps=info.fps,
        width=info.width,
        height=info.height,
        num_frames=num_frames,
        duration_s=duration_s,
        has_audio=info.audio_sample_rate is not None,
        audio_sample_rate=info.audio_sample_rate,
        codec=info.video_codec,
    )


# What ffmpeg's mov demuxer says when a file's index lists packets that are not (wholly) in the file:
# an mp4 written with +faststart (index first) and cut short still opens and copies the frames it has.
_TRUNCATED = ("partial file", "corrupt input packet", "Packet corrupt")
MAX_MISSING_FRAMES = 2  # declared (duration x fps) minus readable frames tolerated (container rounding)


def _check_frame_count(path: Path, stderr: str, info: StreamInfo, num_frames: int, duration_s: float) -> None:
    """Refuse a stream whose readable frames do not match what the file declares.

    A cut-short file must not pass as a shorter take: the frames stage would then silently place fewer
    frames on the master timeline. The container's duration covers every stream (audio may run up to
    an AAC frame longer than video), hence the tolerance of :data:`MAX_MISSING_FRAMES` where the header
    states no frame count."""
    if info.image_demuxer is not None:
        raise MediaError(
            f"is a still image ({info.image_demuxer}), not a video",
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
        declared, source = (
            int(round(duration_s * info.fps)),
            f"it declares {duration_s:g} s x {info.fps:g} fps =",
        )
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


def probe_audio(path: str | Path) -> tuple[float, int]:
    """``(duration_s, sample_rate)`` of an audio file's first audio track."""
    path = Path(path)
    if not path.exists():
        raise MediaError("audio file is missing", path=path)
    stderr = run_ffmpeg(["-i", str(path)]).stderr.decode("utf-8", "replace")
    info = parse_streams(stderr)
    if info.audio_sample_rate is None or info.duration_s is None:
        raise MediaError(
            f"not a readable audio file ({ffmpeg_error_line(stderr)})",
            path=path,
            fix="write the master mic as 16-bit PCM WAV",
        )
    return info.duration_s, info.audio_sample_rate


# -- decoding --------------------------------------------------------------------------------------
def read_frames(
    path: str | Path, width: int, height: int, frame_indices: np.ndarray | None = None
) -> np.ndarray:
    """Decode every frame (or the listed ones) of a video or image folder: ``[T, H, W, 3] uint8`` RGB.

    Video frames come as the file stores them (``-vsync passthrough``: none duplicated or dropped)."""
    import ffmpeg

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
        raise MediaError(f"cannot decode ({ffmpeg_error_line(exc.stderr)})", path=path) from exc
    frame_bytes = width * height * 3
    if len(out) % frame_bytes:
        raise MediaError(f"decoded size is not a whole number of {width}x{height} frames", path=path)
    frames = np.frombuffer(out, np.uint8).reshape(-1, height, width, 3)
    if frame_indices is not None:
        frames = frames[np.asarray(frame_indices)]
    return frames


def iter_frames(
    path: str | Path,
    size: tuple[int, int],  # (width, height) of the stream
    *,
    fps: float | None = None,
    scale_to: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yield a video's frames one at a time as ``[H, W, 3] uint8`` RGB, optionally resampled to a
    constant ``fps`` (ffmpeg ``fps`` filter, by timestamps: variable-frame-rate input included) and
    scaled to ``scale_to`` (width, height; area filter). For long videos that do not fit in memory."""
    path = Path(path)
    width, height = scale_to or size
    filters = [f"fps={fps:g}"] if fps else []
    filters += [f"scale={width}:{height}:flags=area"] if scale_to else []
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(path)]
    command += ["-map", "0:v:0", *(["-vf", ",".join(filters)] if filters else [])]
    command += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    frame_bytes = width * height * 3
    try:
        while True:
            data = process.stdout.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
        stderr = process.stderr.read().decode("utf-8", "replace")
        process.wait()
    if process.returncode not in (0, -9) and stderr.strip():
        raise MediaError(f"cannot decode ({ffmpeg_error_line(stderr)})", path=path)


def _read_folder(path: Path, width: int, height: int, frame_indices: np.ndarray | None) -> np.ndarray:
    images = folder_images(path)
    if frame_indices is not None:
        images = [images[int(i)] for i in np.asarray(frame_indices)]
    frames = np.empty((len(images), height, width, 3), np.uint8)
    for index, image_path in enumerate(images):
        image = read_image(image_path, fix="re-copy the camera's frames")
        if image.shape[:2] != (height, width):
            raise MediaError(
                f"image is {image.shape[1]}x{image.shape[0]}, the camera's first frame is {width}x{height}",
                path=image_path,
                fix="every frame of a camera must have one size",
            )
        frames[index] = image
    return frames


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """``([T, H, W, 3] uint8 RGB, fps)`` of a video file: size and rate from ``ffmpeg -i`` (25 fps where
    the file states none), frames from :func:`read_frames`."""
    path = Path(path)
    if not path.is_file():
        raise MediaError("video file not found", path=path, fix="pass an mp4 or a folder of frames")
    info = probe_streams(path)
    if info.video_codec is None:
        raise MediaError("no video stream found", path=path, fix="pass an mp4 or a folder of frames")
    frames = read_frames(path, info.width, info.height)
    if len(frames) == 0:
        raise MediaError("video has no frames", path=path, fix="check the file")
    return frames, info.fps or 25.0


def read_video_or_frames(path: str | Path) -> tuple[np.ndarray, float | None]:
    """Frames ``[T, H, W, 3] uint8 RGB`` of a video file (:data:`VIDEO_SUFFIXES`) or of a folder of
    images (:func:`read_image_folder`), and the video's fps (None for a folder)."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return read_video(path)
    if path.is_dir():
        return read_image_folder(path), None
    raise MediaError(
        "not a video file or a folder of frames",
        path=path,
        fix=f"pass a {'/'.join(VIDEO_SUFFIXES)} file or a folder of .png/.jpg frames",
    )


def read_image(path: str | Path, fix: str = "re-save it as PNG") -> np.ndarray:
    """``[H, W, 3] uint8`` RGB of an image file (a view of cv2's BGR array)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError("cannot decode image", path=path, fix=fix)
    return image[:, :, ::-1]


def read_mask(path: str | Path, fix: str = "re-save it as PNG") -> np.ndarray:
    """``[H, W]`` bool of a mask image: > 127 in the first channel is head (foreground)."""
    import cv2

    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise MediaError("cannot decode mask", path=path, fix=fix)
    return mask > 127


def read_image_folder(path: str | Path) -> np.ndarray:
    """``[T, H, W, 3] uint8`` RGB of a folder of frames (:func:`folder_images` order); one size for all."""
    frames = [read_image(file) for file in folder_images(path)]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise MediaError(f"frames differ in size {sorted(shapes)}", path=path, fix="use one resolution")
    return np.stack(frames)


def read_mask_folder(path: str | Path) -> np.ndarray:
    """``[T, H, W]`` bool of a folder of mask images (frame order; > 127 in the first channel is head)."""
    if not Path(path).is_dir():
        raise MediaError("mask folder not found", path=path, fix="pass the folder of per-frame masks")
    return np.stack([read_mask(file) for file in folder_images(path)])


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first audio track of any media file (video or audio) as mono float32 at ``sample_rate``
    (``[N]``), decoded and resampled by ffmpeg."""
    import ffmpeg

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
        raise MediaError(f"no readable audio track ({ffmpeg_error_line(exc.stderr)})", path=path) from exc
    audio = np.frombuffer(out, np.float32).copy()
    if audio.size == 0:
        raise MediaError("audio track is empty", path=path)
    return audio


def read_audio_many(paths: list[str | Path], sample_rate: int = SAMPLE_RATE) -> list[np.ndarray]:
    """:func:`read_audio` of several files with one ffmpeg process (one output file per input).

    Starting ffmpeg costs more than decoding a few seconds of a camera-mic track, so the sync stage
    decodes a take's cameras together. When the joint run fails, each file is decoded alone so that the
    error names the file at fault."""
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
        result = run_ffmpeg(args)
        audios = [np.fromfile(o, np.float32) if o.exists() else np.empty(0, np.float32) for o in outputs]
    if result.returncode != 0 or any(a.size == 0 for a in audios):
        return [read_audio(p, sample_rate) for p in paths]
    return audios


# -- WAV -------------------------------------------------------------------------------------------
def to_pcm16(audio: np.ndarray, precision: type = np.float64) -> np.ndarray:
    """``round(clip(audio, -1, 1) * 32767)`` as int16, the scaling computed in ``precision``."""
    scaled = np.clip(np.asarray(audio, precision), -1.0, 1.0) * precision(32767.0)
    return np.round(scaled).astype("<i2")


def write_wav(
    path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE, *, precision: type = np.float64
) -> None:
    """16-bit PCM mono WAV (the canonical 44-byte header), written atomically.

    ``precision``: the float type the scaling to 16 bits runs in (:func:`to_pcm16`). float64 is exact;
    the synthetic rig generator passes float32, as it always has, so that a seed keeps its bytes."""
    pcm = to_pcm16(audio, precision)
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(sample_rate)
            handle.writeframes(pcm.tobytes())


def read_wav_samples(
    path: str | Path, *, fix: str = "convert it to 16-bit PCM WAV"
) -> tuple[np.ndarray, int]:
    """``(samples, sample_rate)`` of a WAV file as stored: float32 in [-1, 1], ``[N]`` or ``[N, C]``.
    PCM sample ``k`` of ``b`` bits maps to ``k / 2^(b-1)`` (8-bit, unsigned: ``(k - 128) / 128``)."""
    rate, data = _read_wav_file(Path(path), fix)
    return _pcm_to_float(data), rate


def read_wav(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    *,
    resample: bool = False,
    fix: str = "convert it to 16-bit PCM WAV",
) -> np.ndarray:
    """``[N]`` float32 mono in [-1, 1] from a WAV file; channels are averaged.

    Without ``resample`` the file must be 16-bit PCM at ``sample_rate`` (the dataset's audio.wav), else
    :class:`MediaError`; with it any PCM (8/16/32-bit) or float WAV is accepted and other rates are
    resampled (polyphase, ``scipy.signal.resample_poly``). 16-bit samples map to ``k / 32768``."""
    path = Path(path)
    rate, data = _read_wav_file(path, fix)
    if not resample and (data.dtype != np.int16 or rate != sample_rate):
        bits = f"{8 * data.dtype.itemsize}-bit {'float' if data.dtype.kind == 'f' else 'PCM'}"
        raise MediaError(
            f"expected 16-bit PCM at {sample_rate} Hz, got {bits} at {rate} Hz", path=path, fix=fix
        )
    audio = _pcm_to_float(data)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if rate != sample_rate:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(rate), sample_rate)
        audio = resample_poly(audio, sample_rate // g, int(rate) // g).astype(np.float32)
    return audio


def _read_wav_file(path: Path, fix: str) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    if not path.is_file():
        raise MediaError("audio file not found", path=path, fix=fix)
    try:
        return wavfile.read(path)
    except (ValueError, OSError, EOFError) as error:
        raise MediaError(f"cannot read WAV ({error})", path=path, fix=fix) from error


def _pcm_to_float(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.int16:
        return data.astype(np.float32) / 32768.0
    if data.dtype == np.int32:
        return data.astype(np.float32) / 2147483648.0
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    return data.astype(np.float32)


# -- encoding --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VideoEncoding:
    """How :func:`write_video` encodes: H.264 yuv420p (+ AAC 128 kb/s), and the choices below."""

    x264_preset: str
    crf: int = 18
    threads: int = 1
    keyframe_every_second: bool = False  # -g round(fps): seekable camera files
    pad_to_even: bool = False  # yuv420p needs an even width and height
    aac_coder: str | None = None  # "fast": ~4x less CPU than the default two-loop search, same bitrate
    shortest: bool = False  # stop at the shorter of video and audio
    bitexact: bool = False  # no metadata, bit-exact muxing, index first: the same frames give the same bytes


CAMERA_ENCODING = VideoEncoding("ultrafast", keyframe_every_second=True, aac_coder="fast", bitexact=True)
"""The synthetic rig's camera files (``gsbench synth``)."""
RESULT_ENCODING = VideoEncoding("veryfast", pad_to_even=True, shortest=True)
"""The runner's rendered and side-by-side videos."""


def video_command(
    raw: Path,
    size: tuple[int, int],  # (width, height)
    fps: float,
    out: Path,
    encoding: VideoEncoding,
    audio: Path | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> list[str]:
    """The ffmpeg command :func:`write_video` runs: raw rgb24 frames from ``raw`` (+ ``audio``) to ``out``."""
    width, height = size
    command = [
        ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", str(raw),
    ]  # fmt: skip
    if audio is not None:
        command += ["-i", str(audio)]
    command += ["-map", "0:v:0"]
    if encoding.pad_to_even:
        command += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"]
    command += [
        "-c:v", "libx264", "-preset", encoding.x264_preset, "-crf", str(encoding.crf),
        "-pix_fmt", "yuv420p", "-threads", str(encoding.threads),
    ]  # fmt: skip
    if encoding.keyframe_every_second:
        command += ["-g", str(max(1, int(round(fps))))]
    if audio is not None:
        command += ["-map", "1:a:0", "-c:a", "aac"]
        if encoding.aac_coder:
            command += ["-aac_coder", encoding.aac_coder]
        command += ["-b:a", "128k", "-ar", str(sample_rate)]
        if encoding.shortest:
            command += ["-shortest"]
    if encoding.bitexact:
        command += ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                    "-flags:a", "+bitexact", "-movflags", "+faststart"]  # fmt: skip
    return [*command, "-f", "mp4", str(out)]


def write_video(
    path: str | Path,
    frames: np.ndarray,  # [T, H, W, 3] uint8 RGB
    fps: float,
    audio: np.ndarray | str | Path | None = None,  # [N] float in [-1, 1] at sample_rate, or an audio file
    *,
    sample_rate: int = SAMPLE_RATE,
    encoding: VideoEncoding = CAMERA_ENCODING,
) -> None:
    """Encode ``frames`` (+ ``audio`` as AAC) to an mp4, atomically."""
    frames = np.ascontiguousarray(frames, np.uint8)
    _, height, width, _ = frames.shape
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="gsbench-video-") as workdir, atomic_path(path) as tmp:
        # frames through a file, not stdin: subprocess feeds a pipe 512 bytes per system call
        raw = Path(workdir) / "frames.rgb"
        frames.tofile(raw)
        audio_file = None
        if isinstance(audio, np.ndarray):
            audio_file = Path(workdir) / "audio.wav"
            precision = audio.dtype.type if audio.dtype.kind == "f" else np.float64
            write_wav(audio_file, audio, sample_rate, precision=precision)
        elif audio is not None:
            audio_file = Path(audio)
        command = video_command(raw, (width, height), fps, tmp, encoding, audio_file, sample_rate)
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        except OSError as error:
            raise DependencyError(f"cannot run ffmpeg ({error})", fix="apt-get install ffmpeg") from None
        if result.returncode != 0:
            raise MediaError(
                f"ffmpeg failed to encode ({result.stderr.decode(errors='replace').strip()[-400:]})",
                path=path,
                fix="check free disk space, that the folder is writable and ffmpeg works (`gsbench doctor`)",
            )
