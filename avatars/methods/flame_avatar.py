"""The methods built on a FLAME-rigged Gaussian avatar (:mod:`avatars.gaussian_speech_avatar`), shared code.

:class:`FlameAvatarMethod` is the **oracle** both ``gaussian-avatars`` (plain GaussianAvatars) and
``gaussianspeech-avatar`` (GaussianSpeech's avatar) are, differing only in their budget configs: it trains the
avatar on every training camera of the training sequences with their tracked FLAME parameters
(:func:`avatars.training_data.build_training_data`), then renders each test sequence driven by the test
sequence's **tracked FLAME expressions** (``request.oracle_flame``) and rigid pose, not by audio. The harness
hands an oracle the test expressions, marks its rows and keeps them out of the ranking: it shows the
photometric ceiling the audio-driven methods approach. ``gaussianspeech`` trains the same avatar as its
Stage 1 with these helpers. Not a registered method itself.

The head model is the one the dataset was tracked with (``Method.head_model``); the checkpoint stores it,
so ``load`` needs nothing else. Checkpoint: ``head_model.npz``, ``binding.npz`` (+ the subject's FLAME),
``avatar.pt``, ``config.json``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from avatars.gaussian_speech_avatar import (
    AvatarConfig,
    FitData,
    FitLog,
    GaussianSpeechAvatar,
    axis_angle_to_matrix,
    build_binding,
    fit_avatar,
)
from avatars.methods.base import Method, RenderOutput, RenderRequest, TrainData, TrainStats
from avatars.rigged import MeshBinding
from avatars.training_data import (
    TrainingData,
    build_training_data,
    canonical_vertices,
    check_flame,
    flame_vertices,
)
from gsbench.errors import MethodError
from gsbench.progress import log

# avatar.pt of checkpoints written before the parameter names were shared (issue 15)
_OLD_PARAM_NAMES = {"xyz": "means", "scale": "scales", "rotation": "quats", "opacity": "opacities"}


@dataclasses.dataclass(frozen=True)
class BudgetConfig:
    avatar: AvatarConfig
    max_train_frames: int  # frames (all training cameras each) sampled evenly from the train sequences
    max_train_images: int  # cap on (frame, camera) images held in memory


# The budgets' schedules (GaussianAvatars: 600k iterations, densify every 2k from 10k on, opacity reset every
# 60k): ``paper`` is that schedule; ``quick`` and ``smoke`` are CPU schedules whose densification window and
# interval are the same fractions of the run where possible, with a bounded number of training images.
# Neither CPU schedule reaches GaussianAvatars' first opacity reset (60k).
# quick, at 256x256: 1,000 single-image steps on 60 frames x all training cameras; densify every 100 from 200
# to 800 (GaussianAvatars densifies every 1/300 of the run; at 1,000 steps that would leave too few views per
# Gaussian between steps, so every 1/10). 1,000 steps (not 1,500) because colours start from the projected
# training images (AvatarConfig.init_colors_from_images); benchmarks/gaussian_avatars.py prints the trade-off.
SCHEDULES: dict[str, tuple[dict[str, int], int, int]] = {  # budget -> (AvatarConfig changes, frames, images)
    "smoke": (
        {"iterations": 40, "densify_from": 10, "densify_until": 35, "densify_interval": 10,
         "opacity_reset_interval": 10**9},
        4,
        16,
    ),
    "quick": (
        {"iterations": 1_000, "densify_from": 200, "densify_until": 800, "densify_interval": 100,
         "opacity_reset_interval": 10**9},
        60,
        900,
    ),
    "paper": ({}, 100_000, 20_000),
}  # fmt: skip


def budget_configs(
    avatar: AvatarConfig, changes: dict[str, dict[str, Any]] | None = None
) -> dict[str, BudgetConfig]:
    """The three budgets of a FLAME avatar: ``avatar`` on each budget's schedule (:data:`SCHEDULES`), then the
    budget's ``changes``."""
    return {
        budget: BudgetConfig(
            dataclasses.replace(avatar, **schedule, **(changes or {}).get(budget, {})), frames, images
        )
        for budget, (schedule, frames, images) in SCHEDULES.items()
    }


def expression_condition(params: dict[str, np.ndarray], frames: np.ndarray, use_jaw: bool) -> torch.Tensor:
    """psi per frame: ``expr`` (and ``jaw_pose`` when ``use_jaw``), [len(frames), D_psi]."""
    parts = [np.asarray(params["expr"])[frames]]
    if use_jaw:
        parts.append(np.asarray(params["jaw_pose"])[frames])
    return torch.as_tensor(np.concatenate(parts, axis=1), dtype=torch.float32)


def fit_data(training: TrainingData, flame_layer, use_jaw: bool) -> FitData:
    """The avatar's :class:`FitData` of the training frames: their tracked FLAME meshes (world frame), the
    colour condition psi and head rotations, with the images, masks and cameras."""
    vertices, conditions, rotations = [], [], []
    for sequence, local in training.frames_by_sequence():
        params = training.flame[sequence]
        vertices.append(flame_vertices(flame_layer, params, local))
        conditions.append(expression_condition(params, local, use_jaw))
        rotations.append(
            axis_angle_to_matrix(torch.as_tensor(params["rotation"][local], dtype=torch.float32))
        )
    return FitData(
        vertices=torch.cat(vertices),
        conditions=torch.cat(conditions),
        head_rotations=torch.cat(rotations),
        world_to_cam=torch.as_tensor(training.world_to_cam, dtype=torch.float32),
        Ks=torch.as_tensor(training.Ks, dtype=torch.float32),
        images=torch.as_tensor(training.images),
        masks=torch.as_tensor(training.masks).bool(),
        frame_index=torch.as_tensor(training.frame_index),
        camera_index=torch.as_tensor(training.camera_index),
    )


class FlameAvatarMethod(Method):
    """A FLAME-rigged Gaussian avatar trained on tracked FLAME and driven by it (an oracle)."""

    budget_configs: ClassVar[dict[str, BudgetConfig]] = {}
    protocols: ClassVar[tuple[str, ...]] = ("multiview", "mono-front")
    oracle: ClassVar[bool] = True

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._avatar: GaussianSpeechAvatar | None = None
        self._subject: dict[str, np.ndarray] = {}

    def num_gaussians(self) -> int | None:
        return None if self._avatar is None else self._avatar.num_gaussians

    # --- training --------------------------------------------------------------------------------------

    def _avatar_training_data(self, train_view: TrainData, budget_config: BudgetConfig) -> TrainingData:
        """Up to ``max_train_frames`` frames spread evenly over the train sequences, each seen by every
        training camera, capped at ``max_train_images`` (seeded choice)."""
        return build_training_data(
            train_view,
            self.head_model,
            max_frames=budget_config.max_train_frames,
            max_images=budget_config.max_train_images,
            seed=self.seed,
        )

    def _fit_avatar(self, training: TrainingData, config: AvatarConfig) -> tuple[FitData, FitLog]:
        """Build the avatar on the head model's triangles (mouth subdivided when configured) and fit it
        (:func:`avatars.gaussian_speech_avatar.fit_avatar`) on ``training``."""
        head, flame_layer = self.head_model, self._flame_layer()
        data = fit_data(training, flame_layer, config.condition_on_jaw)
        self._subject = training.subject
        canonical = canonical_vertices(flame_layer, training.subject)
        binding = build_binding(head.faces, head.num_vertices, head.vertex_regions, config.mouth_subdivision)
        self._avatar = GaussianSpeechAvatar(binding, int(data.conditions.shape[1]), config, seed=self.seed)
        log(
            f"{self.name}: {data.images.shape[0]} training images ({len(training.cameras)} cameras, "
            f"{data.vertices.shape[0]} frames), {binding.num_faces} triangles, {config.iterations} iterations"
        )
        fit_log = fit_avatar(
            self._avatar, data, config, seed=self.seed, weights=self.weights, canonical_vertices=canonical
        )
        return data, fit_log

    def _avatar_info(self, fit_log: FitLog) -> dict[str, Any]:
        config = self._avatar.config
        binding = self._avatar.rig.mesh
        if config.use_color_mlp:
            color = "mlp(expr, latent, view)"
        else:
            color = (
                "per-Gaussian rgb"
                if config.sh_degree is None
                else f"per-Gaussian SH (degree {config.sh_degree})"
            )
        info = {
            "head_model": self.head_model.name,
            "triangles": binding.num_faces,
            "subdivided_mouth_vertices": int(len(binding.midpoint_edges)),
            "color": color,
            "pruning": config.pruning,
            "disabled_losses": fit_log.disabled_terms,
            "perceptual_weights": fit_log.weight_ids,
        }
        if config.lambda_wrinkle > 0:
            info["wrinkle_detector"] = (
                "ridge filter (Hessian, Sato-style) on luminance in the head mask: offline default"
            )
        info["rasterizer"] = fit_log.backend
        return info

    def train(self, train_view: TrainData, budget: str, workdir: Path) -> TrainStats:
        budget_config = self.budget_config(budget)
        training = self._avatar_training_data(train_view, budget_config)
        data, fit_log = self._fit_avatar(training, budget_config.avatar)
        self._info = {
            **self._avatar_info(fit_log),
            "driven_by": "tracked FLAME expressions of the test sequence (oracle)",
        }
        window = max(1, min(50, len(fit_log.rgb_losses) // 10))
        return TrainStats(
            iterations=budget_config.avatar.iterations,
            num_gaussians=self._avatar.num_gaussians,
            extra={
                "train_images": int(data.images.shape[0]),
                "rgb_loss_first": float(np.mean(fit_log.rgb_losses[:window])),
                "rgb_loss_last": float(np.mean(fit_log.rgb_losses[-window:])),
                "densification": fit_log.events,
            },
        )

    # --- rendering -------------------------------------------------------------------------------------

    def render_frames(
        self,
        request: RenderRequest,
        vertices: torch.Tensor,
        conditions: torch.Tensor,
        rotations: torch.Tensor,
    ) -> RenderOutput:
        """The avatar on ``vertices`` [T, V, 3] (world) with colour conditions [T, D] and head rotations
        [T, 3, 3], seen by the request's camera (head on black, rgb un-premultiplied)."""
        camera = request.camera
        world_to_cam = torch.as_tensor(camera.world_to_cam, dtype=torch.float32)
        K = torch.as_tensor(camera.K, dtype=torch.float32)
        rgb = np.zeros((request.num_frames, camera.height, camera.width, 3), np.float32)
        alpha = np.zeros((request.num_frames, camera.height, camera.width), np.float32)
        with torch.no_grad():
            for t in range(request.num_frames):
                out = self._avatar.render(
                    vertices[t], conditions[t], rotations[t], world_to_cam, K, camera.width, camera.height,
                    torch.zeros(3),
                )  # fmt: skip
                a = out.alpha[0, ..., 0]
                alpha[t] = a.numpy()
                rgb[t] = (out.features[0] / a.clamp(min=1e-6)[..., None]).clamp(0, 1).numpy()
        return RenderOutput(rgb=rgb, alpha=alpha)

    def render(self, request: RenderRequest) -> RenderOutput:
        if self._avatar is None:
            raise self._not_trained()
        if request.oracle_flame is None:
            raise MethodError(
                f"{self.name} is an oracle method and needs the tracked FLAME expressions of "
                f"{request.sequence!r} (request.oracle_flame is empty)",
                fix="build the request with benchmark.protocols.eval_items(..., oracle=True)",
            )
        params = {
            **self._subject,
            **request.oracle_flame,
            "rotation": request.rotation,
            "translation": request.translation,
        }
        check_flame(self.head_model, params, request.sequence)
        frames = np.arange(request.num_frames)
        conditions = expression_condition(params, frames, self._avatar.config.condition_on_jaw)
        if conditions.shape[1] != self._avatar.condition_dim:
            raise MethodError(
                f"{request.sequence!r} gives a {conditions.shape[1]}-dim expression condition; the avatar"
                f" was trained with {self._avatar.condition_dim}",
                fix="train and evaluate on the same tracked dataset",
            )
        rotations = axis_angle_to_matrix(torch.as_tensor(request.rotation, dtype=torch.float32))
        vertices = flame_vertices(self._flame_layer(), params, frames)
        return self.render_frames(request, vertices, conditions, rotations)

    # --- checkpoint ------------------------------------------------------------------------------------

    def _save_avatar(
        self, path: Path, extra: dict[str, Any] | None = None, tensors: dict[str, Any] | None = None
    ) -> None:
        """Checkpoint the avatar (see the module docstring); ``extra`` keys go into config.json, ``tensors``
        are further ``torch.save`` files."""
        if self._avatar is None:
            raise self._not_trained("save")
        path = Path(path)
        self.head_model.save(path / "head_model.npz")
        binding = self._avatar.rig.mesh
        self._write_checkpoint(
            path,
            {
                "avatar": dataclasses.asdict(self._avatar.config),
                "condition_dim": self._avatar.condition_dim,
                "seed": self.seed,
                "info": self._info,
                **(extra or {}),
            },
            tensors={
                "avatar.pt": {
                    "state": self._avatar.state_dict(),
                    "num_gaussians": self._avatar.num_gaussians,
                },
                **(tensors or {}),
            },
            arrays={
                "binding.npz": {
                    "faces": binding.faces,
                    "midpoint_edges": binding.midpoint_edges,
                    "num_vertices": np.array(binding.num_vertices),
                    **{f"subject_{k}": v for k, v in self._subject.items()},
                }
            },
        )

    def _load_avatar(
        self, path: Path, tensors: tuple[str, ...] = ()
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read what :meth:`_save_avatar` wrote (the per-Gaussian tensors resized to the densified count);
        returns (config.json, the ``tensors`` files)."""
        from tracking.head_model import HeadModel

        path = Path(path)
        meta, files = self._read_checkpoint(path, tensors=("avatar.pt", *tensors), arrays=("binding.npz",))
        self._set_head_model(HeadModel.load(path / "head_model.npz"))
        arrays, checkpoint = files.pop("binding.npz"), files.pop("avatar.pt")
        avatar_config = dict(meta["avatar"])
        avatar_config["wrinkle_sigmas"] = tuple(avatar_config["wrinkle_sigmas"])
        binding = MeshBinding(
            faces=arrays["faces"],
            num_vertices=int(arrays["num_vertices"]),
            midpoint_edges=arrays["midpoint_edges"],
        )
        avatar = GaussianSpeechAvatar(
            binding, int(meta["condition_dim"]), AvatarConfig(**avatar_config), seed=int(meta["seed"])
        )
        n = int(checkpoint["num_gaussians"])
        # Resize the per-Gaussian tensors to the checkpoint's count before loading (densified model).
        for key, value in list(avatar.rig.params.items()):
            avatar.rig.params[key] = torch.nn.Parameter(value.detach().new_zeros((n,) + value.shape[1:]))
        avatar.rig.binding = torch.zeros(n, dtype=torch.int64)
        state = {}
        for key, value in checkpoint["state"].items():
            prefix, _, name = key.rpartition(".")
            state[
                f"{prefix}.{_OLD_PARAM_NAMES[name]}"
                if prefix == "rig.params" and name in _OLD_PARAM_NAMES
                else key
            ] = value
        avatar.load_state_dict(state)
        self._avatar = avatar
        self._subject = {k[len("subject_") :]: v for k, v in arrays.items() if k.startswith("subject_")}
        self._info = dict(meta.get("info", {}))
        return meta, files

    def save(self, path: Path) -> None:
        self._save_avatar(path)

    def load(self, path: Path) -> None:
        self._load_avatar(path)
