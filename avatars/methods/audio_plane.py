"""``audio-plane``: Audio Factorization Plane Gaussian Splatting (Shen et al.), audio-driven, non-rigged.

The first implementation of the paper (no official code exists). Modules, each named as in the paper:

* audio (Sec. 3.2): DeepSpeech ``[T, 16, 29]`` windows (``avatars.audio``: ``deepspeech-0.1.0`` when its
  precomputed features are available, else the offline ``filterbank29``; recorded in ``info()``), ER-NeRF's
  AudioNet and AudioAttNet (8-frame temporal filtering) -> ``a`` (``avatars.audio_plane.audio_net``);
* the Audio-Plane, Eqs. 4-6 (``avatars.audio_plane.planes``);
* the deformation field D1 and the dynamism D2, Eq. 7 (``avatars.audio_plane.deformation``);
* dynamic splatting, Eq. 8, and the hinge mask loss, Eq. 9, on dilated mouth masks from the training
  camera's MediaPipe lip landmarks (``avatars.audio_plane.model``);
* the coarse (static, 1,000 random Gaussians, L1 + 0.05 LPIPS) and fine (+ 0.1 L_mask) stages
  (``avatars.audio_plane.trainer``).

The head lives in FLAME's canonical frame of the subject (normalised by the canonical head box) and is
placed by the request's rigid pose, ``x_world = R (x - J0) + J0 + t`` (J0 = canonical root joint). Test time
uses only the request's audio, rigid pose and camera. Every value the paper leaves open is in
``config()["assumptions"]``.

Budgets: ``paper`` = the paper (H = 64, D = 16, 3k + 100k iterations, SH 3); ``quick`` = the CPU
configuration of the method spec (H = 32, D = 8, four scales, 150 + 1,350 steps, SH 1); ``smoke`` = seconds.
Ablations (Tables 1-3) are config overrides: ``use_audio_plane``, ``dynamic_splatting``, ``fusion``,
``attention``, ``margin`` (see ``ABLATIONS``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from avatars.audio import resolve_encoder
from avatars.audio_plane.audio_net import as_tensor, neighbour_windows
from avatars.audio_plane.model import (
    ASSUMPTIONS,
    AudioPlaneConfig,
    AudioPlaneHead,
    Placement,
    mouth_masks,
    render_head,
)
from avatars.audio_plane.trainer import LPIPS_WEIGHT, TrainingImages, train_head
from avatars.methods.base import Method, RenderOutput, RenderRequest, TrainData, TrainStats
from avatars.training_data import build_training_data, neutral_flame
from gsbench.errors import MethodError
from gsbench.progress import log, warn_once

BUDGET_CONFIGS: dict[str, AudioPlaneConfig] = {
    "smoke": AudioPlaneConfig(
        plane_resolution=8,
        feature_dim=4,
        scales=(1, 2),
        audio_dim=8,
        d1_width=8,
        d2_hidden=4,
        num_init_gaussians=200,
        sh_degree=1,
        sh_degree_interval=10,
        coarse_iterations=6,
        fine_iterations=10,
        densify_from=4,
        densify_until=12,
        densify_every=4,
        opacity_reset_every=10**9,
        max_train_frames=8,
    ),  # fmt: skip
    # method-specs 2.6 (CPU, ~4-5 min): H = 32, D = 8, s in {1,2,3,4} -> f in R^96; D1 W = 32; D2 16;
    # coarse 150 + fine 1,350 steps; densify every 100 from 100 to 1,000; SH degree 1; no opacity reset.
    "quick": AudioPlaneConfig(
        plane_resolution=32,
        feature_dim=8,
        d1_width=32,
        d2_hidden=16,
        sh_degree=1,
        sh_degree_interval=500,
        coarse_iterations=150,
        fine_iterations=1_350,
        densify_from=100,
        densify_until=1_000,
        densify_every=100,
        opacity_reset_every=10**9,
        max_train_frames=600,
    ),  # fmt: skip
    "paper": AudioPlaneConfig(),
}

ABLATIONS: dict[str, dict[str, Any]] = {
    # Table 1 (A = Audio-Plane, D = dynamic splatting)
    "all": {},
    "wo-A": {"use_audio_plane": False},
    "wo-D": {"dynamic_splatting": False},
    "wo-A&D": {"use_audio_plane": False, "dynamic_splatting": False},
    # Table 2 (backbone x fusion); "cross-attention/concat" = "all"
    **{
        f"{backbone}/{fusion}": {"attention": backbone, "fusion": fusion}
        for backbone in ("mlp", "cross-attention")
        for fusion in ("multiply", "add", "concat")
    },
    # Table 3 (margin of L_mask); 0.2 = "all"
    **{f"margin-{m}": {"margin": m} for m in (0.05, 0.1, 0.2, 0.3)},
}


class AudioPlaneMethod(Method):
    name: ClassVar[str] = "audio-plane"
    description: ClassVar[str] = (
        "Audio-Plane: 3D Gaussians deformed by an audio factorization plane (space tri-plane x 1D grids x "
        "audio prototype grid, cross-attention) with dynamism-weighted deformation supervised by dynamic "
        "splatting on mouth masks; driven by audio + rigid pose"
    )
    paper: ClassVar[str] = "Audio-Plane (Shen et al., Audio Factorization Plane Gaussian Splatting)"
    protocols: ClassVar[tuple[str, ...]] = ("mono-front", "cross-id")
    pretrained_networks: ClassVar[tuple[str, ...]] = ("deepspeech-0.1.0", LPIPS_WEIGHT)

    budget_configs: ClassVar[dict[str, AudioPlaneConfig]] = BUDGET_CONFIGS

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._config: AudioPlaneConfig | None = None
        self._head: AudioPlaneHead | None = None
        self._placement: Placement | None = None
        self._encoder = None

    def config(self, budget: str) -> dict[str, Any]:
        return self._recorded(
            {"model": dataclasses.asdict(self.budget_config(budget)), "assumptions": ASSUMPTIONS}
        )

    def num_gaussians(self) -> int | None:
        return None if self._head is None else len(self._head.gaussians)

    def _open_encoder(self, config: AudioPlaneConfig):
        encoder, reason = resolve_encoder(
            config.audio_encoder,
            fallback=config.audio_fallback,
            weights=self.weights,
            cache=getattr(
                self, "audio_cache", None
            ),  # the dataset's cache finds imported DeepSpeech features
        )
        if reason:
            warn_once(f"audio-plane: {reason}")
        return encoder, reason

    def _windows(self, audio: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
        """[T, 16, C] DeepSpeech-shaped windows of one sequence (ER-NeRF alignment)."""
        return self._encoder.windows(
            audio, fps, num_frames, window=16, cache=getattr(self, "audio_cache", None)
        )

    def train(self, train_view: TrainData, budget: str, workdir: Path) -> TrainStats:
        config = self.budget_config(budget)
        training = build_training_data(
            train_view,
            self.head_model,
            max_frames=config.max_train_frames,
            with_landmarks=True,
            with_audio=True,
        )
        self._encoder, encoder_reason = self._open_encoder(config)
        cameras = training.cameras
        height, width = training.images.shape[1:3]
        parts: dict[str, list] = {k: [] for k in ("mouth", "valid", "neigh", "rot", "trans", "cam")}
        for sequence, local in training.frames_by_sequence():  # images: by sequence, camera, frame
            params = training.flame[sequence]
            windows = self._windows(training.audio[sequence], training.fps, training.num_frames[sequence])
            neighbours = neighbour_windows(windows, local)
            for c_index, camera in enumerate(cameras):
                points, detected = training.landmarks[sequence, camera]
                mouth, valid = mouth_masks(
                    points[local], detected[local], height, width, config.mouth_dilation
                )
                parts["mouth"].append(mouth)
                parts["valid"].append(valid)
                parts["neigh"].append(neighbours)
                parts["rot"].append(np.asarray(params["rotation"])[local])
                parts["trans"].append(np.asarray(params["translation"])[local])
                parts["cam"].append(np.full(local.size, c_index))
        data = TrainingImages(
            images=torch.as_tensor(training.images),
            masks=torch.as_tensor(training.masks).bool(),
            mouth=torch.as_tensor(np.concatenate(parts["mouth"])),
            mouth_valid=torch.as_tensor(np.concatenate(parts["valid"])),
            neighbours=as_tensor(np.concatenate(parts["neigh"])),
            rotation=as_tensor(np.concatenate(parts["rot"])),
            translation=as_tensor(np.concatenate(parts["trans"])),
            camera_index=torch.as_tensor(np.concatenate(parts["cam"])),
            world_to_cam=as_tensor(training.world_to_cam),
            Ks=as_tensor(training.Ks),
        )
        # Canonical head of the subject: FLAME with its shape, zero expression and pose; J0 = root joint.
        canonical = neutral_flame(self._flame_layer(), training.subject)
        vertices, root = canonical.vertices[0], canonical.joints[0, 0]
        low, high = vertices.min(0).values, vertices.max(0).values
        pad = config.box_padding * (high - low)
        low, high = low - pad, high + pad
        centre = (low + high) / 2
        half = float((high - low).max() / 2)
        self._placement = Placement(centre=centre, half_size=half, root=root)
        generator = torch.Generator().manual_seed(self.seed)
        self._head = AudioPlaneHead(config, audio_in=int(data.neighbours.shape[-1]), seed=self.seed)
        self._head.audio.set_normalisation(data.neighbours[:, 4])  # each training frame's own window
        self._head.init_random((low - centre) / half, (high - centre) / half, generator)
        self._config = config
        log(
            f"audio-plane: {len(data)} training images ({len(cameras)} camera(s)), "
            f"{int(data.mouth_valid.sum())} with a mouth mask, {config.coarse_iterations} coarse + "
            f"{config.fine_iterations} fine steps"
        )
        train_log = train_head(
            self._head, self._placement, data, config, seed=self.seed, weights=self.weights
        )
        self._info = {
            "audio_encoder": self._encoder.id,
            "audio_encoder_reason": encoder_reason or "",
            "lpips": train_log.lpips or "skipped",
            "disabled_losses": {"lpips": train_log.lpips_reason} if train_log.lpips_reason else {},
            "head_model": self.head_model.name,
            "rasterizer": train_log.backend,
            "placement": "x_world = R (x - J0) + J0 + t (canonical FLAME frame, request's rigid pose)",
            "ablation": {k: v for k, v in self.overrides.items() if k in _ABLATION_FIELDS},
            "train_seconds": train_log.seconds,
            "coarse_seconds": train_log.coarse_seconds,
        }
        window = max(1, min(50, len(train_log.losses) // 10))
        return TrainStats(
            iterations=config.iterations,
            num_gaussians=len(self._head.gaussians),
            extra={
                "train_images": len(data),
                "l1_first": float(np.mean(train_log.losses[:window])),
                "l1_last": float(np.mean(train_log.losses[-window:])),
                "mask_loss_last": float(np.mean(train_log.mask_losses[-window:]))
                if train_log.mask_losses
                else None,
                "densification": train_log.events,
            },
        )

    def render(self, request: RenderRequest) -> RenderOutput:
        if self._head is None:
            raise self._not_trained()
        camera = request.camera
        T = request.num_frames
        windows = self._windows(request.audio, request.fps, T)
        neighbours = as_tensor(neighbour_windows(windows, np.arange(T)))
        rotation = as_tensor(np.asarray(request.rotation))
        translation = as_tensor(np.asarray(request.translation))
        world_to_cam, K = as_tensor(camera.world_to_cam), as_tensor(camera.K)
        rgb = np.zeros((T, camera.height, camera.width, 3), np.float32)
        alpha = np.zeros((T, camera.height, camera.width), np.float32)
        with torch.no_grad():
            for t in range(T):
                out, _ = render_head(
                    self._head, self._placement, neighbours[t : t + 1], rotation[t], translation[t],
                    world_to_cam, K, camera.width, camera.height,
                )  # fmt: skip
                a = out.alpha[0, ..., 0]
                alpha[t] = a.numpy()
                rgb[t] = (out.features[0, ..., :3] / a.clamp(min=1e-6)[..., None]).clamp(0, 1).numpy()
        return RenderOutput(rgb=rgb, alpha=alpha)

    def save(self, path: Path) -> None:
        if self._head is None:
            raise self._not_trained("save")
        placement = self._placement
        state = {
            "state": self._head.state_dict(),
            "num_gaussians": len(self._head.gaussians),
            "audio_in": int(self._head.audio.audio_net.encoder_conv[0].in_channels),
            "centre": placement.centre,
            "half_size": placement.half_size,
            "root": placement.root,
        }
        self._write_checkpoint(
            path,
            {"model": dataclasses.asdict(self._config), "seed": self.seed, "info": self._info},
            tensors={"audio_plane.pt": state},
        )

    def load(self, path: Path) -> None:
        path = Path(path)
        meta, files = self._read_checkpoint(path, tensors=("audio_plane.pt",))
        checkpoint = files["audio_plane.pt"]
        config = AudioPlaneConfig().replace(**meta["model"])
        head = AudioPlaneHead(config, audio_in=int(checkpoint["audio_in"]), seed=int(meta["seed"]))
        head.resize(int(checkpoint["num_gaussians"]))
        head.load_state_dict(checkpoint["state"])
        self._head, self._config, self._info = head, config, meta.get("info", {})
        self._placement = Placement(
            centre=checkpoint["centre"], half_size=float(checkpoint["half_size"]), root=checkpoint["root"]
        )
        self._encoder, _ = self._open_encoder(config)
        trained_with = self._info.get("audio_encoder")
        if trained_with and self._encoder.id != trained_with:
            raise MethodError(
                f"audio-plane checkpoint was trained on audio encoder {trained_with!r}, but "
                f"{self._encoder.id!r} is what resolves now",
                path=path,
                fix="make the same audio features available (or retrain with --force)",
            )


_ABLATION_FIELDS = ("use_audio_plane", "dynamic_splatting", "fusion", "attention", "margin")
