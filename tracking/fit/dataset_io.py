"""Read the dataset files tracking needs (docs/interfaces.md), with errors that name the file.

``tracking`` imports nothing of ``benchmark`` (DESIGN.md), so this is a small, strict reader of
dataset.json, cameras.json and landmarks.npz of its own.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsbench.errors import ConfigError, InputError
from tracking.landmarks import NUM_MEDIAPIPE_LANDMARKS

FIX_INGEST = "re-run `gsbench ingest` for this dataset"


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    meta: dict
    camera_ids: list[str]
    intrinsics: np.ndarray  # [C, 3, 3]
    world_to_cam: np.ndarray  # [C, 4, 4]
    image_sizes: np.ndarray  # [C, 2] (width, height)

    def sequence_dir(self, sequence: str) -> Path:
        return self.root / "sequences" / sequence

    def subject_sequences(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for sequence, info in sorted(self.meta["sequences"].items()):
            out.setdefault(str(info["subject"]), []).append(sequence)
        return out

    def num_frames(self, sequence: str) -> int:
        return int(self.meta["sequences"][sequence]["num_frames"])


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise InputError("file not found", path=path, fix=FIX_INGEST)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"not valid JSON ({error})", path=path, fix=FIX_INGEST) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object", path=path, fix=FIX_INGEST)
    return data


def read_dataset(root: str | Path) -> DatasetInfo:
    """dataset.json + cameras.json, validated."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            "dataset folder not found", path=root, fix="pass the folder written by `gsbench ingest`"
        )
    meta_path = root / "dataset.json"
    meta = read_json(meta_path)
    for key, kind in (("cameras", list), ("sequences", dict)):
        if not isinstance(meta.get(key), kind):
            raise ConfigError(f"missing or malformed key {key!r}", path=meta_path, fix=FIX_INGEST)
    for sequence, info in meta["sequences"].items():
        if not isinstance(info, dict) or "subject" not in info or "num_frames" not in info:
            raise ConfigError(
                f"sequences.{sequence} needs subject and num_frames", path=meta_path, fix=FIX_INGEST
            )
    camera_ids = [str(cam) for cam in meta["cameras"]]
    cameras_path = root / "cameras.json"
    cameras = read_json(cameras_path)
    intrinsics, world_to_cam, sizes = [], [], []
    for cam in camera_ids:
        entry = cameras.get(cam)
        if not isinstance(entry, dict):
            raise ConfigError(
                f"camera {cam!r} (listed in dataset.json) is missing", path=cameras_path, fix=FIX_INGEST
            )
        try:
            k = np.asarray(entry["K"], np.float64)
            w2c = np.asarray(entry["world_to_cam"], np.float64)
            size = (int(entry["width"]), int(entry["height"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(
                f"camera {cam!r}: bad or missing {error}", path=cameras_path, fix=FIX_INGEST
            ) from None
        if k.shape != (3, 3) or w2c.shape != (4, 4):
            raise ConfigError(
                f"camera {cam!r}: K must be 3x3 and world_to_cam 4x4", path=cameras_path, fix=FIX_INGEST
            )
        if not (np.isfinite(k).all() and np.isfinite(w2c).all()):
            raise InputError(
                f"camera {cam!r} has NaN/inf in K or world_to_cam", path=cameras_path, fix=FIX_INGEST
            )
        rotation = w2c[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or k[0, 0] <= 0 or k[1, 1] <= 0:
            raise InputError(
                f"camera {cam!r}: world_to_cam is not a rigid transform or K has a non-positive focal length",
                path=cameras_path,
                fix=FIX_INGEST,
            )
        intrinsics.append(k)
        world_to_cam.append(w2c)
        sizes.append(size)
    return DatasetInfo(root, meta, camera_ids, np.stack(intrinsics), np.stack(world_to_cam), np.array(sizes))


@dataclass(frozen=True)
class SequenceLandmarks:
    points: np.ndarray  # [C, T, 478, 2] float64, NaN where not detected (or camera unusable)
    cameras_without_detections: list[str]
    frames_without_detections: list[int]


def read_landmarks(info: DatasetInfo, sequence: str) -> SequenceLandmarks:
    """landmarks.npz of one sequence, validated against dataset.json.

    A camera with no detection in the whole sequence is dropped (listed in the result); fewer than
    two cameras with detections, NaN in a detected frame, inf anywhere, or a wrong shape raise
    :class:`InputError` naming the file.
    """
    path = info.sequence_dir(sequence) / "landmarks.npz"
    if not path.is_file():
        raise InputError("landmarks file not found", path=path, fix="run the ingest `landmarks` stage")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputError(f"not a readable .npz ({error})", path=path, fix=FIX_INGEST) from None
    num_frames = info.num_frames(sequence)
    points = np.full((len(info.camera_ids), num_frames, NUM_MEDIAPIPE_LANDMARKS, 2), np.nan)
    empty = []
    for index, cam in enumerate(info.camera_ids):
        if cam not in arrays or f"{cam}_detected" not in arrays:
            raise InputError(f"no entry {cam!r} / {cam}_detected", path=path, fix=FIX_INGEST)
        values = np.asarray(arrays[cam], np.float64)
        detected = np.asarray(arrays[f"{cam}_detected"]).astype(bool)
        if values.shape != (num_frames, NUM_MEDIAPIPE_LANDMARKS, 2) or detected.shape != (num_frames,):
            raise InputError(
                f"{cam}: expected [{num_frames},478,2] points and [{num_frames}] flags "
                f"(dataset.json frame count), "
                f"got {values.shape} and {detected.shape}",
                path=path,
                fix=FIX_INGEST,
            )
        if np.isinf(values).any():
            raise InputError(f"{cam}: landmarks contain inf", path=path, fix=FIX_INGEST)
        if np.isnan(values[detected]).any():
            bad = np.flatnonzero(np.isnan(values).any(axis=(1, 2)) & detected)
            raise InputError(
                f"{cam}: NaN landmarks in frames flagged as detected (first: {bad[:5].tolist()})",
                path=path,
                fix=FIX_INGEST,
            )
        if not detected.any():
            empty.append(cam)
            continue
        points[index, detected] = values[detected]
    usable = len(info.camera_ids) - len(empty)
    if usable < 2:
        raise InputError(
            f"only {usable} camera(s) have any landmark detection (none in {empty}); "
            "multi-view tracking needs two",
            path=path,
            fix="check the images/ of this sequence, or drop it from dataset.json",
        )
    seen = np.isfinite(points[..., 0, 0]).sum(0)
    return SequenceLandmarks(points, empty, np.flatnonzero(seen < 2).tolist())
