"""``retrieval``: the audio-nearest-neighbour baseline.

For each test frame, pick the training frame of the same camera whose audio context is closest, and
show that frame's head (its image inside its mask). It learns nothing beyond a lookup table, so it is
a legitimate lower bound: any method that models the face should beat it on image quality, and its
lip motion comes from real footage matched by audio, which makes the sync metrics meaningful.

Audio context of video frame t: the MFCCs (13, 50 Hz, :mod:`avatars.audio_features`, no pretrained
network) of the ``context`` audio frames centred on t, flattened and standardised with the training
mean/std; distance is Euclidean. The retrieved head is moved in the image by the pixel offset between
the projected test and training head translations (a 2D rigid alignment; rotation is ignored), so it
follows the tracked head position of the test frame.

It needs training frames from the evaluation camera, so it supports ``mono-front`` (and ``cross-id``,
trained as ``mono-front``) but not ``multiview``, whose training views exclude the frontal camera.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from avatars import audio_features
from avatars.methods.base import (
    Method,
    RenderOutput,
    RenderRequest,
    TrainData,
    TrainStats,
)
from gsbench.errors import MethodError


@dataclasses.dataclass(frozen=True)
class RetrievalConfig:
    num_mfcc: int = 13
    context: int = 8  # audio frames (50 Hz) per video frame's context window: 160 ms
    max_train_frames: int | None = None  # evenly subsample the lookup table beyond this many frames
    align_translation: bool = True

    @property
    def encoder_id(self) -> str:
        return f"mfcc50(n={self.num_mfcc},context={self.context}),{audio_features.LogMelConfig().encoder_id}"


BUDGET_CONFIGS: dict[str, RetrievalConfig] = {
    "smoke": RetrievalConfig(max_train_frames=2000),
    "quick": RetrievalConfig(max_train_frames=20000),
    "paper": RetrievalConfig(max_train_frames=None),
}


def audio_context_features(
    audio: np.ndarray, num_frames: int, fps: float, config: RetrievalConfig
) -> np.ndarray:
    """``[T, context * num_mfcc]`` float32: per video frame, its window of MFCC frames, flattened."""
    coefficients = audio_features.mfcc(audio, config.num_mfcc)
    windows = audio_features.frame_windows(coefficients, num_frames, fps, window=config.context)
    return windows.reshape(num_frames, -1).astype(np.float32)


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved by (dy, dx) pixels; uncovered pixels are zero."""
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    if abs(dy) >= height or abs(dx) >= width:
        return out
    src_y = slice(max(0, -dy), height - max(0, dy))
    dst_y = slice(max(0, dy), height - max(0, -dy))
    src_x = slice(max(0, -dx), width - max(0, dx))
    dst_x = slice(max(0, dx), width - max(0, -dx))
    out[dst_y, dst_x] = image[src_y, src_x]
    return out


class RetrievalMethod(Method):
    name: ClassVar[str] = "retrieval"
    description: ClassVar[str] = (
        "audio nearest neighbour: each test frame shows the training frame (same camera) with the "
        "closest MFCC audio context; lower bound"
    )
    paper: ClassVar[str] = "baseline (gsbench)"
    protocols: ClassVar[tuple[str, ...]] = ("mono-front", "cross-id")
    pretrained_networks: ClassVar[tuple[str, ...]] = ()
    budget_configs: ClassVar[dict[str, RetrievalConfig]] = BUDGET_CONFIGS

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._config: RetrievalConfig | None = None
        self._tables: dict[str, dict[str, np.ndarray]] = {}
        self._mean: np.ndarray | None = None
        self._std: np.ndarray | None = None
        self._sequences: list[str] = []

    def info(self) -> dict[str, Any]:
        config = self._config or RetrievalConfig()
        return {
            "audio_encoder": config.encoder_id,
            "lookup_frames": {
                camera: int(table["features"].shape[0]) for camera, table in self._tables.items()
            },
        }

    def train(self, train_view: TrainData, budget: str, workdir: Path) -> TrainStats:
        config = self.budget_config(budget)
        self._config = config
        features, refs, per_camera = [], [], {}
        for sequence in train_view.sequences:
            num_frames = train_view.num_frames(sequence)
            seq_features = audio_context_features(
                train_view.load_audio(sequence), num_frames, train_view.fps, config
            )
            translation = train_view.load_flame(sequence)["translation"].astype(np.float64)
            features.append(seq_features)
            refs.append(np.stack([np.full(num_frames, len(refs)), np.arange(num_frames)], axis=1))
            for camera in train_view.cameras:
                per_camera.setdefault(camera, []).append(
                    (
                        train_view.load_images(sequence, camera),
                        train_view.load_masks(sequence, camera),
                        translation,
                    )
                )
        if not features:
            raise MethodError(
                f"the {train_view.protocol} train view of {train_view.subject!r} has no sequences",
                fix="check the dataset's splits",
            )
        all_features = np.concatenate(features)
        keep = np.arange(all_features.shape[0])
        if config.max_train_frames is not None and keep.size > config.max_train_frames:
            keep = np.round(np.linspace(0, keep.size - 1, config.max_train_frames)).astype(np.int64)
        all_features = all_features[keep]
        self._mean = all_features.mean(axis=0)
        self._std = all_features.std(axis=0) + 1e-6
        self._tables = {}
        for camera, chunks in per_camera.items():
            self._tables[camera] = {
                "features": (all_features - self._mean) / self._std,
                "images": np.concatenate([c[0] for c in chunks])[keep],
                "masks": np.concatenate([c[1] for c in chunks])[keep],
                "translation": np.concatenate([c[2] for c in chunks])[keep],
                "refs": np.concatenate(refs)[keep],
            }
        self._sequences = list(train_view.sequences)
        return TrainStats(iterations=0, extra={"lookup_frames": int(keep.size)})

    def nearest_training_frames(self, request: RenderRequest) -> np.ndarray:
        """``[T]`` index into the lookup table of ``request.camera`` of each test frame's neighbour."""
        table = self._table(request.camera.id)
        query = audio_context_features(request.audio, request.num_frames, request.fps, self._config)
        query = (query - self._mean) / self._std
        library = table["features"]
        library_sq = (library.astype(np.float64) ** 2).sum(axis=1)
        nearest = np.empty(request.num_frames, dtype=np.int64)
        for start in range(0, request.num_frames, 256):
            chunk = query[start : start + 256].astype(np.float64)
            distances = library_sq[None, :] - 2.0 * chunk @ library.T.astype(np.float64)
            nearest[start : start + 256] = np.argmin(distances, axis=1)
        return nearest

    def render(self, request: RenderRequest) -> RenderOutput:
        table = self._table(request.camera.id)
        height, width = table["images"].shape[1:3]
        if (height, width) != (request.camera.height, request.camera.width):
            raise MethodError(
                f"retrieval stored {width}x{height} frames of camera {request.camera.id!r} but the request "
                f"asks for {request.camera.width}x{request.camera.height}",
                fix="train and evaluate on the same dataset",
            )
        nearest = self.nearest_training_frames(request)
        rgb = table["images"][nearest].astype(np.float32) / 255.0
        alpha = table["masks"][nearest].astype(np.float32)
        if self._config.align_translation:
            target = request.camera.project(request.translation)
            source = request.camera.project(table["translation"][nearest])
            offsets = np.round(target - source).astype(np.int64)  # [T, 2] (dx, dy)
            for t, (dx, dy) in enumerate(offsets):
                if dx or dy:
                    rgb[t] = shift_image(rgb[t], int(dy), int(dx))
                    alpha[t] = shift_image(alpha[t], int(dy), int(dx))
        return RenderOutput(rgb=rgb, alpha=alpha)

    def _table(self, camera: str) -> dict[str, np.ndarray]:
        if self._config is None:
            raise self._not_trained()
        if camera not in self._tables:
            raise MethodError(
                f"retrieval has no training frames of camera {camera!r} (it has {sorted(self._tables)})",
                fix="evaluate on a camera seen in training (protocol mono-front)",
            )
        return self._tables[camera]

    def save(self, path: Path) -> None:
        from gsbench.io import save_npz, write_json

        path = Path(path)
        write_json(
            path / "config.json",
            {
                "config": dataclasses.asdict(self._config),
                "cameras": sorted(self._tables),
                "sequences": self._sequences,
            },
        )
        arrays = {"mean": self._mean, "std": self._std}
        for camera, table in self._tables.items():
            arrays.update({f"{camera}/{key}": value for key, value in table.items()})
        save_npz(path / "lookup.npz", **arrays)

    def load(self, path: Path) -> None:
        path = Path(path)
        try:
            meta = json.loads((path / "config.json").read_text())
            arrays = np.load(path / "lookup.npz")
        except (OSError, ValueError) as error:
            raise MethodError(
                f"cannot read retrieval checkpoint ({error})",
                path=path,
                fix="delete the checkpoint folder and re-run with --force",
            ) from error
        self._config = RetrievalConfig(**meta["config"])
        self._sequences = meta["sequences"]
        self._mean, self._std = arrays["mean"], arrays["std"]
        self._tables = {
            camera: {
                key: arrays[f"{camera}/{key}"]
                for key in ("features", "images", "masks", "translation", "refs")
            }
            for camera in meta["cameras"]
        }
