"""Reader of the gsbench dataset layout (``schema_version: 1``, docs/interfaces.md "Dataset files").

:func:`load_dataset` validates ``dataset.json`` and ``cameras.json`` and checks that every file the
benchmark reads is present (per sequence: ``audio.wav``, ``flame.npz``, ``landmarks.npz``, and one jpg
image and png mask per camera and frame). Every problem raises a :class:`ConfigError` /
:class:`InputError` naming the file and the fix.

Methods never get a :class:`Dataset`: they get the protocol views of :mod:`benchmark.protocols`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import wave
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from avatars.methods.base import Camera
from gsbench.errors import ConfigError, InputError, MediaError

SCHEMA_VERSION = 1
SAMPLE_RATE = 16000
FLAME_FRAME_KEYS = ("expr", "jaw_pose", "neck_pose", "eyes_pose", "rotation", "translation")
FIX_REINGEST = "re-run `gsbench ingest` to rebuild the dataset"


@dataclasses.dataclass(frozen=True)
class SequenceInfo:
    id: str
    subject: str
    num_frames: int
    duration_s: float


@dataclasses.dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A validated dataset folder. Loading functions read one sequence x camera at a time."""

    root: Path
    name: str
    fps: float
    image_size: tuple[int, int]  # (height, width)
    frontal_camera: str
    camera_ids: tuple[str, ...]
    cameras: dict[str, Camera]
    subjects: tuple[str, ...]
    sequences: dict[str, SequenceInfo]
    splits: dict[str, Split]
    split_seed: int | None
    provenance: dict[str, Any]

    # -- paths -------------------------------------------------------------------------------------
    def sequence_dir(self, sequence: str) -> Path:
        return self.root / "sequences" / sequence

    def image_path(self, sequence: str, camera: str, frame: int) -> Path:
        return self.sequence_dir(sequence) / "images" / camera / f"{frame:05d}.jpg"

    def mask_path(self, sequence: str, camera: str, frame: int) -> Path:
        return self.sequence_dir(sequence) / "masks" / camera / f"{frame:05d}.png"

    def audio_path(self, sequence: str) -> Path:
        return self.sequence_dir(sequence) / "audio.wav"

    def background_path(self, camera: str) -> Path:
        return self.root / "backgrounds" / f"{camera}.png"

    def has_background(self, camera: str) -> bool:
        return self.background_path(camera).is_file()

    # -- loading -----------------------------------------------------------------------------------
    def load_images(self, sequence: str, camera: str, frames: list[int] | None = None) -> np.ndarray:
        """``[T, H, W, 3]`` uint8 RGB."""
        import cv2

        frames = range(self.sequences[sequence].num_frames) if frames is None else frames
        out = []
        for frame in frames:
            path = self.image_path(sequence, camera, frame)
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise MediaError("cannot decode image", path=path, fix=FIX_REINGEST)
            out.append(image[:, :, ::-1])
        return np.ascontiguousarray(np.stack(out))

    def load_masks(self, sequence: str, camera: str, frames: list[int] | None = None) -> np.ndarray:
        """``[T, H, W]`` bool (head/foreground where the png is > 127)."""
        import cv2

        frames = range(self.sequences[sequence].num_frames) if frames is None else frames
        out = []
        for frame in frames:
            path = self.mask_path(sequence, camera, frame)
            mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise MediaError("cannot decode mask", path=path, fix=FIX_REINGEST)
            out.append(mask > 127)
        return np.stack(out)

    def load_background(self, camera: str) -> np.ndarray | None:
        """The camera's clean plate ``[H, W, 3]`` uint8 RGB (``backgrounds/<cam>.png``), None if absent."""
        import cv2

        path = self.background_path(camera)
        if not path.is_file():
            return None
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise MediaError("cannot decode the background plate", path=path, fix=FIX_REINGEST)
        if image.shape[:2] != self.image_size:
            raise ConfigError(
                f"background plate is {image.shape[1]}x{image.shape[0]}, the dataset's frames are "
                f"{self.image_size[1]}x{self.image_size[0]}",
                path=path,
                fix=FIX_REINGEST,
            )
        return np.ascontiguousarray(image[:, :, ::-1])

    def load_audio(self, sequence: str) -> np.ndarray:
        return read_wav(self.audio_path(sequence))

    def load_flame(self, sequence: str) -> dict[str, np.ndarray]:
        path = self.sequence_dir(sequence) / "flame.npz"
        arrays = _load_npz(path)
        missing = [key for key in (*FLAME_FRAME_KEYS, "shape") if key not in arrays]
        if missing:
            raise ConfigError(f"flame.npz lacks {missing}", path=path, fix=FIX_REINGEST)
        num_frames = self.sequences[sequence].num_frames
        for key in FLAME_FRAME_KEYS:
            if arrays[key].shape[0] != num_frames:
                raise ConfigError(
                    f"{key} has {arrays[key].shape[0]} frames, dataset.json says {num_frames}",
                    path=path,
                    fix=FIX_REINGEST,
                )
        return arrays

    def load_landmarks(self, sequence: str, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """(``[T, 478, 2]`` float32 pixels, NaN where undetected; ``[T]`` bool detected)."""
        path = self.sequence_dir(sequence) / "landmarks.npz"
        arrays = _load_npz(path)
        if camera not in arrays or f"{camera}_detected" not in arrays:
            raise ConfigError(
                f"landmarks.npz lacks {camera!r} / {camera}_detected", path=path, fix=FIX_REINGEST
            )
        return arrays[camera], arrays[f"{camera}_detected"].astype(bool)

    # -- identity ----------------------------------------------------------------------------------
    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 of dataset.json, cameras.json, every sequence's audio/flame/landmarks bytes and the
        names and sizes of its image and mask files (pixels are not read: that would cost minutes), and
        the bytes of the clean plates ``backgrounds/*.png`` where there are any (they change the scored
        frames)."""
        digest = hashlib.sha256()
        for path in (self.root / "dataset.json", self.root / "cameras.json"):
            digest.update(path.read_bytes())
        for camera in self.camera_ids:
            if self.has_background(camera):
                digest.update(f"backgrounds/{camera}.png".encode())
                digest.update(self.background_path(camera).read_bytes())
        for sequence in sorted(self.sequences):
            folder = self.sequence_dir(sequence)
            for name in ("audio.wav", "flame.npz", "landmarks.npz"):
                digest.update(f"{sequence}/{name}".encode())
                digest.update((folder / name).read_bytes())
            for kind in ("images", "masks"):
                for camera in self.camera_ids:
                    for entry in sorted((folder / kind / camera).iterdir()):
                        digest.update(
                            f"{sequence}/{kind}/{camera}/{entry.name}:{entry.stat().st_size}".encode()
                        )
        return digest.hexdigest()

    def subject_sequences(self, subject: str, split: str) -> tuple[str, ...]:
        return getattr(self.splits[subject], split)


def read_wav(path: Path) -> np.ndarray:
    """16-bit PCM mono 16 kHz WAV -> ``[N]`` float32 in [-1, 1]."""
    try:
        with wave.open(str(path), "rb") as handle:
            channels, width, rate = handle.getnchannels(), handle.getsampwidth(), handle.getframerate()
            data = handle.readframes(handle.getnframes())
    except (OSError, wave.Error, EOFError) as error:
        raise MediaError(f"cannot read WAV ({error})", path=path, fix=FIX_REINGEST) from error
    if width != 2 or rate != SAMPLE_RATE:
        raise MediaError(
            f"expected 16-bit PCM at {SAMPLE_RATE} Hz, got {8 * width}-bit at {rate} Hz",
            path=path,
            fix=FIX_REINGEST,
        )
    audio = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return audio.reshape(-1, channels).mean(axis=1) if channels > 1 else audio


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:  # truncated/corrupt
        raise MediaError(f"cannot read npz ({error})", path=path, fix=FIX_REINGEST) from error


def _require(mapping: dict, key: str, kind: type | tuple[type, ...], path: Path, where: str = "") -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ConfigError(f"missing key {where}{key!r}", path=path, fix=FIX_REINGEST)
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(
            f"{where}{key!r} must be {names}, got {type(value).__name__}", path=path, fix=FIX_REINGEST
        )
    return value


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise InputError(
            "not found",
            path=path,
            fix="point --data at a folder written by `gsbench ingest` (it holds dataset.json)",
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"is not valid JSON ({error})", path=path, fix=FIX_REINGEST) from error


def _read_cameras(path: Path, camera_ids: tuple[str, ...]) -> dict[str, Camera]:
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise ConfigError("must be an object camera id -> camera", path=path, fix=FIX_REINGEST)
    cameras = {}
    for camera_id in camera_ids:
        entry = _require(raw, camera_id, dict, path)
        try:
            K = np.asarray(entry["K"], dtype=np.float64)
            world_to_cam = np.asarray(entry["world_to_cam"], dtype=np.float64)
            width, height = int(entry["width"]), int(entry["height"])
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(
                f"camera {camera_id!r} needs K, world_to_cam, width, height ({error})",
                path=path,
                fix=FIX_REINGEST,
            ) from error
        if K.shape != (3, 3) or world_to_cam.shape != (4, 4):
            raise ConfigError(
                f"camera {camera_id!r}: K must be 3x3 and world_to_cam 4x4", path=path, fix=FIX_REINGEST
            )
        cameras[camera_id] = Camera(camera_id, K, world_to_cam, width, height)
    return cameras


def load_dataset(root: str | Path, *, check_files: bool = True) -> Dataset:
    """Open and validate the dataset folder ``root``.

    ``check_files`` lists every sequence folder to confirm each frame's image and mask exist (a few
    directory listings per sequence and camera; skip only for speed where a caller re-opens a dataset
    it has already validated).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            "dataset folder not found", path=root, fix="pass the output folder of `gsbench ingest`"
        )
    path = root / "dataset.json"
    meta = _read_json(path)
    if not isinstance(meta, dict):
        raise ConfigError("must be a JSON object", path=path, fix=FIX_REINGEST)
    version = _require(meta, "schema_version", int, path)
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"schema_version {version} is not supported (this gsbench reads {SCHEMA_VERSION})",
            path=path,
            fix="re-ingest with this gsbench version, or install the gsbench that wrote it",
        )
    name = _require(meta, "name", str, path)
    fps = float(_require(meta, "fps", (int, float), path))
    if fps <= 0:
        raise ConfigError(f"fps must be positive, got {fps}", path=path, fix=FIX_REINGEST)
    image_size = _require(meta, "image_size", list, path)
    if len(image_size) != 2 or not all(isinstance(v, int) and v > 0 for v in image_size):
        raise ConfigError(
            f"image_size must be [height, width], got {image_size}", path=path, fix=FIX_REINGEST
        )
    camera_ids = tuple(_require(meta, "cameras", list, path))
    if not camera_ids or not all(isinstance(c, str) for c in camera_ids):
        raise ConfigError("'cameras' must be a non-empty list of camera ids", path=path, fix=FIX_REINGEST)
    frontal = _require(meta, "frontal_camera", str, path)
    if frontal not in camera_ids:
        raise ConfigError(f"frontal_camera {frontal!r} is not in 'cameras'", path=path, fix=FIX_REINGEST)
    subjects = tuple(_require(meta, "subjects", list, path))
    raw_sequences = _require(meta, "sequences", dict, path)
    sequences = {}
    for seq_id, entry in raw_sequences.items():
        where = f"sequences.{seq_id}."
        subject = _require(entry, "subject", str, path, where)
        if subject not in subjects:
            raise ConfigError(f"{where}subject {subject!r} is not in 'subjects'", path=path, fix=FIX_REINGEST)
        num_frames = _require(entry, "num_frames", int, path, where)
        if num_frames <= 0:
            raise ConfigError(f"{where}num_frames must be positive", path=path, fix=FIX_REINGEST)
        duration = float(entry.get("duration_s", num_frames / fps))
        sequences[seq_id] = SequenceInfo(seq_id, subject, num_frames, duration)
    raw_splits = _require(meta, "splits", dict, path)
    splits = {}
    for subject in subjects:
        entry = _require(raw_splits, subject, dict, path, "splits.")
        parts = {}
        for part in ("train", "val", "test"):
            ids = entry.get(part, [])
            if not isinstance(ids, list):
                raise ConfigError(f"splits.{subject}.{part} must be a list", path=path, fix=FIX_REINGEST)
            for seq_id in ids:
                if seq_id not in sequences:
                    raise ConfigError(
                        f"splits.{subject}.{part} names unknown sequence {seq_id!r}",
                        path=path,
                        fix=FIX_REINGEST,
                    )
                if sequences[seq_id].subject != subject:
                    raise ConfigError(
                        f"splits.{subject}.{part}: {seq_id!r} belongs to {sequences[seq_id].subject!r}",
                        path=path,
                        fix=FIX_REINGEST,
                    )
            parts[part] = tuple(ids)
        if not parts["train"] or not parts["test"]:
            raise ConfigError(
                f"splits.{subject} needs at least one train and one test sequence",
                path=path,
                fix=FIX_REINGEST,
            )
        overlap = set(parts["train"]) & set(parts["test"])
        if overlap:
            raise ConfigError(
                f"splits.{subject}: {sorted(overlap)} are in both train and test", path=path, fix=FIX_REINGEST
            )
        splits[subject] = Split(**parts)
    cameras = _read_cameras(root / "cameras.json", camera_ids)
    dataset = Dataset(
        root=root,
        name=name,
        fps=fps,
        image_size=(image_size[0], image_size[1]),
        frontal_camera=frontal,
        camera_ids=camera_ids,
        cameras=cameras,
        subjects=subjects,
        sequences=sequences,
        splits=splits,
        split_seed=meta.get("split_seed"),
        provenance=meta.get("provenance", {}),
    )
    if check_files:
        _check_files(dataset)
    return dataset


def _check_files(dataset: Dataset) -> None:
    for seq_id, info in dataset.sequences.items():
        folder = dataset.sequence_dir(seq_id)
        for name in ("audio.wav", "flame.npz", "landmarks.npz"):
            if not (folder / name).is_file():
                raise InputError("missing", path=folder / name, fix=FIX_REINGEST)
        for kind, suffix in (("images", ".jpg"), ("masks", ".png")):
            for camera in dataset.camera_ids:
                cam_dir = folder / kind / camera
                present = {p.name for p in cam_dir.iterdir()} if cam_dir.is_dir() else set()
                for frame in range(info.num_frames):
                    if f"{frame:05d}{suffix}" not in present:
                        raise InputError(
                            f"missing ({info.num_frames} frames expected from dataset.json)",
                            path=cam_dir / f"{frame:05d}{suffix}",
                            fix=FIX_REINGEST,
                        )
