"""Avatar training data: what every avatar method reads from a protocol's train view, built in one place.

:func:`build_training_data` reads one subject's **train split only** (a ``TrainData``, i.e.
``benchmark.protocols.TrainView``, which cannot reach test sequences): the tracked FLAME parameters of every
training sequence, and the images and head masks of a set of training frames spread evenly over the
sequences, each seen by every training camera (or the cameras asked for), optionally capped at a number of
images by a seeded choice. Landmarks and audio of the training sequences are read when asked for.

Frame selection (the same rule for every method): the training sequences are laid end to end and
``n = min(total, max_frames[, max(1, max_images // cameras)])`` frames are picked at
``round(linspace(0, total - 1, n))``. Images are ordered by sequence, then camera, then frame.

The FLAME helpers beside it (:func:`flame_vertices`, :func:`canonical_vertices`, :func:`root_joint`,
:func:`check_flame`) pose the head model with those parameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from gsbench.dataset import FLAME_FRAME_KEYS
from gsbench.errors import MethodError


@dataclasses.dataclass
class TrainingData:
    """The training frames of one subject. Tf selected frames, C cameras, I images (I <= Tf x C)."""

    subject_id: str
    cameras: list[str]  # [C] camera ids
    camera_models: list[Any]  # [C] avatars.methods.base.Camera (K, world_to_cam, width, height)
    fps: float
    num_frames: dict[str, int]  # frames of each training sequence, in the train view's order
    flame: dict[str, dict[str, np.ndarray]]  # tracked FLAME of each training sequence (all its frames)
    subject: dict[str, np.ndarray]  # per-subject FLAME: shape (+ static_offset)
    frames: list[tuple[str, int]]  # [Tf] (sequence, frame) of the selected frames, in sequence order
    images: np.ndarray  # [I, H, W, 3] uint8 RGB
    masks: np.ndarray  # [I, H, W] bool head masks
    frame_index: np.ndarray  # [I] int64 into frames
    camera_index: np.ndarray  # [I] int64 into cameras
    landmarks: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    # (sequence, camera) -> (points [T, 478, 2], detected [T]), all frames, when asked for
    audio: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # sequence -> [N] 16 kHz

    @property
    def sequences(self) -> list[str]:
        return list(self.num_frames)

    @property
    def world_to_cam(self) -> np.ndarray:
        """[C, 4, 4]"""
        return np.stack([camera.world_to_cam for camera in self.camera_models])

    @property
    def Ks(self) -> np.ndarray:
        """[C, 3, 3]"""
        return np.stack([camera.K for camera in self.camera_models])

    def frames_by_sequence(self) -> list[tuple[str, np.ndarray]]:
        """``[(sequence, frames [n] int64)]`` of the selected frames, sequences with none left out."""
        out: list[tuple[str, np.ndarray]] = []
        for sequence in self.sequences:
            local = np.array([t for s, t in self.frames if s == sequence], dtype=np.int64)
            if local.size:
                out.append((sequence, local))
        return out

    def frame_flame(self, key: str) -> np.ndarray:
        """``[Tf, ...]`` the per-frame FLAME parameter ``key`` of every selected frame."""
        return np.concatenate(
            [np.asarray(self.flame[sequence][key])[local] for sequence, local in self.frames_by_sequence()]
        )


def build_training_data(
    train_view: Any,
    head_model: Any,
    *,
    max_frames: int,
    max_images: int | None = None,
    seed: int = 0,
    cameras: list[str] | None = None,
    with_landmarks: bool = False,
    with_audio: bool = False,
) -> TrainingData:
    """The training frames of ``train_view`` (see the module docstring).

    ``head_model``: the head model the methods pose (FLAME parameters with more expression components
    than it has are refused); ``cameras``: a subset of the train view's cameras (default: all);
    ``max_images``: cap on (frame, camera) images, by a seeded choice (``numpy`` ``default_rng(seed)``)
    when the selected frames give more."""
    if not train_view.sequences:
        raise MethodError(
            f"the {train_view.protocol} train view of {train_view.subject!r} has no sequences",
            fix="check the dataset's splits",
        )
    cameras = list(train_view.cameras) if cameras is None else list(cameras)
    num_frames = {s: train_view.num_frames(s) for s in train_view.sequences}
    flame = {}
    for sequence in train_view.sequences:
        flame[sequence] = train_view.load_flame(sequence)
        check_flame(head_model, flame[sequence], sequence)
    total = sum(num_frames.values())
    count = min(total, max_frames)
    if max_images is not None:
        count = min(count, max(1, max_images // len(cameras)))
    picks = np.unique(np.round(np.linspace(0, total - 1, count)).astype(np.int64))
    starts = np.cumsum([0] + list(num_frames.values()))
    images, masks, frame_index, camera_index = [], [], [], []
    frames: list[tuple[str, int]] = []
    for s_index, sequence in enumerate(train_view.sequences):
        local = picks[(picks >= starts[s_index]) & (picks < starts[s_index + 1])] - starts[s_index]
        if local.size == 0:
            continue
        base = len(frames)
        frames += [(sequence, int(t)) for t in local]
        for c_index, camera in enumerate(cameras):
            images.append(train_view.load_images(sequence, camera, local.tolist()))
            masks.append(train_view.load_masks(sequence, camera, local.tolist()))
            frame_index.append(base + np.arange(local.size))
            camera_index.append(np.full(local.size, c_index))
    images_np = np.concatenate(images)
    masks_np = np.concatenate(masks).astype(bool)
    frame_np = np.concatenate(frame_index).astype(np.int64)
    camera_np = np.concatenate(camera_index).astype(np.int64)
    if max_images is not None and len(images_np) > max_images:
        keep = np.sort(np.random.default_rng(seed).choice(len(images_np), max_images, replace=False))
        images_np, masks_np, frame_np, camera_np = (
            images_np[keep],
            masks_np[keep],
            frame_np[keep],
            camera_np[keep],
        )
    first = flame[train_view.sequences[0]]
    subject = {"shape": np.asarray(first["shape"], np.float32)}
    if "static_offset" in first:
        subject["static_offset"] = np.asarray(first["static_offset"], np.float32)
    landmarks = {}
    if with_landmarks:
        for sequence in train_view.sequences:
            for camera in cameras:
                landmarks[sequence, camera] = train_view.load_landmarks(sequence, camera)
    audio = {s: train_view.load_audio(s) for s in train_view.sequences} if with_audio else {}
    return TrainingData(
        subject_id=train_view.subject,
        cameras=cameras,
        camera_models=[train_view.cameras[c] for c in cameras],
        fps=float(train_view.fps),
        num_frames=num_frames,
        flame=flame,
        subject=subject,
        frames=frames,
        images=images_np,
        masks=masks_np,
        frame_index=frame_np,
        camera_index=camera_np,
        landmarks=landmarks,
        audio=audio,
    )


# --- posing the head model with tracked FLAME ----------------------------------------------------------


def check_flame(head_model: Any, params: dict[str, np.ndarray], where: str) -> None:
    """Refuse FLAME parameters with more expression components than ``head_model`` has."""
    expr_dim = np.asarray(params["expr"]).shape[-1]
    if expr_dim > head_model.num_expr:
        raise MethodError(
            f"FLAME parameters of {where!r} have {expr_dim} expression components but head model "
            f"{head_model.name!r} has {head_model.num_expr}",
            fix="pass the head model the dataset was tracked with (head_model=...)",
        )


def flame_vertices(flame_layer, params: dict[str, np.ndarray], frames: np.ndarray, with_rigid: bool = True):
    """[len(frames), V, 3] posed FLAME vertices (torch) of ``frames`` (world frame if ``with_rigid``)."""
    import torch

    shape = torch.as_tensor(params["shape"], dtype=torch.float32).reshape(1, -1)
    static_offset = params.get("static_offset")
    static_offset = None if static_offset is None else torch.as_tensor(static_offset, dtype=torch.float32)
    out = []
    with torch.no_grad():
        for t in frames:  # one frame per call: batch size 1 keeps to FlameLayer's tested path
            kwargs = {
                k: torch.as_tensor(params[k][t : t + 1], dtype=torch.float32)
                for k in FLAME_FRAME_KEYS
                if k in params and (with_rigid or k not in ("rotation", "translation"))
            }
            out.append(flame_layer(shape=shape, static_offset=static_offset, **kwargs).vertices[0])
    return torch.stack(out)


def canonical_vertices(flame_layer, subject: dict[str, np.ndarray]):
    """[V, 3] the subject's neutral mesh: FLAME with its shape, zero expression and zero pose."""
    return flame_vertices(
        flame_layer, {**subject, "expr": np.zeros((1, 1))}, np.array([0]), with_rigid=False
    )[0]


def neutral_flame(flame_layer, subject: dict[str, np.ndarray]):
    """FLAME output (vertices [1, V, 3], joints [1, 5, 3], ...) of the subject's shape, zero expression and
    pose; ``joints[0, 0]`` is the root joint J0 that the rigid pose rotates about."""
    import torch

    shape = torch.as_tensor(np.asarray(subject["shape"], np.float32)).reshape(1, -1)
    offset = subject.get("static_offset")
    with torch.no_grad():
        return flame_layer(
            shape=shape,
            static_offset=None if offset is None else torch.as_tensor(offset, dtype=torch.float32),
        )
