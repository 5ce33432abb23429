"""The dataset contract (docs/interfaces.md "Dataset files"), read and written by every layer.

A dataset folder (``schema_version: 1``)::

    dataset.json                         # DatasetMeta: subjects, cameras, fps, image size, sequences, splits
    cameras.json                         # per camera: K, world_to_cam, width, height (Camera)
    sequences/<seq>/audio.wav            # 16 kHz mono 16-bit PCM (gsbench.media.read_wav / write_wav)
    sequences/<seq>/images/<cam>/<frame:05d>.jpg
    sequences/<seq>/masks/<cam>/<frame:05d>.png
    sequences/<seq>/landmarks.npz        # <cam> [T, 478, 2] float32 px (NaN: undetected), <cam>_detected
    sequences/<seq>/flame.npz            # FLAME_FRAME_KEYS [T, ...] + shape [S] (+ static_offset [V, 3])
    backgrounds/<cam>.png                # optional clean plate per camera

This module holds the names (FLAME keys, protocols, splits, file names), the camera type, the paths
and the readers/writers of those files. Every reader raises a :class:`GsbenchError` subclass naming the
file and the fix. What a layer does with a dataset (the benchmark's protocol views, tracking's fit)
stays in that layer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gsbench.errors import ConfigError, InputError
from gsbench.io import load_npz, save_npz, write_json

SCHEMA_VERSION = 1
DATASET_JSON = "dataset.json"
CAMERAS_JSON = "cameras.json"

FLAME_FRAME_KEYS: tuple[str, ...] = ("expr", "jaw_pose", "neck_pose", "eyes_pose", "rotation", "translation")
"""Per-frame FLAME parameters, stacked on the first axis: ``expr [T, E]``, ``jaw_pose [T, 3]``,
``neck_pose [T, 3]``, ``eyes_pose [T, 6]``, ``rotation [T, 3]`` (axis-angle), ``translation [T, 3]``
(names and shapes as GaussianAvatars / VHAP)."""
FLAME_SUBJECT_KEYS: tuple[str, ...] = ("shape",)  # [S]; optional "static_offset" [V, 3]
PROTOCOL_NAMES: tuple[str, ...] = ("mono-front", "multiview", "cross-id")
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
NUM_LANDMARKS = 478  # MediaPipe FaceMesh points per frame in landmarks.npz

FIX_REINGEST = "re-run `gsbench ingest` to rebuild the dataset"
FIX_TRACK = "re-run `gsbench track --force` on the dataset"


# -- cameras ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Camera:
    """One calibrated, undistorted pinhole camera (OpenCV convention, as in ``cameras.json``)."""

    id: str
    K: np.ndarray  # [3, 3] pixels of the stored image
    world_to_cam: np.ndarray  # [4, 4]
    width: int
    height: int

    def project(self, points_world: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``[..., 2]`` of world points ``[..., 3]``."""
        points = np.asarray(points_world, dtype=np.float64)
        cam = points @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]
        uvw = cam @ self.K.T
        return uvw[..., :2] / uvw[..., 2:3]

    def to_json(self) -> dict[str, Any]:
        """The ``cameras.json`` entry."""
        return {
            "K": np.asarray(self.K).tolist(),
            "world_to_cam": np.asarray(self.world_to_cam).tolist(),
            "width": int(self.width),
            "height": int(self.height),
        }


# -- paths -----------------------------------------------------------------------------------------
def sequence_dir(root: str | Path, sequence: str) -> Path:
    return Path(root) / "sequences" / sequence


def image_path(root: str | Path, sequence: str, camera: str, frame: int) -> Path:
    return sequence_dir(root, sequence) / "images" / camera / f"{frame:05d}.jpg"


def mask_path(root: str | Path, sequence: str, camera: str, frame: int) -> Path:
    return sequence_dir(root, sequence) / "masks" / camera / f"{frame:05d}.png"


def audio_path(root: str | Path, sequence: str) -> Path:
    return sequence_dir(root, sequence) / "audio.wav"


def flame_path(root: str | Path, sequence: str) -> Path:
    return sequence_dir(root, sequence) / "flame.npz"


def landmarks_path(root: str | Path, sequence: str) -> Path:
    return sequence_dir(root, sequence) / "landmarks.npz"


def background_path(root: str | Path, camera: str) -> Path:
    return Path(root) / "backgrounds" / f"{camera}.png"


# -- JSON ------------------------------------------------------------------------------------------
def read_json(path: str | Path, fix: str = FIX_REINGEST) -> Any:
    """A JSON file of the dataset; missing: :class:`InputError`, not JSON: :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "not found",
            path=path,
            fix="point --data at a folder written by `gsbench ingest` (it holds dataset.json)",
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"is not valid JSON ({error})", path=path, fix=fix) from error


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
class DatasetMeta:
    """``dataset.json``, validated. ``raw`` is the file's whole object (extra keys such as ``kind``)."""

    path: Path
    name: str
    fps: float
    image_size: tuple[int, int]  # (height, width)
    frontal_camera: str
    camera_ids: tuple[str, ...]
    subjects: tuple[str, ...]
    sequences: dict[str, SequenceInfo]
    splits: dict[str, Split]
    split_seed: int | None
    provenance: dict[str, Any]
    raw: dict[str, Any]

    def sequences_by_subject(self) -> dict[str, list[str]]:
        """subject -> its sequence ids, sorted."""
        out: dict[str, list[str]] = {}
        for sequence in sorted(self.sequences):
            out.setdefault(self.sequences[sequence].subject, []).append(sequence)
        return out


def _require(mapping: Any, key: str, kind: type | tuple[type, ...], path: Path, where: str = "") -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ConfigError(f"missing key {where}{key!r}", path=path, fix=FIX_REINGEST)
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(
            f"{where}{key!r} must be {names}, got {type(value).__name__}", path=path, fix=FIX_REINGEST
        )
    return value


def read_dataset_json(root: str | Path) -> DatasetMeta:
    """Read and validate ``root/dataset.json``: schema version, types, frontal camera among the
    cameras, every sequence's subject, every subject's split (lists of that subject's sequences).
    Whether the splits suit a benchmark (train and test non-empty) is :func:`check_benchmark_splits`."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            "dataset folder not found", path=root, fix="pass the output folder of `gsbench ingest`"
        )
    path = root / DATASET_JSON
    meta = read_json(path)
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
        for part in SPLIT_NAMES:
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
        splits[subject] = Split(**parts)
    return DatasetMeta(
        path=path,
        name=name,
        fps=fps,
        image_size=(image_size[0], image_size[1]),
        frontal_camera=frontal,
        camera_ids=camera_ids,
        subjects=subjects,
        sequences=sequences,
        splits=splits,
        split_seed=meta.get("split_seed"),
        provenance=meta.get("provenance", {}),
        raw=meta,
    )


def check_benchmark_splits(meta: DatasetMeta) -> None:
    """Every subject needs a train and a test sequence, and no sequence may be in both."""
    for subject, split in meta.splits.items():
        if not split.train or not split.test:
            raise ConfigError(
                f"splits.{subject} needs at least one train and one test sequence",
                path=meta.path,
                fix=FIX_REINGEST,
            )
        overlap = set(split.train) & set(split.test)
        if overlap:
            raise ConfigError(
                f"splits.{subject}: {sorted(overlap)} are in both train and test",
                path=meta.path,
                fix=FIX_REINGEST,
            )


def write_dataset_json(root: str | Path, meta: Mapping[str, Any]) -> None:
    """``root/dataset.json`` (atomic, 2-space indented: :func:`gsbench.io.write_json`)."""
    write_json(Path(root) / DATASET_JSON, meta)


def read_cameras_json(root: str | Path, camera_ids: Iterable[str]) -> dict[str, Camera]:
    """The cameras ``camera_ids`` of ``root/cameras.json``: K 3x3 with positive focal lengths,
    world_to_cam a finite 4x4 rigid transform, width and height."""
    path = Path(root) / CAMERAS_JSON
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise ConfigError("must be an object camera id -> camera", path=path, fix=FIX_REINGEST)
    cameras = {}
    for camera_id in camera_ids:
        if not isinstance(raw.get(camera_id), dict):
            raise ConfigError(
                f"camera {camera_id!r} (listed in dataset.json) is missing", path=path, fix=FIX_REINGEST
            )
        entry = raw[camera_id]
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
        if not (np.isfinite(K).all() and np.isfinite(world_to_cam).all()):
            raise InputError(
                f"camera {camera_id!r} has NaN/inf in K or world_to_cam", path=path, fix=FIX_REINGEST
            )
        rotation = world_to_cam[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise InputError(
                f"camera {camera_id!r}: world_to_cam is not a rigid transform or K has a non-positive "
                "focal length",
                path=path,
                fix=FIX_REINGEST,
            )
        cameras[camera_id] = Camera(camera_id, K, world_to_cam, width, height)
    return cameras


def write_cameras_json(root: str | Path, cameras: Mapping[str, Camera | Mapping[str, Any]]) -> None:
    """``root/cameras.json``: camera id -> ``{K, world_to_cam, width, height}`` (entries given as a
    :class:`Camera` or as such a mapping, written as they are)."""
    write_json(
        Path(root) / CAMERAS_JSON,
        {cam: entry.to_json() if isinstance(entry, Camera) else entry for cam, entry in cameras.items()},
    )


# -- flame.npz -------------------------------------------------------------------------------------
def read_flame(
    path: str | Path, num_frames: int | None = None, *, fix: str = FIX_TRACK
) -> dict[str, np.ndarray]:
    """Every array of a ``flame.npz``: :data:`FLAME_FRAME_KEYS` ``[T, ...]``, ``shape [S]`` and, when
    present, ``static_offset [V, 3]``. A missing, corrupt or incomplete file, or per-frame arrays of
    another length than ``num_frames``, raise :class:`InputError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "no tracked FLAME parameters", path=path, fix="run `gsbench track` on the dataset first"
        )
    arrays = load_npz(path, fix=fix)
    missing = [key for key in (*FLAME_FRAME_KEYS, *FLAME_SUBJECT_KEYS) if key not in arrays]
    if missing:
        raise InputError(f"flame.npz lacks {missing}", path=path, fix=fix)
    if num_frames is not None:
        for key in FLAME_FRAME_KEYS:
            if arrays[key].shape[0] != num_frames:
                raise InputError(
                    f"{key} has {arrays[key].shape[0]} frames, dataset.json says {num_frames}",
                    path=path,
                    fix=fix,
                )
    return arrays


def write_flame(path: str | Path, params: Mapping[str, np.ndarray]) -> None:
    """``flame.npz`` (compressed, atomic) of ``params``: :data:`FLAME_FRAME_KEYS` + ``shape`` (+ extras)."""
    missing = [key for key in (*FLAME_FRAME_KEYS, *FLAME_SUBJECT_KEYS) if key not in params]
    if missing:
        raise ValueError(f"FLAME parameters lack {missing}")
    save_npz(path, **params)


# -- landmarks.npz ---------------------------------------------------------------------------------
def read_landmarks(
    path: str | Path, cameras: Iterable[str], num_frames: int | None = None, *, fix: str = FIX_REINGEST
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """camera -> ``(points [T, 478, 2] float32 pixels, NaN where not detected; detected [T] bool)`` of a
    ``landmarks.npz``, for each of ``cameras``. A missing or corrupt file, a camera without its two
    entries, another shape (``T = num_frames`` when given), inf, or NaN in a frame flagged as detected
    raise :class:`InputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("landmarks file not found", path=path, fix="run the ingest `landmarks` stage")
    arrays = load_npz(path, fix=fix)
    out = {}
    for camera in cameras:
        if camera not in arrays or f"{camera}_detected" not in arrays:
            raise InputError(f"no entry {camera!r} / {camera}_detected", path=path, fix=fix)
        points, detected = arrays[camera], np.asarray(arrays[f"{camera}_detected"]).astype(bool)
        frames = len(detected) if num_frames is None else num_frames
        if points.shape != (frames, NUM_LANDMARKS, 2) or detected.shape != (frames,):
            raise InputError(
                f"{camera}: expected [{frames},{NUM_LANDMARKS},2] points and [{frames}] flags"
                + (" (dataset.json frame count)" if num_frames is not None else "")
                + f", got {points.shape} and {detected.shape}",
                path=path,
                fix=fix,
            )
        if np.isinf(points).any():
            raise InputError(f"{camera}: landmarks contain inf", path=path, fix=fix)
        if np.isnan(points[detected]).any():
            bad = np.flatnonzero(np.isnan(points).any(axis=(1, 2)) & detected)
            raise InputError(
                f"{camera}: NaN landmarks in frames flagged as detected (first: {bad[:5].tolist()})",
                path=path,
                fix=fix,
            )
        out[camera] = (points, detected)
    return out


def write_landmarks(path: str | Path, landmarks: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """``landmarks.npz`` (compressed, atomic) from camera -> ``(points [T, 478, 2], detected [T])``."""
    arrays: dict[str, np.ndarray] = {}
    for camera, (points, detected) in landmarks.items():
        arrays[camera] = np.asarray(points, np.float32)
        arrays[f"{camera}_detected"] = np.asarray(detected, bool)
    save_npz(path, **arrays)
