"""The one small interface every talking-head method implements (nerfbaselines-style plug-ins).

A method is trained on a protocol's *train view* and renders each test sequence from a
:class:`RenderRequest`, which physically holds only what DESIGN.md's protocols allow: the test audio,
the tracked rigid head pose (``rotation``, ``translation``) and the evaluation camera. Test images,
masks, landmarks and expressions are never put into it; asking for them raises :class:`MethodError`.

The interface lives here (not in ``benchmark/``) because imports flow one way: ``benchmark`` imports
``avatars``, never the reverse. ``benchmark.methods`` re-exports it and adds the registry.

Lifecycle, driven by ``benchmark.runner``::

    method = MethodClass(seed=0, device="cpu", weights=registry)
    method.train(train_view, budget, workdir)      # or method.load(checkpoint_dir)
    method.save(checkpoint_dir)
    output = method.render(request)                # once per test sequence

The harness, not the method, composites the returned head (``rgb``, ``alpha``) over the test frame's
background (the shared rule of ``benchmark.protocols``), so compositing is identical for every method. A
method with a compositor of its own lists ``"own"`` in ``compositing`` and implements :meth:`composite`;
runs with ``--compositing own`` score its whole frames on a separate, never jointly ranked track.
"""

from __future__ import annotations

import abc
import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from gsbench.dataset import PROTOCOL_NAMES, Camera  # noqa: F401  (part of the method interface)
from gsbench.errors import MethodError

BUDGETS: tuple[str, ...] = ("smoke", "quick", "paper")
"""``smoke``: seconds, for tests; ``quick``: minutes on a CPU (the demo); ``paper``: the paper's
schedule, meant for a GPU."""


class TrainData(Protocol):
    """What a method may read while training (implemented by ``benchmark.protocols.TrainView``).

    Only the protocol's training sequences and training cameras are reachable; any other request
    raises :class:`MethodError`.
    """

    protocol: str
    subject: str
    fps: float
    image_size: tuple[int, int]  # (height, width)
    cameras: dict[str, Camera]
    sequences: tuple[str, ...]

    def num_frames(self, sequence: str) -> int: ...
    def load_audio(self, sequence: str) -> np.ndarray: ...  # [N] float32, 16 kHz mono
    # frames: the frame indices to read (default: all); [T, H, W, 3] uint8 RGB / [T, H, W] bool
    def load_images(self, sequence: str, camera: str, frames: list[int] | None = None) -> np.ndarray: ...
    def load_masks(self, sequence: str, camera: str, frames: list[int] | None = None) -> np.ndarray: ...
    def load_landmarks(self, sequence: str, camera: str) -> tuple[np.ndarray, np.ndarray]: ...
    def load_flame(self, sequence: str) -> dict[str, np.ndarray]: ...


_WITHHELD = {
    "images": "test images",
    "image": "test images",
    "frames": "test images",
    "gt": "test images",
    "masks": "test masks",
    "mask": "test masks",
    "landmarks": "test landmarks",
    "expr": "test expressions",
    "jaw_pose": "test expressions",
    "eyes_pose": "test expressions",
    "neck_pose": "test expressions",
    "flame": "test expressions",
}


@dataclasses.dataclass(frozen=True)
class RenderRequest:
    """Everything a method gets to render one test sequence; nothing else exists in it.

    ``rotation``/``translation`` are the tracked rigid head pose of the test frames (FLAME global
    axis-angle rotation and translation, world frame). ``oracle_flame`` is filled only for methods
    declaring ``oracle = True`` (their rows are marked and never ranked).
    """

    protocol: str
    sequence: str  # id of the sequence whose audio and pose drive the render
    audio: np.ndarray  # [N] float32, 16 kHz mono
    sample_rate: int
    fps: float
    num_frames: int
    rotation: np.ndarray  # [T, 3] axis-angle
    translation: np.ndarray  # [T, 3] metres
    camera: Camera
    oracle_flame: dict[str, np.ndarray] | None = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes that do not exist: name the protocol rule instead of AttributeError.
        if name in _WITHHELD:
            raise MethodError(
                f"the {self.protocol} test view of sequence {self.sequence!r} holds no {_WITHHELD[name]} "
                f"(asked for {name!r}); it holds only audio, rigid head pose (rotation, translation) "
                "and the camera",
                fix="render from request.audio, request.rotation/translation and request.camera",
            )
        raise AttributeError(name)

    def frame_times(self) -> np.ndarray:
        """``[T]`` seconds of each frame on the take's master clock (frame t at t / fps)."""
        return np.arange(self.num_frames) / self.fps


@dataclasses.dataclass
class RenderOutput:
    """The rendered head of one test sequence.

    ``rgb`` is the head colour (not premultiplied) and ``alpha`` its coverage; the harness composites
    ``alpha * rgb + (1 - alpha) * background``.
    """

    rgb: np.ndarray  # [T, H, W, 3] float32 in [0, 1]
    alpha: np.ndarray  # [T, H, W] float32 in [0, 1]

    def validate(self, request: RenderRequest) -> None:
        expected = (request.num_frames, request.camera.height, request.camera.width)
        if self.rgb.shape != (*expected, 3) or self.alpha.shape != expected:
            raise MethodError(
                f"render of {request.sequence!r} returned rgb {self.rgb.shape} / alpha {self.alpha.shape}, "
                f"expected {(*expected, 3)} / {expected}",
                fix="return one frame per requested frame at the camera's size",
            )


@dataclasses.dataclass(frozen=True)
class TrainStats:
    """What a method reports about its training (recorded in results.json)."""

    iterations: int = 0
    num_gaussians: int | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


class Method(abc.ABC):
    """Base class of every method. Subclasses set the class attributes and the four methods."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    protocols: ClassVar[tuple[str, ...]] = ("mono-front",)
    pretrained_networks: ClassVar[tuple[str, ...]] = ()  # weight-registry names it can use
    oracle: ClassVar[bool] = False  # True: sees test expressions; marked, never ranked
    # compositing rules it can be scored under: "harness" (the shared rule) and, with a compositor of its
    # own (``composite``), "own" (a separate track, never ranked with the shared rule)
    compositing: ClassVar[tuple[str, ...]] = ("harness",)
    gpus_per_job: ClassVar[float] = 0.0  # resources a scheduler should reserve per job
    cpus_per_job: ClassVar[float] = 1.0
    # per-dataset audio-feature cache (``avatars.audio.cache.FeatureCache``), set by the runner before
    # train/render; pass it as ``cache=`` to the audio encoders. None: no cache (features recomputed).
    audio_cache: Any = None

    def __init__(self, *, seed: int = 0, device: str = "cpu", weights: Any = None):
        self.seed = seed
        self.device = device
        self.weights = weights

    def config(self, budget: str) -> dict[str, Any]:
        """The resolved hyper-parameters this method uses for ``budget`` (written to config.json)."""
        check_budget(budget)
        return {}

    def info(self) -> dict[str, Any]:
        """Provenance of what the trained method used (e.g. its audio encoder); recorded in results."""
        return {}

    def num_gaussians(self) -> int | None:
        return None

    @abc.abstractmethod
    def train(self, train_view: TrainData, budget: str, workdir: Path) -> TrainStats: ...

    @abc.abstractmethod
    def render(self, request: RenderRequest) -> RenderOutput: ...

    def composite(self, output: RenderOutput, backgrounds: np.ndarray) -> np.ndarray:
        """Own compositor (only if ``"own"`` is in ``compositing``): the head render and ``backgrounds``
        ``[T, H, W, 3]`` float in [0, 1] (head region blanked) -> whole frames ``[T, H, W, 3]`` in [0, 1]."""
        raise MethodError(
            f"method {self.name!r} has no compositor of its own",
            fix="score it under the shared rule (gsbench run --compositing harness)",
        )

    @abc.abstractmethod
    def save(self, path: Path) -> None:
        """Write a checkpoint into the folder ``path`` (created by the caller)."""

    @abc.abstractmethod
    def load(self, path: Path) -> None:
        """Restore the state written by :meth:`save` into this freshly constructed instance."""


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise MethodError(f"unknown budget {budget!r}", fix=f"use one of: {', '.join(BUDGETS)}")
    return budget
