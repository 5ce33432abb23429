"""``gaussianspeech``: GaussianSpeech (Aneja et al.), audio-driven personalised 3D Gaussian avatars.

No official code exists (shivangi-aneja/GaussianSpeech: "coming soon"); this is our implementation of the
paper's two stages, every value the paper leaves open recorded in :data:`ASSUMPTIONS` (``config()``).

* **Stage 1** (Sec. 4.1), the avatar: :class:`avatars.gaussian_speech_avatar.GaussianSpeechAvatar`
  (FLAME-rigged Gaussians with top-k volume pruning, 4-way mouth subdivision, the expression-dependent
  two-layer colour MLP, perceptual and wrinkle losses), trained on the training sequences' tracked FLAME
  exactly as the ``gaussianspeech-avatar`` oracle trains it (same training data and schedule, shared code:
  :class:`avatars.methods.flame_avatar.FlameAvatarMethod`).
* **Stage 2** (Sec. 4.2), the sequence model (:mod:`avatars.gaussian_speech_sequence`): audio features ->
  Lip Transformer Encoder (Eq. 7) -> Wrinkle Transformer Encoder (Eq. 8) -> Expression Encoder (Eq. 9) ->
  Expression2Latent -> motion decoder with the look-ahead (Eq. 10) and alignment (Eq. 11) masks and the Vertex
  Mapper (Eq. 12), trained with L_vertices (Eqs. 13-14) alternating with L_photo on the colour MLP and latents
  only (Eqs. 16-17).
* **Render**: the test audio gives the canonical mesh ``V_pred = T + V_offset`` and the expressions
  ``e_pred``; the request's rigid pose places the mesh (``R (x - J0) + J0 + t``, FLAME's global transform
  about the root joint J0) and ``e_pred`` conditions the colour (Eq. 15). No tracked test expression is read.

Protocols: ``multiview`` (the paper's: the 15 non-frontal cameras, evaluated on the frontal one) and
``cross-id``, which trains as multiview and so reuses the multiview checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from avatars.gaussian_speech_avatar import PERCEPTUAL_WEIGHTS, AvatarConfig, axis_angle_to_matrix
from avatars.gaussian_speech_sequence import (
    GaussianSpeechSequenceModel,
    PhotoData,
    SequenceModelConfig,
    SequenceSample,
    face_box,
    lip_vertex_indices,
    rigid_to_world,
    train_sequence_model,
    wrinkle_feature_vector,
)
from avatars.methods.base import RenderOutput, RenderRequest, TrainData, TrainStats
from avatars.methods.flame_avatar import BudgetConfig, FlameAvatarMethod, expression_condition, fit_data
from avatars.methods.gaussianspeech_avatar import BUDGET_CONFIGS as AVATAR_BUDGETS
from avatars.training_data import check_flame, neutral_flame
from gsbench.errors import MethodError
from gsbench.progress import log, warn_once

AUDIO_ENCODER = "wav2vec2-base-960h"  # paper: wav2vec 2.0 (TCN features + Frequency Interpolation)
AUDIO_FALLBACK = "logmel50"
TARGET_POSES = (
    "jaw_pose",
    "neck_pose",
    "eyes_pose",
)  # kept in the canonical targets V_gt (rigid pose removed)


@dataclasses.dataclass(frozen=True)
class GaussianSpeechBudget:
    # Stage 1: the gaussianspeech-avatar budget of the same name
    avatar: AvatarConfig
    max_train_frames: int
    max_train_images: int
    sequence: SequenceModelConfig  # Stage 2

    @property
    def stage1(self) -> BudgetConfig:
        return BudgetConfig(self.avatar, self.max_train_frames, self.max_train_images)


def _budget(stage1: BudgetConfig, sequence: SequenceModelConfig) -> GaussianSpeechBudget:
    return GaussianSpeechBudget(stage1.avatar, stage1.max_train_frames, stage1.max_train_images, sequence)


BUDGET_CONFIGS: dict[str, GaussianSpeechBudget] = {
    "smoke": _budget(
        AVATAR_BUDGETS["smoke"],
        SequenceModelConfig(
            encoder_dim=16,
            encoder_ffn=32,
            encoder_layers=1,
            latent_dim=16,
            pretrain_epochs=3,
            decoder_epochs=3,
            alternating_rounds=3,
        ),
    ),
    # CPU: method-specs.md 3.6 (encoders 2 layers d 64, decoder d 128, 300 alternating rounds, Adam 1e-3),
    # 30 pretraining / 60 decoder epochs (see SequenceModelConfig).
    "quick": _budget(AVATAR_BUDGETS["quick"], SequenceModelConfig()),
    # GPU: 4-layer encoders d 128, decoder d 256, Adam 1e-4 (FaceFormer), 100 epochs, and 30,000 alternating
    # rounds (= 100 epochs of the paper's 300 training sequences).
    "paper": _budget(
        AVATAR_BUDGETS["paper"],
        SequenceModelConfig(
            encoder_dim=128,
            encoder_layers=4,
            encoder_ffn=256,
            latent_dim=128,
            lr=1e-4,
            pretrain_epochs=100,
            decoder_epochs=100,
            alternating_rounds=30_000,
        ),
    ),
}

ASSUMPTIONS: dict[str, str] = {
    "audio": (
        "wav2vec2-base-960h TCN features + Frequency Interpolation when its weights are registered, else the "
        "offline logmel50 (80 log-mel bands, 50 Hz) linearly interpolated to the video fps (avatars.audio); "
        "features standardised with the training mean/std (ours)"
    ),
    "audio_finetune": (
        "paper: the wav2vec2 model is fine-tuned per subject (Table 4 'w/o audio finetune' = generic audio "
        "features, lip encoder not personalised). Ours: the Lip Transformer Encoder is trained on the "
        "subject (Eq. 7); 'w/o audio finetune' leaves it at its initial weights"
    ),
    "encoders": (
        "Lip / Wrinkle / Expression Transformer Encoders: causal (binary look-ahead mask, as Eq. 10; the "
        "paper trains them 'autoregressively') transformer encoders with FaceFormer's periodic positional "
        "encoding; sizes in 'sequence' (paper: open, in the unavailable supplement)"
    ),
    "lip_vertices": (
        "gsbench-head vertex_regions == lips; real FLAME: vertices of the iBUG mouth-landmark triangles"
    ),
    "lip_head": "zero-initialised Linear(c -> lip-vertex offsets) on top of the lip features c (ours)",
    "wrinkle_features": (
        "offline wrinkle detector: Hessian ridge filter (Sato-style) at sigmas wrinkle_sigmas on the "
        "luminance inside the head mask of the iBUG-68 face box (tracked mesh) of the most frontal "
        "training camera, resampled to wrinkle_crop^2 and averaged on a wrinkle_grid^2 layout -> w_gt; "
        "w = the predicted (standardised) vector (ours; the paper's detector [41] has no public weights here)"
    ),
    "expressions": "e = [FLAME expr, jaw_pose] (the colour-MLP condition psi of Stage 1); standardised",
    "canonical_targets": (
        "V_gt = FLAME(shape, expr, jaw, neck, eyes) with zero global rotation and translation (the tracked "
        "mesh in canonical space); template T = FLAME(shape) neutral; neck and eye poses are withheld at "
        "test, so the decoder predicts them from audio as part of V_offset"
    ),
    "decoder": (
        "avatars.sequence.SequenceDecoder: 1 layer, 4 heads, d = |m|, FFN 2d, binary causal mask (Eq. 10), "
        "diagonal alignment (Eq. 11), periodic PE; target-side input = previous predicted offsets "
        "(FaceFormer), teacher forcing in training, autoregressive rollout at test; Vertex Mapper = "
        "Linear(d, d) + ReLU + zero-initialised Linear(d, 3V) (paper: 'MLP', size open)"
    ),
    "losses": (
        "Eqs. 7-9, 13 (sums of per-frame L2 norms) minimised as mean squared errors, as FaceFormer's code; "
        "offsets standardised by one global std"
    ),
    "schedule": (
        "encoders pretrained in cascade (Eq. 7, then 8, then 9) and frozen; then Eq. 14 for decoder_epochs; "
        "then alternating_rounds rounds of one L_vertices step (one sequence) + one L_photo step (one "
        "training image of that sequence, rendered from the step's teacher-forced prediction); Adam "
        "(paper: open; FaceFormer: Adam 1e-4)"
    ),
    "photo_step": (
        "L_photo = L_rgb (0.8 L1 + 0.2 D-SSIM) + lambda_g L_global + lambda_p L_patch (perceptual terms only "
        "with registered ArcFace/VGG weights); Adam on the latents (2.5e-3) and colour MLP (1e-3) only"
    ),
    "rigid_pose": (
        "x_world = R (x - J0) + J0 + t, J0 = the subject's neutral FLAME root joint (exact for FLAME)"
    ),
}


class GaussianSpeechMethod(FlameAvatarMethod):
    name: ClassVar[str] = "gaussianspeech"
    description: ClassVar[str] = (
        "GaussianSpeech: FLAME-rigged 3D Gaussian avatar (top-k volume pruning, mouth subdivision, "
        "expression-dependent colour) animated from audio by a transformer sequence model (lip, wrinkle and "
        "expression encoders, motion decoder with look-ahead and alignment masks)"
    )
    paper: ClassVar[str] = "GaussianSpeech: Audio-Driven Personalized 3D Gaussian Avatars (Aneja et al. 2025)"
    protocols: ClassVar[tuple[str, ...]] = ("multiview", "cross-id")
    pretrained_networks: ClassVar[tuple[str, ...]] = (AUDIO_ENCODER, *PERCEPTUAL_WEIGHTS.values())
    oracle: ClassVar[bool] = False
    budget_configs: ClassVar[dict[str, GaussianSpeechBudget]] = BUDGET_CONFIGS

    def __init__(self, **kwargs: Any):
        """Overrides: ``avatar.<AvatarConfig field>``, ``max_train_frames``, ``max_train_images`` (Stage 1)
        and ``sequence.<SequenceModelConfig field>`` (Stage 2)."""
        super().__init__(**kwargs)
        self._model: GaussianSpeechSequenceModel | None = None
        self._root: torch.Tensor | None = None
        self._encoder = None
        self._training = None  # Stage-1 training data, kept between train_avatar and train_sequence

    def config(self, budget: str) -> dict[str, Any]:
        return {
            **super().config(budget),
            "audio_encoder": {"preferred": AUDIO_ENCODER, "fallback": AUDIO_FALLBACK},
            "target_poses": list(TARGET_POSES),
            "assumptions": ASSUMPTIONS,
        }

    def _resolve_encoder(self):
        from avatars.audio import resolve_encoder

        encoder, reason = resolve_encoder(AUDIO_ENCODER, fallback=AUDIO_FALLBACK, weights=self.weights)
        if reason:
            warn_once(f"gaussianspeech: {reason}")
        return encoder, reason

    def _audio_features(self, audio: np.ndarray, fps: float, num_frames: int) -> torch.Tensor:
        features = self._encoder.video_rate(audio, fps, num_frames, cache=getattr(self, "audio_cache", None))
        return torch.as_tensor(features, dtype=torch.float32)

    # --- training ----------------------------------------------------------------------------------------

    def train(self, train_view: TrainData, budget: str, workdir: Path) -> TrainStats:
        self.train_avatar(train_view, budget)
        return self.train_sequence(train_view, budget)

    def train_avatar(self, train_view: TrainData, budget: str) -> None:
        """Stage 1 (Sec. 4.1): the avatar on the tracked training frames (as ``gaussianspeech-avatar``)."""
        config = self.budget_config(budget).stage1
        training = self._avatar_training_data(train_view, config)
        data, fit_log = self._fit_avatar(training, config.avatar)
        self._training = (training, data)
        window = max(1, min(50, len(fit_log.rgb_losses) // 10))
        self._info = {
            **self._avatar_info(fit_log),
            "avatar_iterations": config.avatar.iterations,
            "avatar_rgb_loss": [
                float(np.mean(fit_log.rgb_losses[:window])),
                float(np.mean(fit_log.rgb_losses[-window:])),
            ],
            "avatar_events": fit_log.events,
        }

    def save_avatar_stage(self, path: Path) -> None:
        """Checkpoint of Stage 1 alone (e.g. to train several Stage-2 ablations on one avatar)."""
        if self._avatar is None:
            raise MethodError("no avatar to save: call train_avatar first", fix="train Stage 1 first")
        self._save_avatar(path)

    def load_avatar_stage(self, path: Path, train_view: TrainData, budget: str) -> None:
        """Use a Stage-1 avatar written by :meth:`save_avatar_stage` (its training images are re-read)."""
        self._load_avatar(path)
        training = self._avatar_training_data(train_view, self.budget_config(budget).stage1)
        self._training = (
            training,
            fit_data(training, self._flame_layer(), self._avatar.config.condition_on_jaw),
        )

    def train_sequence(self, train_view: TrainData, budget: str) -> TrainStats:
        """Stage 2 (Sec. 4.2) on the avatar of :meth:`train_avatar` / :meth:`load_avatar_stage`."""
        if self._avatar is None or self._training is None:
            raise MethodError("train_sequence needs the Stage-1 avatar", fix="call train_avatar first")
        config = self.budget_config(budget).sequence
        self._encoder, fallback_reason = self._resolve_encoder()
        head = self.head_model
        neutral = neutral_flame(self._flame_layer(), self._subject)
        template, self._root = neutral.vertices[0], neutral.joints[0, 0]
        use_jaw = self._avatar.config.condition_on_jaw
        camera_id = self._wrinkle_camera(train_view)
        samples = []
        for sequence in train_view.sequences:
            samples.append(self._sequence_sample(train_view, sequence, camera_id, config, template, use_jaw))
        index = {s.name: i for i, s in enumerate(samples)}
        training, data = self._training
        photo = PhotoData(
            fit=data,
            frame_sequence=[index[s] for s, _ in training.frames],
            frame_time=[t for _, t in training.frames],
        )
        period = max(1, round(train_view.fps))
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)  # nn init and dropout draw from the global generator
            self._model = GaussianSpeechSequenceModel(
                config,
                audio_dim=int(samples[0].audio.shape[1]),
                lip_index=lip_vertex_indices(head),
                wrinkle_dim=int(samples[0].wrinkles.shape[1]),
                expression_dim=int(samples[0].expressions.shape[1]),
                template=template,
                period=period,
            )
            log(
                f"gaussianspeech: Stage 2 on {len(samples)} sequences ({sum(len(s.audio) for s in samples)} "
                f"frames), audio {self._encoder.id}, {len(self._model.lip_index)} lip vertices, "
                f"wrinkle camera {camera_id}"
            )
            seq_log = train_sequence_model(
                self._model,
                samples,
                self._avatar,
                photo,
                self._root,
                config,
                seed=self.seed,
                weights=self.weights,
            )
        self._training = None

        def ends(values: list[float]) -> list[float] | None:
            if not values:
                return None
            window = max(1, min(20, len(values) // 10))
            return [float(np.mean(values[:window])), float(np.mean(values[-window:]))]

        self._info.update(
            {
                "audio_encoder": self._encoder.id,
                "audio_encoder_fallback": fallback_reason,
                "lip_vertices": int(len(self._model.lip_index)),
                "wrinkle_camera": camera_id,
                "stage2_losses_first_last": {
                    "lip (Eq. 7)": ends(seq_log.lip),
                    "wrinkle (Eq. 8)": ends(seq_log.wrinkle),
                    "expression (Eq. 9)": ends(seq_log.expression),
                    "vertices (Eq. 13)": ends(seq_log.vertices),
                    "photo (Eq. 16)": ends(seq_log.photo),
                },
                "stage2_disabled_losses": seq_log.disabled_terms,
                "driven_by": "audio: predicted canonical mesh and expressions + the request's rigid pose",
            }
        )
        return TrainStats(
            iterations=int(self._info.get("avatar_iterations", 0)) + len(seq_log.vertices),
            num_gaussians=self._avatar.num_gaussians,
            extra={
                "avatar_rgb_loss_first_last": self._info.get("avatar_rgb_loss"),
                "stage2_losses_first_last": self._info["stage2_losses_first_last"],
                "densification": self._info.get("avatar_events", []),
            },
        )

    def _wrinkle_camera(self, train_view: TrainData) -> str:
        """The training camera looking most directly at the face (mean tracked head direction)."""
        directions = []
        for sequence in train_view.sequences:
            rotation = axis_angle_to_matrix(
                torch.as_tensor(train_view.load_flame(sequence)["rotation"], dtype=torch.float32)
            )
            directions.append(rotation[:, :, 2])  # R @ +z: where the face points
        face = torch.cat(directions).mean(0).numpy()
        scores = {c: float(np.dot(cam.world_to_cam[2, :3], face)) for c, cam in train_view.cameras.items()}
        return min(scores, key=scores.get)  # optical axis most opposite to the face direction

    def canonical_targets(self, params: dict[str, np.ndarray], num_frames: int):
        """FLAME output (vertices [T, V, 3] = V_gt, landmarks) of tracked ``params`` in canonical space: the
        subject's shape, expressions and the TARGET_POSES, zero global rotation and translation."""
        shape = torch.as_tensor(self._subject["shape"], dtype=torch.float32)[None].expand(num_frames, -1)
        static_offset = self._subject.get("static_offset")
        static_offset = None if static_offset is None else torch.as_tensor(static_offset, dtype=torch.float32)

        def rows(key: str) -> torch.Tensor:
            return torch.as_tensor(np.asarray(params[key])[:num_frames], dtype=torch.float32)

        with torch.no_grad():
            return self._flame_layer()(
                shape=shape,
                expr=rows("expr"),
                static_offset=static_offset,
                **{k: rows(k) for k in TARGET_POSES if k in params},
            )

    def _sequence_sample(self, train_view, sequence, camera_id, config, template, use_jaw) -> SequenceSample:
        params = train_view.load_flame(sequence)
        check_flame(self.head_model, params, sequence)
        num_frames = train_view.num_frames(sequence)
        frames = np.arange(num_frames)

        def rows(key: str) -> torch.Tensor:
            return torch.as_tensor(np.asarray(params[key])[:num_frames], dtype=torch.float32)

        canonical = self.canonical_targets(params, num_frames)
        rotation = axis_angle_to_matrix(rows("rotation"))
        translation = rows("translation")
        landmarks = rigid_to_world(canonical.landmarks, rotation, translation, self._root).numpy()
        camera = train_view.cameras[camera_id]
        images = train_view.load_images(sequence, camera_id)
        masks = train_view.load_masks(sequence, camera_id)
        wrinkles = np.stack(
            [
                wrinkle_feature_vector(
                    images[t],
                    masks[t],
                    face_box(camera.project(landmarks[t]), camera.width, camera.height),
                    config.wrinkle_sigmas,
                    config.wrinkle_crop,
                    config.wrinkle_grid,
                )
                for t in frames
            ]
        )
        return SequenceSample(
            name=sequence,
            audio=self._audio_features(train_view.load_audio(sequence), train_view.fps, num_frames),
            offsets=canonical.vertices - template,
            expressions=expression_condition(params, frames, use_jaw),
            wrinkles=torch.as_tensor(wrinkles, dtype=torch.float32),
            rotation=rotation,
            translation=translation,
        )

    # --- inference ------------------------------------------------------------------------------------

    def _check_trained(self) -> None:
        if self._avatar is None or self._model is None:
            raise self._not_trained()

    def predict(self, audio: np.ndarray, fps: float, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(canonical vertices [T, V, 3], predicted expression condition e_pred [T, E']) from audio alone."""
        self._check_trained()
        return self._model.predict(self._audio_features(audio, fps, num_frames))

    def lip_index(self) -> torch.Tensor:
        """[L] the lip vertices supervising the Lip Transformer Encoder (Eq. 7)."""
        self._check_trained()
        return self._model.lip_index

    def render(self, request: RenderRequest) -> RenderOutput:
        self._check_trained()
        canonical, expressions = self.predict(request.audio, request.fps, request.num_frames)
        rotations = axis_angle_to_matrix(torch.as_tensor(request.rotation, dtype=torch.float32))
        translations = torch.as_tensor(request.translation, dtype=torch.float32)
        with torch.no_grad():
            world = rigid_to_world(canonical, rotations, translations, self._root)
        return self.render_frames(request, world, expressions, rotations)

    # --- checkpoint -----------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        self._check_trained()
        model = self._model
        dims = {
            "audio_dim": int(model.audio_norm.mean.numel()),
            "wrinkle_dim": int(model.wrinkle_norm.mean.numel()),
            "expression_dim": int(model.expression_norm.mean.numel()),
            "period": int(model.decoder.config.period),
        }
        self._save_avatar(
            path,
            extra={
                "sequence": dataclasses.asdict(model.config),
                "sequence_dims": dims,
                "audio_encoder_name": self._encoder.name,
            },
            tensors={"sequence.pt": {"state": model.state_dict(), "root": self._root}},
        )

    def load(self, path: Path) -> None:
        from avatars.audio import open_encoder

        meta, files = self._load_avatar(path, tensors=("sequence.pt",))
        try:
            state = files["sequence.pt"]
            sequence = dict(meta["sequence"])
            dims = meta["sequence_dims"]
        except KeyError as error:
            raise MethodError(
                f"cannot read the gaussianspeech sequence model (no {error} in config.json)",
                path=path,
                fix="delete the checkpoint folder and re-run with --force",
            ) from error
        sequence["wrinkle_sigmas"] = tuple(sequence["wrinkle_sigmas"])
        self._encoder = open_encoder(meta["audio_encoder_name"], self.weights)
        model_state = state["state"]
        self._model = GaussianSpeechSequenceModel(
            SequenceModelConfig(**sequence),
            audio_dim=dims["audio_dim"],
            lip_index=model_state["lip_index"].numpy(),
            wrinkle_dim=dims["wrinkle_dim"],
            expression_dim=dims["expression_dim"],
            template=model_state["template"],
            period=dims["period"],
        )
        self._model.load_state_dict(model_state)
        self._model.eval()
        self._root = state["root"]


__all__ = ["ASSUMPTIONS", "BUDGET_CONFIGS", "GaussianSpeechMethod"]
