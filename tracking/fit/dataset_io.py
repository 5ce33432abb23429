"""The dataset files tracking needs, in the arrays the fit uses: the readers are
:mod:`gsbench.dataset`'s (docs/interfaces.md), with errors that name the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gsbench.dataset import (
    NUM_LANDMARKS,
    DatasetMeta,
    landmarks_path,
    read_cameras_json,
    read_dataset_json,
)
from gsbench.dataset import (
    read_landmarks as read_landmarks_file,
)
from gsbench.errors import InputError
from tracking.fit.solver import Observations

FIX_INGEST = "re-run `gsbench ingest` for this dataset"


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    meta: dict  # dataset.json as written (DatasetMeta.raw)
    camera_ids: list[str]
    intrinsics: np.ndarray  # [C, 3, 3]
    world_to_cam: np.ndarray  # [C, 4, 4]
    image_sizes: np.ndarray  # [C, 2] (width, height)
    dataset: DatasetMeta

    def sequence_dir(self, sequence: str) -> Path:
        return self.root / "sequences" / sequence

    def subject_sequences(self) -> dict[str, list[str]]:
        return self.dataset.sequences_by_subject()

    def num_frames(self, sequence: str) -> int:
        return self.dataset.sequences[sequence].num_frames


def read_dataset(root: str | Path) -> DatasetInfo:
    """dataset.json + cameras.json, validated (:func:`gsbench.dataset.read_dataset_json`,
    :func:`gsbench.dataset.read_cameras_json`)."""
    root = Path(root)
    meta = read_dataset_json(root)
    camera_ids = list(meta.camera_ids)
    cameras = read_cameras_json(root, camera_ids)
    return DatasetInfo(
        root,
        meta.raw,
        camera_ids,
        np.stack([cameras[c].K for c in camera_ids]),
        np.stack([cameras[c].world_to_cam for c in camera_ids]),
        np.array([(cameras[c].width, cameras[c].height) for c in camera_ids]),
        meta,
    )


@dataclass(frozen=True)
class SequenceLandmarks:
    points: np.ndarray  # [C, T, 478, 2] float64, NaN where not detected (or camera unusable)
    cameras_without_detections: list[str]
    frames_without_detections: list[int]


def read_landmarks(info: DatasetInfo, sequence: str) -> SequenceLandmarks:
    """landmarks.npz of one sequence (:func:`gsbench.dataset.read_landmarks`, validated against
    dataset.json's frame count), every camera stacked.

    A camera with no detection in the whole sequence is dropped (listed in the result); fewer than
    two cameras with detections raise :class:`InputError` naming the file.
    """
    path = landmarks_path(info.root, sequence)
    num_frames = info.num_frames(sequence)
    entries = read_landmarks_file(path, info.camera_ids, num_frames, fix=FIX_INGEST)
    points = np.full((len(info.camera_ids), num_frames, NUM_LANDMARKS, 2), np.nan)
    empty = []
    for index, cam in enumerate(info.camera_ids):
        values, detected = entries[cam]
        if not detected.any():
            empty.append(cam)
            continue
        points[index, detected] = np.asarray(values, np.float64)[detected]
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


def observations(
    info: DatasetInfo, sequences: list[str], landmarks: dict[str, SequenceLandmarks]
) -> Observations:
    """The fit's input for ``sequences`` of one subject: their landmarks stacked on the frame axis, with
    the dataset's cameras."""
    return Observations(
        camera_ids=info.camera_ids,
        intrinsics=info.intrinsics,
        world_to_cam=info.world_to_cam,
        image_sizes=info.image_sizes,
        points=np.concatenate([landmarks[s].points for s in sequences], axis=1),
        frame_sequence=np.concatenate([np.full(info.num_frames(s), i) for i, s in enumerate(sequences)]),
        sequence_ids=list(sequences),
    )
