"""Evaluation protocols (DESIGN.md "Protocols"): what a method may see, and the test compositing rule.

| protocol | train on | evaluate on |
|---|---|---|
| ``mono-front`` | frontal camera, train sequences | frontal camera, test sequences |
| ``multiview`` | all cameras except the frontal one, train sequences | frontal camera, test sequences |
| ``cross-id`` | as the method's own protocol | another subject's test audio + pose (sync metrics only) |

A method gets a :class:`TrainView` (the subject's train sequences, the protocol's train cameras; any
other sequence or camera raises :class:`MethodError`) and, per test sequence, a
:class:`avatars.methods.base.RenderRequest` built here that holds only audio, the rigid head pose and
the evaluation camera. ``cross-id`` trains as the method's primary protocol, the first of
``mono-front``/``multiview`` in the order the method declares them ("own protocol"), and drives the
subject with the next subject's test sequences (subjects in dataset order, cyclically); it needs at
least two subjects.

Compositing (identical for every method, recorded in every results.json): the method returns a head
``rgb`` and ``alpha``; the scored frame is ``alpha * rgb + (1 - alpha) * background`` where
``background`` is the ground-truth test frame with the head mask removed (``gt * (1 - mask)``, black
inside the mask; the dataset layout has no clean plates). So the GT background/torso outside the mask
is the same for every method and only the head decides the ranking. Under ``cross-id`` no ground-truth
frame of the driven subject exists, so the head is composited over black (only sync metrics are scored).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from avatars.methods.base import PROTOCOL_NAMES, Camera, RenderRequest
from benchmark.dataset import Dataset
from gsbench.errors import ConfigError, MethodError

COMPOSITING = {
    "version": 1,
    "rule": "alpha * head_rgb + (1 - alpha) * gt * (1 - mask)",
    "background": "ground-truth test frame outside the tracked head mask (mask complement), black inside",
    "applies_to": "every method and protocol; image metrics are computed on the composited frames",
}

OWN_PROTOCOLS = ("mono-front", "multiview")


@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
    name: str
    description: str
    image_metrics: bool  # False: no ground truth of the rendered frames exists (cross-id)

    def train_cameras(self, dataset: Dataset, own_protocol: str | None = None) -> tuple[str, ...]:
        name = own_protocol if self.name == "cross-id" else self.name
        if name == "mono-front":
            return (dataset.frontal_camera,)
        if name == "multiview":
            return tuple(c for c in dataset.camera_ids if c != dataset.frontal_camera)
        raise ConfigError(f"cross-id needs an own protocol, got {own_protocol!r}")

    def eval_camera(self, dataset: Dataset) -> str:
        return dataset.frontal_camera


PROTOCOLS: dict[str, ProtocolSpec] = {
    "mono-front": ProtocolSpec("mono-front", "train: frontal camera; test: frontal camera", True),
    "multiview": ProtocolSpec(
        "multiview", "train: all cameras except the frontal one; test: frontal camera", True
    ),
    "cross-id": ProtocolSpec(
        "cross-id",
        "trained as the method's own protocol; driven by another subject's "
        "test audio and head pose; sync metrics only",
        False,
    ),
}
assert tuple(PROTOCOLS) == PROTOCOL_NAMES


def get_protocol(name: str) -> ProtocolSpec:
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}", fix=f"use one of: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def own_protocol(method_protocols: tuple[str, ...]) -> str | None:
    """The protocol a method trains under for ``cross-id``: its primary protocol, i.e. the first of
    mono-front / multiview in the method's own declared order (GaussianSpeech, a multi-view method,
    declares multiview first, so its cross-id job reuses the multiview checkpoint)."""
    return next((p for p in method_protocols if p in OWN_PROTOCOLS), None)


def cross_id_source(dataset: Dataset, subject: str) -> str:
    """The subject whose test audio drives ``subject`` under cross-id (the next one, cyclically)."""
    if len(dataset.subjects) < 2:
        raise ConfigError(
            f"cross-id needs at least two subjects; {dataset.name!r} has {list(dataset.subjects)}",
            path=dataset.root / "dataset.json",
            fix="run mono-front/multiview only",
        )
    index = dataset.subjects.index(subject)
    return dataset.subjects[(index + 1) % len(dataset.subjects)]


class TrainView:
    """The training data a protocol allows for one subject (implements ``avatars.methods.base.TrainData``)."""

    def __init__(self, dataset: Dataset, protocol: str, subject: str, own: str | None = None):
        spec = get_protocol(protocol)
        self._dataset = dataset
        self.protocol = protocol
        self.trained_as = own if protocol == "cross-id" else protocol
        self.subject = subject
        self.fps = dataset.fps
        self.image_size = dataset.image_size
        camera_ids = spec.train_cameras(dataset, own)
        self.cameras: dict[str, Camera] = {c: dataset.cameras[c] for c in camera_ids}
        self.sequences: tuple[str, ...] = dataset.subject_sequences(subject, "train")

    def _check(self, sequence: str, camera: str | None = None) -> None:
        if sequence not in self.sequences:
            split = "test" if sequence in self._dataset.sequences else "unknown"
            raise MethodError(
                f"the {self.protocol} train view of {self.subject!r} does not contain {split} sequence "
                f"{sequence!r}; it holds only {list(self.sequences)}",
                fix="train only on train_view.sequences",
            )
        if camera is not None and camera not in self.cameras:
            raise MethodError(
                f"camera {camera!r} is not a training camera of protocol {self.trained_as} "
                f"(training cameras: {list(self.cameras)})",
                fix="train only on train_view.cameras",
            )

    def num_frames(self, sequence: str) -> int:
        self._check(sequence)
        return self._dataset.sequences[sequence].num_frames

    def load_audio(self, sequence: str) -> np.ndarray:
        self._check(sequence)
        return self._dataset.load_audio(sequence)

    def load_images(self, sequence: str, camera: str, frames: list[int] | None = None) -> np.ndarray:
        self._check(sequence, camera)
        return self._dataset.load_images(sequence, camera, frames)

    def load_masks(self, sequence: str, camera: str, frames: list[int] | None = None) -> np.ndarray:
        self._check(sequence, camera)
        return self._dataset.load_masks(sequence, camera, frames)

    def load_landmarks(self, sequence: str, camera: str) -> tuple[np.ndarray, np.ndarray]:
        self._check(sequence, camera)
        return self._dataset.load_landmarks(sequence, camera)

    def load_flame(self, sequence: str) -> dict[str, np.ndarray]:
        self._check(sequence)
        return self._dataset.load_flame(sequence)

    def __reduce__(self):
        raise TypeError("a TrainView is not picklable: build it where the job runs")


@dataclasses.dataclass(frozen=True)
class EvalItem:
    """One test sequence of a job, as the harness sees it (the method only gets ``request``)."""

    sequence: str  # the sequence whose audio/pose drive the render (another subject's for cross-id)
    request: RenderRequest
    has_ground_truth: bool


def eval_items(dataset: Dataset, protocol: str, subject: str, *, oracle: bool = False) -> list[EvalItem]:
    """The render requests of ``subject``'s test sequences under ``protocol``.

    Only audio, ``rotation``, ``translation`` and the camera are copied out of the dataset; an oracle
    method additionally gets the test FLAME expression parameters in ``oracle_flame``.
    """
    spec = get_protocol(protocol)
    camera = dataset.cameras[spec.eval_camera(dataset)]
    source = cross_id_source(dataset, subject) if protocol == "cross-id" else subject
    items = []
    for sequence in dataset.subject_sequences(source, "test"):
        flame = dataset.load_flame(sequence)
        oracle_flame = None
        if oracle:
            oracle_flame = {k: flame[k].copy() for k in ("expr", "jaw_pose", "neck_pose", "eyes_pose")}
        request = RenderRequest(
            protocol=protocol,
            sequence=sequence,
            audio=dataset.load_audio(sequence),
            sample_rate=16000,
            fps=dataset.fps,
            num_frames=dataset.sequences[sequence].num_frames,
            rotation=flame["rotation"].astype(np.float32).copy(),
            translation=flame["translation"].astype(np.float32).copy(),
            camera=camera,
            oracle_flame=oracle_flame,
        )
        items.append(EvalItem(sequence, request, spec.image_metrics))
    return items


def composite(rgb: np.ndarray, alpha: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The scored frames (see :data:`COMPOSITING`): ``[T, H, W, 3]`` float32 in [0, 1].

    rgb: [T, H, W, 3] head colour in [0, 1]; alpha: [T, H, W]; gt: [T, H, W, 3] in [0, 1];
    mask: [T, H, W] bool head mask of the ground-truth frame.
    """
    background = gt * (~mask)[..., None]
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    return np.clip(a * np.clip(rgb, 0.0, 1.0) + (1.0 - a) * background, 0.0, 1.0).astype(np.float32)
