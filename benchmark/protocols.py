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

Compositing (DESIGN.md "Protocols"; recorded per row in every results.json, :func:`compositing_record`).
The shared rule, identical for every method: the method returns a head ``rgb`` and ``alpha``; the scored
frame is ``alpha * rgb + (1 - alpha) * background`` where ``background`` is the camera's clean plate
(``backgrounds/<cam>.png`` of the dataset) inside the ground-truth head mask and the ground-truth test
frame outside it (``head-over-plate``). So the background/torso outside the mask is the same for every
method, and where a method's alpha falls below 1 inside the mask the frame shows what the camera saw
behind the head, not a colour no camera saw. Where the dataset has no plate for the camera, the
version-1 rule applies (black inside the mask, ``head-over-black``), named in the row. Under
``cross-id`` no ground-truth frame of the driven subject exists: the head is composited over the
evaluation camera's plate everywhere (``cross-id-over-plate``; ``cross-id-over-black`` without one);
only sync metrics are scored there.

A second, declared rule (``own-compositor``) is for methods with a compositor of their own
(``Method.compositing`` lists ``"own"``, e.g. HiCoDe's pix2pix compositor): the method returns the whole
frame from its head render and the harness background with the head region blanked (``gt * (1 - mask)``,
the input HiCoDe's compositor is trained on; the plate under cross-id). Its rows form a separate track,
never ranked together with the shared rule.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from avatars.methods.base import PROTOCOL_NAMES, Camera, RenderRequest
from benchmark.dataset import Dataset
from gsbench.errors import ConfigError, MethodError

COMPOSITING_VERSION = 2
COMPOSITING_RULES = {
    "head-over-plate": "alpha * head_rgb + (1 - alpha) * B, B = clean plate inside the GT head mask, "
    "GT frame outside",
    "head-over-black": "alpha * head_rgb + (1 - alpha) * gt * (1 - mask): no clean plate for the camera, "
    "black inside the GT head mask (the version-1 rule)",
    "cross-id-over-plate": "alpha * head_rgb + (1 - alpha) * plate: cross-id has no GT frame of the driven "
    "subject; the head over the evaluation camera's clean plate",
    "cross-id-over-black": "alpha * head_rgb: cross-id without a clean plate, the head over black",
    "own-compositor": "the method's own compositor: whole frame from its head render and the background "
    "with the head region blanked (gt * (1 - mask); the plate under cross-id); separate track, never "
    "ranked with the shared rule",
}
COMPOSITING_MODES = ("harness", "own")  # the shared rule; a method's own compositor
SHARED_TRACK, OWN_TRACK = "shared", "own-compositor"


def compositing_record(mode: str, rules: list[str], plate_sha256: str | None = None) -> dict:
    """The ``compositing`` entry of a results.json: the mode, the rule(s) its sequences used (one per
    job in practice: every sequence is seen by the same camera), their formulas, the plate's sha256."""
    used = sorted(set(rules))
    return {
        "version": COMPOSITING_VERSION,
        "mode": mode,
        "track": OWN_TRACK if mode == "own" else SHARED_TRACK,
        "rule": ";".join(used),
        "formulas": {r: COMPOSITING_RULES[r] for r in used},
        "plate_sha256": plate_sha256,
    }


OWN_PROTOCOLS = ("mono-front", "multiview")


@dataclasses.dataclass(frozen=True)
class ProtocolSpec:
    name: str
    description: str
    image_metrics: bool  # False: no ground truth of the rendered frames exists (cross-id)

    def train_cameras(self, dataset: Dataset, own_protocol: str | None = None) -> tuple[str, ...]:
        name = own_protocol if self.name == "cross-id" else self.name
        check_protocol(dataset, name)
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


def check_protocol(dataset: Dataset, name: str | None) -> None:
    """``multiview`` needs cameras besides the frontal one: refused on a monocular (one-camera) dataset."""
    if name == "multiview" and len(dataset.camera_ids) < 2:
        raise ConfigError(
            f"protocol multiview needs cameras other than the evaluation camera; {dataset.name!r} has "
            f"only {list(dataset.camera_ids)} (a monocular video dataset)",
            path=dataset.root / "dataset.json",
            fix="run mono-front (and cross-id with two or more subjects) on monocular datasets",
        )


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


def harness_background(
    gt: np.ndarray | None, mask: np.ndarray | None, plate: np.ndarray | None, shape: tuple[int, ...]
) -> tuple[np.ndarray, str]:
    """The background of the shared rule and its rule id (see the module docstring).

    gt: [T, H, W, 3] float in [0, 1] or None (cross-id); mask: [T, H, W] bool head masks of ``gt``;
    plate: [H, W, 3] float in [0, 1] or None; shape: [T, H, W, 3] of the render.
    """
    if gt is None:
        if plate is None:
            return np.zeros(shape, np.float32), "cross-id-over-black"
        return np.broadcast_to(plate.astype(np.float32), shape), "cross-id-over-plate"
    inside = mask[..., None]
    if plate is None:
        return gt * ~inside, "head-over-black"
    return np.where(inside, plate[None].astype(np.float32), gt), "head-over-plate"


def blanked_background(
    gt: np.ndarray | None, mask: np.ndarray | None, plate: np.ndarray | None, shape
) -> np.ndarray:
    """What an own compositor gets: the frame with the head region blanked (the plate under cross-id)."""
    if gt is None:
        return (
            np.zeros(shape, np.float32) if plate is None else np.broadcast_to(plate.astype(np.float32), shape)
        )
    return (gt * ~mask[..., None]).astype(np.float32)


def composite(
    rgb: np.ndarray, alpha: np.ndarray, gt: np.ndarray, mask: np.ndarray, plate: np.ndarray | None = None
) -> np.ndarray:
    """The scored frames of the shared rule: ``[T, H, W, 3]`` float32 in [0, 1].

    rgb: [T, H, W, 3] head colour in [0, 1]; alpha: [T, H, W]; gt: [T, H, W, 3] in [0, 1];
    mask: [T, H, W] bool head mask of the ground-truth frame; plate: [H, W, 3] in [0, 1] or None
    (black inside the mask).
    """
    background, _ = harness_background(gt, mask, plate, rgb.shape)
    return over(rgb, alpha, background)


def over(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``alpha * rgb + (1 - alpha) * background``, inputs clipped to [0, 1]: ``[T, H, W, 3]`` float32."""
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    return np.clip(a * np.clip(rgb, 0.0, 1.0) + (1.0 - a) * background, 0.0, 1.0).astype(np.float32)
