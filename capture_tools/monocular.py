"""``gsbench ingest VIDEO -o DATASET``: monocular talking-head videos -> the dataset layout of DESIGN.md.

One video is one subject (a folder or a list of videos: one subject each, named after the file stem).
What it does, in order (issue 26):

1. **probe** every input before anything is written: a readable video stream (not a still image), an
   audio track, a face in some frame (MediaPipe face detection on a low-resolution pass), one frame
   size over all inputs unless ``crop``/``size`` makes them equal. Each failure is one
   :class:`MediaError` naming the file; the output folder is not touched.
2. **frames**: ffmpeg's ``fps`` filter resamples to a constant ``fps`` (25) by timestamps, so
   variable-frame-rate phone videos come out evenly spaced; audio is decoded to 16 kHz mono. With
   ``crop`` the frame is cut to a square that follows the face track (face-box centres, gaps
   interpolated, Gaussian-smoothed over ``track_sigma_s``; side ``crop_scale`` x the median box side,
   constant per video, shifted to stay inside the frame) and resized to ``crop`` px.
3. **sequences**: cut at pauses of the speech (RMS below ``silence_db`` relative to the 95th percentile,
   for at least ``min_pause_s``), each piece ``min_sequence_s``-``max_sequence_s`` long (a piece with no
   pause is cut at ``max_sequence_s``), with one cut forced at ``1 - test_fraction`` of the frames, so
   the split the talking-head field uses for these videos (ER-NeRF / GeneFace / TalkingGaussian: the
   last 1/11 of the frames is the test set) is a split by sequence too. dataset.json ``splits`` holds
   the chosen rule (``split``: ``last-eleventh``, default, or ``sequences``: the rig's seeded split by
   sequence); ``alternative_splits`` holds the other one.
4. **landmarks**: MediaPipe FaceMesh (478 points, tracking.landmarks.detect_landmarks); frames without
   a face are flagged (``<cam>_detected`` false; ``frames_without_face`` per sequence in dataset.json),
   tracking ignores their landmarks and carries the pose over from the nearest tracked frame.
5. **masks** (head and hair, not the torso): MediaPipe selfie segmentation (the person) cut below the
   chin (the lowest FaceMesh point + ``neck_margin`` x the face height), united with the filled FaceMesh
   hull, largest component with holes filled. No hair model ships offline with mediapipe 0.10.21, so
   hair is whatever of the person lies above that line.
6. **background plate**: the per-pixel median over frames where the (dilated) person mask does not
   cover the pixel; pixels never uncovered are inpainted (OpenCV Telea) and their fraction reported.
   ``backgrounds/front.png`` when the dataset has one subject (one camera = one plate); with several
   subjects (different rooms) each plate is in ``reports/monocular/<subject>_plate.png`` only.
7. **track**: monocular FLAME tracking (tracking.fit.monocular) with the focal length estimated, or
   ``focal`` when given; cameras.json is then rewritten with the tracked focal length.

The one camera is ``front``: K = [[f, 0, W/2], [0, f, H/2], [0, 0, 1]], looking down the world -z axis
from (0, 0, d) (d: the median head distance found by tracking), the head model's frame convention.
The whole dataset is rewritten on every run (no per-stage resume, unlike the rig ingest).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsbench import __version__, media
from gsbench.dataset import (
    SCHEMA_VERSION,
    landmarks_path,
    write_cameras_json,
    write_dataset_json,
    write_landmarks,
)
from gsbench.errors import InputError, MediaError
from gsbench.io import folder_lock, remove_stale_temporaries, sha256_file, write_json
from gsbench.progress import log

CAMERA = "front"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class MonocularParams:
    fps: float = 25.0  # the talking-head field's rate (ER-NeRF, GeneFace, HDTF)
    sample_rate: int = 16000
    crop: int | None = None  # square face crop size in px; None: the whole frame
    crop_scale: float = 2.0  # crop side / median face-box side (ours)
    track_sigma_s: float = 0.3  # Gaussian smoothing of the face track (ours)
    size: tuple[int, int] | None = None  # (width, height) resize of the whole frame when not cropping
    jpeg_quality: int = 95
    min_sequence_s: float = 2.0
    max_sequence_s: float = 10.0
    silence_db: float = -30.0  # RMS relative to the 95th percentile (ours)
    min_pause_s: float = 0.15
    test_fraction: float = 1.0 / 11.0  # ER-NeRF / GeneFace / TalkingGaussian
    split: str = "last-eleventh"  # or "sequences"
    split_seed: int = 0
    neck_margin: float = 0.1  # head mask: cut this x face height below the chin (ours)
    plate_frames: int = 60  # frames the background median is taken over
    focal: float | None = None  # px at the output size; None: estimated by tracking
    track: bool = True


# ------------------------------------------------------------------------------------------ inputs
def collect_videos(inputs: list[str | Path]) -> list[Path]:
    """The video files named by ``inputs`` (files, or folders whose video files are taken, sorted)."""
    videos: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise InputError(
                    "folder holds no video file and no rig.yaml",
                    path=path,
                    fix="pass a rig session folder, a video, or a folder of videos "
                    f"({', '.join(VIDEO_SUFFIXES)})",
                )
            videos.extend(found)
        elif path.is_file():
            videos.append(path)
        else:
            raise InputError("input not found", path=path, fix="pass an existing video file or folder")
    return [v.resolve() for v in videos]


def is_video_input(inputs: list[str | Path]) -> bool:
    """True when ``inputs`` are videos (files, or folders without rig.yaml) rather than one rig session."""
    if len(inputs) != 1:
        return True
    path = Path(inputs[0])
    return path.is_file() or (path.is_dir() and not (path / "rig.yaml").exists())


def subject_ids(videos: list[Path]) -> list[str]:
    ids, seen = [], set()
    for video in videos:
        base = re.sub(r"[^A-Za-z0-9_-]+", "_", video.stem).strip("_") or "subject"
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        seen.add(name)
        ids.append(name)
    return ids


@dataclass(frozen=True)
class VideoProbe:
    path: str
    width: int
    height: int
    fps: float  # the stream's declared (average) rate; frames are resampled to MonocularParams.fps
    duration_s: float
    audio_sample_rate: int
    codec: str


def probe(path: Path) -> VideoProbe:
    """Stream facts of one input; a :class:`MediaError` naming the file when it is no usable video."""
    result = media.run_ffmpeg(["-i", str(path)])  # stream lines only (ffmpeg exits 1: no output)
    stderr = result.stderr.decode("utf-8", "replace")
    info = media.parse_streams(stderr)
    if info.video_codec is None:
        raise MediaError(
            f"not a video ({media.ffmpeg_error_line(stderr)})",
            path=path,
            fix="pass a video file (mp4, mov, mkv, ...) with the speaker's face and voice",
        )
    if info.image_demuxer is not None:
        raise MediaError(f"is a still image ({info.image_demuxer}), not a video", path=path)
    duration_s = info.duration_s or 0.0
    if duration_s <= 0:
        raise MediaError("video has no duration (a single frame or an empty stream)", path=path)
    if info.audio_sample_rate is None:
        raise MediaError(
            "video has no audio track",
            path=path,
            fix="use the recording with its sound: talking-head methods are driven by the speech",
        )
    return VideoProbe(
        str(path),
        info.width,
        info.height,
        info.fps or 0.0,
        duration_s,
        info.audio_sample_rate,
        info.video_codec,
    )


def decode_frames(path: Path, fps: float, scale_to: tuple[int, int] | None = None):
    """Yield ``[H, W, 3] uint8`` RGB frames resampled to a constant ``fps`` (ffmpeg ``fps`` filter, by
    timestamps: variable-frame-rate input included), optionally scaled to ``scale_to`` (width, height)."""
    info = probe(path)
    yield from media.iter_frames(path, (info.width, info.height), fps=fps, scale_to=scale_to)


# --------------------------------------------------------------------------------------- face track
DETECT_SIZE = 256  # the face-detection pass runs on frames scaled to at most this side


def face_track(path: Path, info: VideoProbe, fps: float) -> dict:
    """Face boxes of every resampled frame (MediaPipe short-range face detection on a small copy):
    ``{"boxes": [T, 4] (x0, y0, x1, y1) in source pixels, NaN where none, "detected": [T] bool}``."""
    import mediapipe as mp

    from gsbench.native_log import quiet_native_stderr

    scale = min(1.0, DETECT_SIZE / max(info.width, info.height))
    small = (max(2, int(round(info.width * scale / 2)) * 2), max(2, int(round(info.height * scale / 2)) * 2))
    boxes = []
    with quiet_native_stderr():
        detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    try:
        for frame in decode_frames(path, fps, small):
            with quiet_native_stderr():
                result = detector.process(np.ascontiguousarray(frame))
            if not result.detections:
                boxes.append([np.nan] * 4)
                continue
            best = max(result.detections, key=lambda d: d.score[0])
            box = best.location_data.relative_bounding_box
            x0, y0 = box.xmin * info.width, box.ymin * info.height
            boxes.append([x0, y0, x0 + box.width * info.width, y0 + box.height * info.height])
    finally:
        detector.close()
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return {"boxes": boxes, "detected": np.isfinite(boxes[:, 0])}


def crop_boxes(boxes: np.ndarray, width: int, height: int, params: MonocularParams, fps: float) -> np.ndarray:
    """``[T, 3]`` (x0, y0, side) integer square crops following the smoothed face track."""
    from scipy.ndimage import gaussian_filter1d

    found = np.isfinite(boxes[:, 0])
    frames = np.arange(len(boxes))
    centre = np.stack(
        [
            np.interp(frames, frames[found], (boxes[found, 0] + boxes[found, 2]) / 2),
            np.interp(frames, frames[found], (boxes[found, 1] + boxes[found, 3]) / 2),
        ],
        1,
    )
    sigma = params.track_sigma_s * fps
    if len(frames) > 1 and sigma > 0:
        centre = gaussian_filter1d(centre, sigma, axis=0, mode="nearest")
    face = np.median(np.maximum(boxes[found, 2] - boxes[found, 0], boxes[found, 3] - boxes[found, 1]))
    side = int(min(round(params.crop_scale * face), width, height))
    x0 = np.clip(np.round(centre[:, 0] - side / 2), 0, width - side).astype(int)
    y0 = np.clip(np.round(centre[:, 1] - side / 2), 0, height - side).astype(int)
    return np.stack([x0, y0, np.full_like(x0, side)], 1)


# ---------------------------------------------------------------------------------------- sequences
def pause_cuts(audio: np.ndarray, sample_rate: int, fps: float, params: MonocularParams) -> list[int]:
    """Frame indices in the middle of the pauses of the speech (see the module docstring)."""
    hop = max(1, int(round(sample_rate / fps / 2)))  # two RMS values per video frame
    count = len(audio) // hop
    if count == 0:
        return []
    rms = np.sqrt(np.mean(audio[: count * hop].reshape(count, hop).astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.percentile(rms, 95)
    silent = 20 * np.log10(rms / max(loud, 1e-9)) < params.silence_db
    cuts = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if (stop - start) * hop / sample_rate >= params.min_pause_s:
            cuts.append(int(round((start + stop) / 2 * hop / sample_rate * fps)))
    return cuts


def segment(
    begin: int, end: int, cuts: list[int], fps: float, params: MonocularParams
) -> list[tuple[int, int]]:
    """Pieces ``[a, b)`` of ``[begin, end)``: cut at the first pause that leaves ``min_sequence_s`` on
    both sides, or at ``max_sequence_s`` when no pause comes in time."""
    low, high = int(round(params.min_sequence_s * fps)), int(round(params.max_sequence_s * fps))
    pieces, start = [], begin
    while end - start > 0:
        options = [c for c in cuts if start + low <= c <= min(start + high, end - low)]
        if options:
            cut = options[0]
        elif end - start > high:
            cut = start + high if end - (start + high) >= low else max(start + low, end - low)
        else:
            cut = end
        pieces.append((start, cut))
        start = cut
    return pieces


def plan_sequences(num_frames: int, audio: np.ndarray, params: MonocularParams) -> tuple[list, int]:
    """Sequence frame ranges and the first frame of the field's test part (the last ``test_fraction``)."""
    test_start = int(round(num_frames * (1.0 - params.test_fraction)))
    test_start = min(max(test_start, 1), num_frames - 1)
    cuts = pause_cuts(audio, params.sample_rate, params.fps, params)
    pieces = segment(0, test_start, cuts, params.fps, params) + segment(
        test_start, num_frames, cuts, params.fps, params
    )
    return pieces, test_start


# -------------------------------------------------------------------------------------------- masks
def head_mask(person: np.ndarray, points: np.ndarray | None, margin: float) -> np.ndarray:
    """Head and hair, not the torso: the person above the chin line, united with the FaceMesh hull."""
    import cv2

    from capture_tools.masks import largest_component_filled

    if points is None or not np.isfinite(points).all():
        return np.zeros(person.shape, bool)
    height = person.shape[0]
    chin = float(points[:, 1].max())
    top = float(points[:, 1].min())
    cut = int(np.clip(round(chin + margin * (chin - top)), 0, height))
    mask = person.copy()
    mask[cut:] = False
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    face = np.zeros(person.shape, np.uint8)
    cv2.fillConvexPoly(face, hull, 1)
    return largest_component_filled((mask | face.astype(bool)).astype(np.uint8))


def background_plate(frames: np.ndarray, people: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-pixel median over the frames where the dilated person mask leaves the pixel free; pixels
    never free are inpainted. Returns the RGB plate and the inpainted fraction."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    free = np.stack([cv2.dilate(p.astype(np.uint8), kernel) == 0 for p in people])  # [N, H, W]
    plate = np.zeros(frames.shape[1:], np.uint8)
    for row in range(0, frames.shape[1], 32):  # rows in blocks: a masked median of N frames
        block = frames[:, row : row + 32].astype(np.float32)
        block[~free[:, row : row + 32]] = np.nan
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                median = np.nanmedian(block, axis=0)
        plate[row : row + 32] = np.nan_to_num(np.round(median), nan=0).astype(np.uint8)
    never = ~free.any(0)
    if never.any():
        plate = cv2.inpaint(plate, never.astype(np.uint8), 5, cv2.INPAINT_TELEA)
    return plate, float(never.mean())


# ------------------------------------------------------------------------------------------- ingest
@dataclass
class _Subject:
    id: str
    video: Path
    info: VideoProbe
    track: dict


def ingest_videos(
    inputs: list[str | Path], out: str | Path, params: MonocularParams = MonocularParams()
) -> dict:
    """Ingest monocular talking-head videos (one subject each) into the dataset folder ``out``.

    Returns the ingest report (also ``reports/monocular.json``)."""
    from capture_tools.ingest import _check_output

    if params.split not in ("last-eleventh", "sequences"):
        raise InputError(f"unknown split {params.split!r}", fix="use last-eleventh or sequences")
    videos = collect_videos(inputs)
    out = Path(out).resolve()
    for video in videos:
        if out == video or out in video.parents:
            raise InputError("the dataset folder must not contain the input videos", path=out)
    started = time.perf_counter()
    # 1. probe everything before writing anything
    subjects = []
    for subject, video in zip(subject_ids(videos), videos, strict=True):
        info = probe(video)
        log(f"{video.name}: {info.width}x{info.height}, {info.fps:g} fps, {info.duration_s:.1f} s")
        subjects.append(_Subject(subject, video, info, {}))
    if params.crop is None and params.size is None:
        first = subjects[0].info
        for s in subjects[1:]:
            if (s.info.width, s.info.height) != (first.width, first.height):
                raise MediaError(
                    f"frame size {s.info.width}x{s.info.height} differs from the "
                    f"{first.width}x{first.height} of {Path(first.path).name}",
                    path=s.video,
                    fix="pass --crop SIZE (a square face crop) or --size WxH: one frame size for all videos",
                )
    for s in subjects:
        s.track = face_track(s.video, s.info, params.fps)
        if not s.track["detected"].any():
            raise MediaError(
                "no face found in any frame (MediaPipe face detection)",
                path=s.video,
                fix="pass a video of a speaker facing the camera",
            )
    _check_output(out)
    (out / ".ingest").mkdir(parents=True, exist_ok=True)
    with folder_lock(out / ".ingest" / "lock", f"gsbench ingest into {out}"):
        remove_stale_temporaries(out)
        return _write_dataset(out, subjects, params, started)


def _output_size(s: _Subject, params: MonocularParams) -> tuple[int, int]:
    if params.crop is not None:
        return params.crop, params.crop
    return params.size or (s.info.width, s.info.height)


def _write_dataset(out: Path, subjects: list[_Subject], params: MonocularParams, started: float) -> dict:
    import cv2

    from capture_tools import frames as fr
    from capture_tools import masks as mk
    from tracking.landmarks import detect_landmarks

    for name in ("sequences", "backgrounds", "reports"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in ("dataset.json", "cameras.json"):
        (out / name).unlink(missing_ok=True)
    figures = out / "reports" / "monocular"
    figures.mkdir(parents=True, exist_ok=True)
    sequences: dict[str, dict] = {}
    field_split: dict[str, dict] = {}
    report: dict = {"subjects": {}}
    plates = {}
    size = _output_size(subjects[0], params)
    for s in subjects:
        log(f"{s.id}: frames")
        audio = media.read_audio(s.video, params.sample_rate)
        width, height = _output_size(s, params)
        boxes = None
        if params.crop is not None:
            boxes = crop_boxes(s.track["boxes"], s.info.width, s.info.height, params, params.fps)
        num_audio_frames = int(np.floor(len(audio) / params.sample_rate * params.fps + 1e-9))
        staging = out / ".ingest" / "frames" / s.id
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        count = 0
        for index, frame in enumerate(decode_frames(s.video, params.fps)):
            if index >= num_audio_frames:
                break
            if boxes is not None:
                x0, y0, side = boxes[min(index, len(boxes) - 1)]
                frame = cv2.resize(
                    frame[y0 : y0 + side, x0 : x0 + side], (width, height), interpolation=cv2.INTER_AREA
                )
            elif (frame.shape[1], frame.shape[0]) != (width, height):
                frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
            fr.write_jpeg(staging / f"{index:05d}.jpg", frame, params.jpeg_quality)
            count += 1
        if count < 2:
            raise MediaError(f"only {count} frame(s) with audio", path=s.video)
        pieces, test_start = plan_sequences(count, audio, params)
        names = []
        for k, (a, b) in enumerate(pieces):
            seq = f"{s.id}_{k:03d}"
            names.append(seq)
            folder = out / "sequences" / seq
            (folder / "images" / CAMERA).mkdir(parents=True)
            for i in range(a, b):
                os.replace(staging / f"{i:05d}.jpg", folder / "images" / CAMERA / f"{i - a:05d}.jpg")
            first, last = (
                round(a / params.fps * params.sample_rate),
                round(b / params.fps * params.sample_rate),
            )
            media.write_wav(folder / "audio.wav", audio[first:last], params.sample_rate)
            sequences[seq] = {
                "subject": s.id,
                "num_frames": b - a,
                "duration_s": (b - a) / params.fps,
                "source_frames": [a, b],
            }
        shutil.rmtree(staging, ignore_errors=True)
        field_split[s.id] = {
            "train": [n for n, (a, _) in zip(names, pieces, strict=True) if a < test_start],
            "val": [],
            "test": [n for n, (a, _) in zip(names, pieces, strict=True) if a >= test_start],
        }
        # landmarks, masks, plate
        log(f"{s.id}: landmarks, masks")
        segmenter = mk.SelfieSegmenter()
        sample = set(np.linspace(0, count - 1, min(params.plate_frames, count)).round().astype(int).tolist())
        plate_frames, plate_people = [], []
        detection = {}
        try:
            for seq in names:
                folder = out / "sequences" / seq
                images = np.stack(
                    [
                        fr.read_image(folder / "images" / CAMERA / f"{i:05d}.jpg")
                        for i in range(sequences[seq]["num_frames"])
                    ]
                )
                points, detected = detect_landmarks(images)
                write_landmarks(landmarks_path(out, seq), {CAMERA: (points, detected)})
                sequences[seq]["frames_without_face"] = np.flatnonzero(~detected).tolist()
                detection[seq] = float(detected.mean())
                a = sequences[seq]["source_frames"][0]
                for i, image in enumerate(images):
                    person = segmenter(image)
                    mask = head_mask(person, points[i] if detected[i] else None, params.neck_margin)
                    mk.write_mask(folder / "masks" / CAMERA / f"{i:05d}.png", mask)
                    if a + i in sample:
                        plate_frames.append(image)
                        plate_people.append(person)
        finally:
            segmenter.close()
        plate, inpainted = background_plate(np.stack(plate_frames), np.stack(plate_people))
        plates[s.id] = plate
        fr.write_png(figures / f"{s.id}_plate.png", plate)
        _plot_face_track(figures / f"{s.id}_face_track.png", s, boxes, params.fps)
        report["subjects"][s.id] = {
            "video": str(s.video),
            "sha256": sha256_file(s.video),
            "probe": dataclasses.asdict(s.info),
            "frames": count,
            "face_detected_fraction": float(s.track["detected"].mean()),
            "landmark_detection_rate": detection,
            "crop_side_px": int(boxes[0, 2]) if boxes is not None else None,
            "plate_inpainted_fraction": inpainted,
            "sequences": names,
            "test_start_frame": test_start,
        }
    if len(subjects) == 1:
        (out / "backgrounds").mkdir(exist_ok=True)
        fr.write_png(out / "backgrounds" / f"{CAMERA}.png", plates[subjects[0].id])
    width, height = size
    focal = params.focal if params.focal is not None else initial_focal(width, height)
    write_camera(out, focal, width, height, distance=1.0)
    from capture_tools.ingest import split_sequences

    by_sequence = split_sequences(sequences, params.split_seed)
    chosen, other = (
        (field_split, by_sequence) if params.split == "last-eleventh" else (by_sequence, field_split)
    )
    dataset = {
        "schema_version": SCHEMA_VERSION,
        "name": out.name,
        "kind": "monocular",
        "fps": params.fps,
        "image_size": [height, width],
        "frontal_camera": CAMERA,
        "cameras": [CAMERA],
        "subjects": [s.id for s in subjects],
        "sequences": sequences,
        "splits": chosen,
        "split_rule": params.split,
        "alternative_splits": {"sequences" if params.split == "last-eleventh" else "last-eleventh": other},
        "split_seed": params.split_seed,
        "provenance": {
            "gsbench_version": __version__,
            "source": [str(s.video) for s in subjects],
            "inputs_sha256": {str(s.video): report["subjects"][s.id]["sha256"] for s in subjects},
            "params": dataclasses.asdict(params),
            "masks": "mediapipe selfie segmentation above the chin line + FaceMesh hull (head and hair)",
            "background": "per-pixel median of unmasked pixels"
            if len(subjects) == 1
            else "none (several subjects)",
        },
    }
    write_dataset_json(out, dataset)
    if params.track:
        from tracking.fit.monocular import track_monocular

        tracking = track_monocular(out, focal=params.focal)
        report["tracking"] = {k: tracking[k] for k in ("focal_px", "focal_estimated", "camera_distance_m")}
    report["seconds"] = time.perf_counter() - started
    report["load_average"] = os.getloadavg()
    write_json(out / "reports" / "monocular.json", report)
    return report


def initial_focal(width: int, height: int) -> float:
    """The focal length tracking starts from: 2 x the larger side (a ~28 deg field of view; ours)."""
    return 2.0 * max(width, height)


def write_camera(out: Path, focal: float, width: int, height: int, distance: float) -> None:
    """cameras.json of the one camera (tracking.fit.monocular.camera_entry)."""
    from tracking.fit.monocular import camera_entry

    write_cameras_json(out, {CAMERA: camera_entry(focal, width, height, distance)})


def _plot_face_track(path: Path, s: _Subject, boxes: np.ndarray | None, fps: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    raw = s.track["boxes"]
    t = np.arange(len(raw)) / fps
    figure, axis = plt.subplots(figsize=(8, 3))
    axis.plot(t, (raw[:, 0] + raw[:, 2]) / 2, ".", ms=2, label="face centre x (detected)")
    axis.plot(t, (raw[:, 1] + raw[:, 3]) / 2, ".", ms=2, label="face centre y (detected)")
    if boxes is not None:
        axis.plot(t[: len(boxes)], boxes[:, 0] + boxes[:, 2] / 2, lw=1, label="crop centre x (smoothed)")
        axis.plot(t[: len(boxes)], boxes[:, 1] + boxes[:, 2] / 2, lw=1, label="crop centre y (smoothed)")
    axis.set_xlabel("time (s)")
    axis.set_ylabel("source pixels")
    axis.set_title(f"face track of {Path(s.video).name}", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
