"""The one small interface every talking-head method implements (nerfbaselines-style plug-ins).

A method is trained on a protocol's *train view* and renders each test sequence from a
:class:`RenderRequest`, which physically holds only what DESIGN.md's protocols allow: the test audio,
the tracked rigid head pose (``rotation``, ``translation``) and the evaluation camera. Test images,
masks, landmarks and expressions are never put into it; asking for them raises :class:`MethodError`.

The interface lives here (not in ``benchmark/``) because imports flow one way: ``benchmark`` imports
``avatars``, never the reverse. ``benchmark.methods`` re-exports it and adds the registry.

Lifecycle, driven by ``benchmark.runner``::

    method = MethodClass(seed=0, device="cpu", weights=registry, overrides={"head.refine_steps": 500})
    method.train(train_view, budget, workdir)      # or method.load(checkpoint_dir)
    method.save(checkpoint_dir)
    output = method.render(request)                # once per test sequence

The harness, not the method, composites the returned head (``rgb``, ``alpha``) over the test frame's
background (the shared rule of ``benchmark.protocols``), so compositing is identical for every method. A
method with a compositor of its own lists ``"own"`` in ``compositing`` and implements :meth:`composite`;
runs with ``--compositing own`` score its whole frames on a separate, never jointly ranked track.

What every method shares lives here: the constructor (``head_model``, ``overrides``), the budget configs
and their overrides (flat dotted keys applied by :func:`gsbench.overrides.apply_overrides`), the lazily
built head model and FLAME layer, and the checkpoint folder's ``config.json`` + tensor files. A method's
training data comes from :mod:`avatars.training_data`.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from gsbench.dataset import PROTOCOL_NAMES, Camera  # noqa: F401  (part of the method interface)
from gsbench.errors import ConfigError, MethodError
from gsbench.overrides import apply_overrides, config_keys

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
    """Base class of every method. Subclasses set the class attributes and the four abstract methods.

    Configuration: ``budget_configs`` maps each budget to a frozen dataclass (all of one type); the
    constructor's ``overrides`` (``{dotted key: value}``, e.g. ``{"head.refine_steps": 500}``) change it for
    every budget and are checked at construction (:class:`ConfigError` names unknown keys).
    :meth:`budget_config` is the resolved config, :meth:`config` what is written to config.json.
    """

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
    # budget -> the method's frozen config dataclass (one type for all budgets); empty: no settings
    budget_configs: ClassVar[Mapping[str, Any]] = {}
    # per-dataset audio-feature cache (``avatars.audio.cache.FeatureCache``), set by the runner before
    # train/render; pass it as ``cache=`` to the audio encoders. None: no cache (features recomputed).
    audio_cache: Any = None

    def __init__(
        self,
        *,
        seed: int = 0,
        device: str = "cpu",
        weights: Any = None,
        head_model: Any = None,
        overrides: Mapping[str, Any] | None = None,
    ):
        """``head_model``: the ``tracking.head_model.HeadModel`` the dataset was tracked with (default
        ``build_default_head(seed=0)``, built when first needed); ``overrides``: ``{dotted key: value}``
        into the budget config (docs/interfaces.md, "Method overrides")."""
        self.seed = seed
        self.device = device
        self.weights = weights
        self._head_model = head_model
        self._flame = None
        self._info: dict[str, Any] = {}
        self.overrides: dict[str, Any] = dict(overrides or {})
        if self.overrides:
            for budget in BUDGETS:  # fail at construction, not in the middle of a run
                self.budget_config(budget)

    # --- configuration ---------------------------------------------------------------------------------

    def budget_config(self, budget: str) -> Any:
        """The config of ``budget`` with the overrides applied (None for a method without settings)."""
        check_budget(budget)
        if not self.budget_configs:
            if self.overrides:
                raise ConfigError(
                    f"method {self.name!r} has no settings to override (got {', '.join(self.overrides)})",
                    fix=f"drop the --set {self.name}.* options",
                )
            return None
        return apply_overrides(self.budget_configs[budget], self.overrides, what=self.name)

    @classmethod
    def override_keys(cls, budget: str = "quick") -> dict[str, Any]:
        """``{dotted key: value}`` of every setting of ``budget`` that ``overrides`` may change."""
        check_budget(budget)
        return config_keys(cls.budget_configs[budget]) if cls.budget_configs else {}

    def config(self, budget: str) -> dict[str, Any]:
        """The resolved hyper-parameters this method uses for ``budget`` (written to config.json and
        hashed): the budget config as a dict, plus ``overrides`` when some were given."""
        config = self.budget_config(budget)
        return self._recorded({} if config is None else dataclasses.asdict(config))

    def _recorded(self, config: dict[str, Any]) -> dict[str, Any]:
        return {**config, "overrides": dict(self.overrides)} if self.overrides else config

    def info(self) -> dict[str, Any]:
        """Provenance of what the trained method used (e.g. its audio encoder); recorded in results."""
        return dict(self._info)

    def num_gaussians(self) -> int | None:
        return None

    # --- head model -------------------------------------------------------------------------------------

    @property
    def head_model(self) -> Any:
        """The FLAME-format head model (``gsbench-head`` unless one was passed to the constructor)."""
        if self._head_model is None:
            self._head_model = default_head_model()
        return self._head_model

    def _set_head_model(self, head_model: Any) -> None:
        """Use ``head_model`` (e.g. the one stored in a checkpoint) from now on."""
        self._head_model = head_model
        self._flame = None

    def _flame_layer(self):
        """``tracking.flame.FlameLayer`` of :attr:`head_model`, built once."""
        if self._flame is None:
            from tracking.flame import FlameLayer

            self._flame = FlameLayer(self.head_model)
        return self._flame

    # --- lifecycle --------------------------------------------------------------------------------------

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

    def _not_trained(self, action: str = "render") -> MethodError:
        """The error for :meth:`render` / :meth:`save` before :meth:`train` or :meth:`load`."""
        if action == "save":
            return MethodError(f"nothing to save: {self.name} is not trained", fix="train first")
        return MethodError(
            f"{self.name} was asked to {action} before train() or load()",
            fix="train or load a checkpoint first",
        )

    # --- checkpoint folder ------------------------------------------------------------------------------

    def _write_checkpoint(
        self,
        path: Path,
        meta: dict[str, Any],
        tensors: Mapping[str, Any] | None = None,
        arrays: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        """Write ``config.json`` (``meta``), each ``tensors[file]`` with ``torch.save`` and each
        ``arrays[file]`` as an ``.npz``, atomically, into the checkpoint folder ``path``."""
        from gsbench.io import atomic_path, save_npz, write_json

        path = Path(path)
        for file, value in (arrays or {}).items():
            save_npz(path / file, **value)
        if tensors:
            import torch

            for file, value in tensors.items():
                with atomic_path(path / file) as tmp:
                    torch.save(value, tmp)
        write_json(path / "config.json", meta)

    def _read_checkpoint(
        self, path: Path, tensors: tuple[str, ...] = (), arrays: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(``config.json``, ``{file: content}``) of a folder written by :meth:`_write_checkpoint`: the
        tensor files loaded with ``torch.load(weights_only=True)``, the ``.npz`` files as dicts. A missing
        or unreadable file raises :class:`MethodError` naming the folder."""
        path = Path(path)
        files: dict[str, Any] = {}
        try:
            meta = json.loads((path / "config.json").read_text())
            for file in arrays:
                with np.load(path / file) as npz:
                    files[file] = {key: npz[key] for key in npz.files}
            if tensors:
                import torch

                for file in tensors:
                    files[file] = torch.load(path / file, weights_only=True)
        except (
            OSError,
            ValueError,
            RuntimeError,
            EOFError,
            pickle.UnpicklingError,
            zipfile.BadZipFile,
        ) as error:
            raise MethodError(
                f"cannot read {self.name} checkpoint ({error})",
                path=path,
                fix="delete the checkpoint folder and re-run with --force",
            ) from error
        return meta, files


def default_head_model():
    """``gsbench-head`` (``tracking.head.build_default_head(seed=0)``), the head the default datasets use."""
    from tracking.head import build_default_head

    return build_default_head(seed=0)


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise MethodError(f"unknown budget {budget!r}", fix=f"use one of: {', '.join(BUDGETS)}")
    return budget
