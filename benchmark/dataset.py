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
from pathlib import Path

import numpy as np

from gsbench import dataset as contract
from gsbench.dataset import (  # noqa: F401  (FIX_REINGEST, SequenceInfo, Split: re-exported names)
    FIX_REINGEST,
    Camera,
    DatasetMeta,
    SequenceInfo,
    Split,
    check_benchmark_splits,
    read_cameras_json,
    read_dataset_json,
    read_flame,
    read_landmarks,
)
from gsbench.errors import ConfigError, InputError
from gsbench.media import read_image, read_mask, read_wav


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset(DatasetMeta):
    """A validated dataset folder: its ``dataset.json`` (the :class:`DatasetMeta` fields), ``root`` and the
    cameras of ``cameras.json``. Loading functions read one sequence x camera at a time."""

    root: Path
    cameras: dict[str, Camera]

    # -- paths -------------------------------------------------------------------------------------
    def sequence_dir(self, sequence: str) -> Path:
        return contract.sequence_dir(self.root, sequence)

    def image_path(self, sequence: str, camera: str, frame: int) -> Path:
        return contract.image_path(self.root, sequence, camera, frame)

    def mask_path(self, sequence: str, camera: str, frame: int) -> Path:
        return contract.mask_path(self.root, sequence, camera, frame)

    def audio_path(self, sequence: str) -> Path:
        return contract.audio_path(self.root, sequence)

    def background_path(self, camera: str) -> Path:
        return contract.background_path(self.root, camera)

    def has_background(self, camera: str) -> bool:
        return self.background_path(camera).is_file()

    # -- loading -----------------------------------------------------------------------------------
    def load_images(self, sequence: str, camera: str, frames: list[int] | None = None) -> np.ndarray:
        """``[T, H, W, 3]`` uint8 RGB."""
        frames = range(self.sequences[sequence].num_frames) if frames is None else frames
        return np.stack([read_image(self.image_path(sequence, camera, f), FIX_REINGEST) for f in frames])

    def load_masks(self, sequence: str, camera: str, frames: list[int] | None = None) -> np.ndarray:
        """``[T, H, W]`` bool (head/foreground where the png is > 127)."""
        frames = range(self.sequences[sequence].num_frames) if frames is None else frames
        return np.stack([read_mask(self.mask_path(sequence, camera, f), FIX_REINGEST) for f in frames])

    def load_background(self, camera: str) -> np.ndarray | None:
        """The camera's clean plate ``[H, W, 3]`` uint8 RGB (``backgrounds/<cam>.png``), None if absent."""
        path = self.background_path(camera)
        if not path.is_file():
            return None
        image = read_image(path, FIX_REINGEST)
        if image.shape[:2] != self.image_size:
            raise ConfigError(
                f"background plate is {image.shape[1]}x{image.shape[0]}, the dataset's frames are "
                f"{self.image_size[1]}x{self.image_size[0]}",
                path=path,
                fix=FIX_REINGEST,
            )
        return np.ascontiguousarray(image)

    def load_audio(self, sequence: str) -> np.ndarray:
        """``[N]`` float32 16 kHz mono of the sequence's 16-bit PCM ``audio.wav``."""
        return read_wav(self.audio_path(sequence), fix=FIX_REINGEST)

    def load_flame(self, sequence: str) -> dict[str, np.ndarray]:
        """The sequence's ``flame.npz`` (:func:`gsbench.dataset.read_flame`)."""
        return read_flame(
            contract.flame_path(self.root, sequence), self.sequences[sequence].num_frames, fix=FIX_REINGEST
        )

    def load_landmarks(self, sequence: str, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """(``[T, 478, 2]`` float32 pixels, NaN where undetected; ``[T]`` bool detected)."""
        path = contract.landmarks_path(self.root, sequence)
        return read_landmarks(path, [camera], self.sequences[sequence].num_frames, fix=FIX_REINGEST)[camera]

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


def load_dataset(root: str | Path, *, check_files: bool = True) -> Dataset:
    """Open and validate the dataset folder ``root`` (:func:`gsbench.dataset.read_dataset_json`,
    :func:`gsbench.dataset.check_benchmark_splits`, :func:`gsbench.dataset.read_cameras_json`).

    ``check_files`` lists every sequence folder to confirm each frame's image and mask exist (a few
    directory listings per sequence and camera; skip only for speed where a caller re-opens a dataset
    it has already validated).
    """
    root = Path(root)
    meta = read_dataset_json(root)
    check_benchmark_splits(meta)
    fields = {field.name: getattr(meta, field.name) for field in dataclasses.fields(DatasetMeta)}
    dataset = Dataset(**fields, root=root, cameras=read_cameras_json(root, meta.camera_ids))
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
