"""GaussianSpeech's audio-conditioned sequence model (Aneja et al., GaussianSpeech, Sec. 4.2, Fig. 4).

The cascade, module by module, with the paper's names:

1. **Audio encoding**: wav2vec 2.0 TCN features followed by *Frequency Interpolation* to the video rate
   (``avatars.audio``; the offline default is ``logmel50`` interpolated the same way).
2. **Lip Transformer Encoder** (:class:`GaussianSpeechSequenceModel.lip_encoder`): resampled audio
   features -> personalised lip features ``c^{1:T}``, trained on the FLAME **lip vertices only** through a
   zero-initialised lip-vertex head (Eq. 7).
3. **Wrinkle Transformer Encoder**: ``[a; c]`` -> wrinkle feature vectors ``w^{1:T}``, trained on the
   per-frame features of the wrinkle detector (Eq. 8; offline: :func:`wrinkle_feature_vector`).
4. **Expression Encoder** ``E_exp``: ``cw = [c; w]`` -> FLAME expressions ``e_pred`` (Eq. 9).
5. **Expression2Latent MLP** ``ℰ`` and motion features ``m^{1:T} = [c^{1:T}; ℰ(e_pred^{1:T})]``.
6. **Motion decoder** ``D`` (:class:`avatars.sequence.SequenceDecoder`): a transformer decoder with the
   binary look-ahead mask in self-attention (Eq. 10), ``m`` fused by cross-attention under the
   Kronecker-delta alignment mask (Eq. 11), and the **Vertex Mapper** MLP (:class:`VertexMapper`)
   predicting canonical vertex offsets ``V_offset`` (Eq. 12); ``V_pred = T + V_offset``.
7. Training: Eqs. 7, 8, 9 pretrain the three encoders in cascade; ``L_vertices`` (Eq. 13) trains ℰ and D
   (Eq. 14); then ``L_vertices`` steps alternate with ``L_photo`` steps (Eq. 16) that update **only** the
   colour MLP θ_color and the per-Gaussian latents z_i (Eq. 17), the colour conditioned on *predicted*
   expressions (:func:`train_sequence_model`).

Eqs. 7, 8, 9 and 13 are written as sums of per-frame L2 norms; like FaceFormer's code (``nn.MSELoss``) we
minimise the mean squared error (assumption, recorded in the method's ``config()``). Every size the paper
leaves open (it refers to a supplement we do not have) is a field of :class:`SequenceModelConfig` with its
source in the comment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avatars.gaussian_speech_avatar import (
    FitData,
    GaussianSpeechAvatar,
    load_perceptual_terms,
    photometric_loss,
    ridge_features,
)
from avatars.perceptual import global_perceptual_loss, patch_perceptual_loss
from avatars.sequence import CausalTransformerEncoder, SequenceConfig, SequenceDecoder


@dataclasses.dataclass(frozen=True)
class SequenceModelConfig:
    """Sizes, switches and schedule of Stage 2. Defaults: the CPU (``quick``) configuration."""

    # Lip / Wrinkle / Expression Transformer Encoders (paper: "stacked multi-layer"; sizes: ours).
    encoder_dim: int = 64
    encoder_layers: int = 2
    encoder_heads: int = 4
    encoder_ffn: int = 128  # FaceFormer's 2 x d_model
    # Expression2Latent MLP (E+3 -> hidden -> latent; sizes: ours).
    latent_dim: int = 64
    # Motion decoder (1 layer, 4 heads, FFN 2 d as FaceFormer; d = encoder_dim + latent_dim, the size of m).
    decoder_layers: int = 1
    decoder_heads: int = 4
    dropout: float = 0.1  # torch / FaceFormer default
    # Eq. 11 alignment mask in the decoder's cross-attention; "none" = Table 4 "w/o alignment".
    alignment: str = "diagonal"
    # Table 4 switches.
    use_wrinkle_features: bool = True  # False: "w/o wrinkle features" (E_exp sees c only)
    finetune_audio: bool = True  # False: "w/o audio finetune" (the lip encoder is not trained on the subject)
    photo_finetune: bool = True  # False: "w/o color MLP & latent finetune" (no L_photo steps)
    # Wrinkle feature vector (offline detector): ridge responses at these scales, pooled on a grid x grid
    # layout of the face box (iBUG-68 landmark box of the tracked mesh) in the most frontal training camera.
    wrinkle_sigmas: tuple[float, ...] = (1.0, 2.0)
    wrinkle_grid: int = 8
    wrinkle_crop: int = 64  # face box resampled to crop x crop pixels before filtering
    # Schedule (paper: open; FaceFormer: Adam 1e-4, 100 epochs). CPU default 30 / 60 epochs: on the default
    # synthetic subject (10 sequences, ground-truth FLAME targets, no wrinkle features) 100 / 100 epochs
    # overfitted (train jaw correlation 0.99, test 0.68, rollout lip vertex error 3.04 mm) where 30 / 60
    # gave test 0.70 and 2.45 mm at 2/3 of the CPU time (/tmp experiment, not a benchmark figure).
    pretrain_epochs: int = 30  # each of Eqs. 7, 8, 9 (one step per training sequence per epoch)
    decoder_epochs: int = 60  # Eq. 14 before the alternation
    alternating_rounds: int = 300  # one L_vertices step + one L_photo step each
    lr: float = 1e-3
    lr_photo_latent: float = 2.5e-3  # GaussianAvatars' feature rate (as Stage 1)
    lr_photo_mlp: float = 1e-3  # as Stage 1's colour MLP
    lambda_global: float = 0.01  # as Stage 1 (used only with ArcFace weights)
    lambda_patch: float = 0.01  # as Stage 1 (used only with VGG weights)

    def scaled(self, **changes: Any) -> SequenceModelConfig:
        return dataclasses.replace(self, **changes)


def lip_vertex_indices(head) -> np.ndarray:
    """[L] int64 vertices of the lips: ``vertex_regions == lips`` (gsbench-head); for a head model without
    region labels (real FLAME), the vertices of the triangles holding the iBUG-68 mouth landmarks 48-67."""
    from tracking.head_model import REGIONS

    if head.vertex_regions is not None and (head.vertex_regions == REGIONS["lips"]).any():
        return np.flatnonzero(head.vertex_regions == REGIONS["lips"]).astype(np.int64)
    return np.unique(head.faces[head.lmk_faces_idx[48:68]]).astype(np.int64)


def face_box(points: np.ndarray, width: int, height: int, margin: float = 0.1) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) pixel box of ``points [N, 2]`` grown by ``margin`` of its size, clipped."""
    lo, hi = points.min(0), points.max(0)
    grow = margin * (hi - lo)
    x0, y0 = np.floor(lo - grow).astype(int)
    x1, y1 = np.ceil(hi + grow).astype(int)
    x0, y0 = max(0, min(x0, width - 2)), max(0, min(y0, height - 2))
    return x0, y0, max(x0 + 2, min(x1, width)), max(y0 + 2, min(y1, height))


def wrinkle_feature_vector(
    image: np.ndarray,
    mask: np.ndarray,
    box: tuple[int, int, int, int],
    sigmas: tuple[float, ...],
    crop: int,
    grid: int,
) -> np.ndarray:
    """``[len(sigmas) * grid * grid]`` wrinkle features of one frame (the Eq. 8 target ``w_gt``).

    The offline stand-in for the wrinkle detector [41]: the face box of ``image [H, W, 3] uint8`` is resampled
    to ``crop x crop``, the Hessian ridge filter (:func:`avatars.gaussian_speech_avatar.ridge_features`,
    Sato-style, inside the head ``mask``) is applied at each scale and its response averaged over a
    ``grid x grid`` layout of the box.
    """
    x0, y0, x1, y1 = box
    rgb = torch.as_tensor(image[y0:y1, x0:x1], dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
    inside = torch.as_tensor(mask[y0:y1, x0:x1], dtype=torch.float32)[None, None]
    rgb = F.interpolate(rgb, size=(crop, crop), mode="bilinear", align_corners=False, antialias=True)
    inside = F.interpolate(inside, size=(crop, crop), mode="bilinear", align_corners=False) > 0.5
    with torch.no_grad():
        ridges = ridge_features(rgb[0].permute(1, 2, 0), inside[0, 0], sigmas)  # [S, crop, crop]
        pooled = F.adaptive_avg_pool2d(ridges[None], grid)[0]  # [S, grid, grid]
    return pooled.reshape(-1).numpy()


@dataclasses.dataclass
class SequenceSample:
    """One training sequence, everything at the video rate (T frames)."""

    name: str
    audio: Tensor  # [T, D_a] audio features (raw, before standardisation)
    offsets: Tensor  # [T, V, 3] canonical V_gt - template (Eq. 13 target)
    expressions: Tensor  # [T, E'] FLAME expression condition psi = [expr, jaw_pose] (Eq. 9 target)
    wrinkles: Tensor  # [T, W] wrinkle feature vectors (Eq. 8 target)
    rotation: Tensor  # [T, 3, 3] tracked global head rotation (for the photo step)
    translation: Tensor  # [T, 3]


class Standardizer(nn.Module):
    """Per-dimension (or one global, ``scalar=True``) mean/std kept as buffers, so they travel in the
    checkpoint."""

    def __init__(self, dim: int, scalar: bool = False):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1 if scalar else dim))
        self.register_buffer("std", torch.ones(1 if scalar else dim))
        self.scalar = scalar

    def fit(self, values: Tensor) -> None:  # [N, dim]
        if self.scalar:
            self.mean.zero_()  # offsets: keep zero as zero (template = no motion)
            self.std.fill_(float(values.std().clamp(min=1e-8)))
        else:
            self.mean.copy_(values.mean(0))
            self.std.copy_(values.std(0).clamp(min=1e-6))

    def forward(self, values: Tensor) -> Tensor:
        return (values - self.mean) / self.std

    def inverse(self, values: Tensor) -> Tensor:
        return values * self.std + self.mean


class VertexMapper(nn.Module):
    """The Vertex Mapper MLP (Sec. 4.2): decoder features [B, T, d] -> vertex offsets [B, T, 3V]. Two layers
    (size: ours, the paper says "MLP"), the last one zero-initialised as FaceFormer's vertex head, so the
    untrained model outputs the template."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.hidden = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, out_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.relu(self.hidden(x)))


class GaussianSpeechSequenceModel(nn.Module):
    """Lip / Wrinkle / Expression encoders, Expression2Latent and the motion decoder (Fig. 4).

    All tensors are batched ``[B, T, ...]``; inputs and targets are standardised inside
    (:class:`Standardizer` buffers fitted on the training sequences).
    """

    def __init__(
        self,
        config: SequenceModelConfig,
        *,
        audio_dim: int,
        lip_index: np.ndarray,
        wrinkle_dim: int,
        expression_dim: int,
        template: Tensor,  # [V, 3] canonical neutral mesh T
        period: int,
    ):
        super().__init__()
        self.config = config
        self.num_vertices = int(template.shape[0])
        self.register_buffer("template", template.float().clone())
        self.register_buffer("lip_index", torch.as_tensor(lip_index, dtype=torch.long))
        d = config.encoder_dim
        encoder = SequenceConfig(
            d_model=d,
            num_heads=config.encoder_heads,
            num_layers=config.encoder_layers,
            ffn_dim=config.encoder_ffn,
            period=period,
            bias="binary",  # causal, as Eq. 10 (the paper trains the encoders "autoregressively")
            alignment="diagonal",
            dropout=config.dropout,
        )
        self.audio_norm = Standardizer(audio_dim)
        self.wrinkle_norm = Standardizer(wrinkle_dim)
        self.expression_norm = Standardizer(expression_dim)
        self.vertex_norm = Standardizer(1, scalar=True)
        # Lip Transformer Encoder + its lip-vertex head (Eq. 7), zero-initialised like FaceFormer's.
        self.lip_encoder = CausalTransformerEncoder(encoder, audio_dim)
        self.lip_head = nn.Linear(d, 3 * len(lip_index))
        nn.init.zeros_(self.lip_head.weight)
        nn.init.zeros_(self.lip_head.bias)
        # Wrinkle Transformer Encoder on [a; c] (Eq. 8).
        self.wrinkle_encoder = CausalTransformerEncoder(encoder, audio_dim + d)
        self.wrinkle_head = nn.Linear(d, wrinkle_dim)
        # Expression Encoder on cw = [c; w] (Eq. 9).
        expression_input = d + (wrinkle_dim if config.use_wrinkle_features else 0)
        self.expression_encoder = CausalTransformerEncoder(encoder, expression_input)
        self.expression_head = nn.Linear(d, expression_dim)
        # Expression2Latent MLP ℰ.
        self.expression2latent = nn.Sequential(
            nn.Linear(expression_dim, config.latent_dim),
            nn.ReLU(),
            nn.Linear(config.latent_dim, config.latent_dim),
        )
        motion_dim = d + config.latent_dim
        decoder = SequenceConfig(
            d_model=motion_dim,
            num_heads=config.decoder_heads,
            num_layers=config.decoder_layers,
            ffn_dim=2 * motion_dim,
            period=period,
            bias="binary",  # Eq. 10: look-ahead mask
            alignment=config.alignment,  # Eq. 11: M = delta_ij (or "none" for the ablation)
            dropout=config.dropout,
        )
        # Motion decoder D (Eq. 12) with the Vertex Mapper MLP as its output head.
        self.decoder = SequenceDecoder(decoder, audio_dim=motion_dim, out_dim=3 * self.num_vertices)
        self.decoder.output = VertexMapper(motion_dim, 3 * self.num_vertices)

    # --- the cascade -------------------------------------------------------------------------------

    def lip_features(self, audio: Tensor) -> Tensor:
        """c^{1:T} [B, T, d] from raw audio features [B, T, D_a]."""
        return self.lip_encoder(self.audio_norm(audio))

    def lip_offsets(self, lip: Tensor) -> Tensor:
        """Predicted lip-vertex offsets (standardised units) [B, T, 3L] (Eq. 7)."""
        return self.lip_head(lip)

    def wrinkle_features(self, audio: Tensor, lip: Tensor) -> Tensor:
        """w^{1:T} (standardised) [B, T, W] (Eq. 8)."""
        return self.wrinkle_head(self.wrinkle_encoder(torch.cat([self.audio_norm(audio), lip], -1)))

    def expressions(self, lip: Tensor, wrinkle: Tensor | None) -> Tensor:
        """e_pred (standardised) [B, T, E'] = E_exp([c; w]) (Eq. 9)."""
        inputs = torch.cat([lip, wrinkle], -1) if self.config.use_wrinkle_features else lip
        return self.expression_head(self.expression_encoder(inputs))

    def motion_features(self, lip: Tensor, expressions: Tensor) -> Tensor:
        """m^{1:T} = [c^{1:T}; ℰ(e_pred^{1:T})] [B, T, d + latent]."""
        return torch.cat([lip, self.expression2latent(expressions)], -1)

    def encode(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """(m [B, T, d + latent], e_pred standardised [B, T, E']) through the whole encoder cascade."""
        lip = self.lip_features(audio)
        wrinkle = self.wrinkle_features(audio, lip) if self.config.use_wrinkle_features else None
        expressions = self.expressions(lip, wrinkle)
        return self.motion_features(lip, expressions), expressions

    def vertices_from_offsets(self, offsets: Tensor) -> Tensor:
        """V_pred = T + V_offset: standardised offsets [B, T, 3V] -> canonical vertices [B, T, V, 3]."""
        offsets = self.vertex_norm.inverse(offsets).reshape(*offsets.shape[:2], self.num_vertices, 3)
        return self.template + offsets

    @torch.no_grad()
    def predict(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        """Inference from raw audio features [T, D_a]: (canonical vertices [T, V, 3] by autoregressive
        rollout of D, predicted expression condition e_pred [T, E'] in FLAME units)."""
        was_training = self.training
        self.eval()
        try:
            m, expressions = self.encode(audio[None])
            offsets = self.decoder.rollout(m, audio.shape[0])
            return self.vertices_from_offsets(offsets)[0], self.expression_norm.inverse(expressions)[0]
        finally:
            self.train(was_training)


@dataclasses.dataclass
class SequenceLog:
    """Losses per stage (mean over each epoch / every round)."""

    lip: list[float] = dataclasses.field(default_factory=list)
    wrinkle: list[float] = dataclasses.field(default_factory=list)
    expression: list[float] = dataclasses.field(default_factory=list)
    vertices: list[float] = dataclasses.field(default_factory=list)
    photo: list[float] = dataclasses.field(default_factory=list)
    disabled_terms: dict[str, str] = dataclasses.field(default_factory=dict)
    weight_ids: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class PhotoData:
    """The Stage-1 training images for the L_photo steps and the sequence frame each one shows."""

    fit: FitData
    frame_sequence: list[int]  # per FitData frame: index into the training samples
    frame_time: list[int]  # per FitData frame: frame index within that sequence


def rigid_to_world(canonical: Tensor, rotation: Tensor, translation: Tensor, root: Tensor) -> Tensor:
    """FLAME's global transform of canonical vertices: ``R (x - J0) + J0 + t``. canonical [..., V, 3],
    rotation [..., 3, 3], translation [..., 3], root J0 [3] (the subject's root joint)."""
    return (canonical - root) @ rotation.transpose(-1, -2) + root + translation[..., None, :]


def _epochs(num: int, order_generator: torch.Generator, samples: int):
    for _ in range(num):
        yield torch.randperm(samples, generator=order_generator).tolist()


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return (pred - target).square().mean()


def train_sequence_model(
    model: GaussianSpeechSequenceModel,
    samples: list[SequenceSample],
    avatar: GaussianSpeechAvatar,
    photo: PhotoData,
    root: Tensor,
    config: SequenceModelConfig,
    *,
    seed: int,
    weights: Any = None,
    on_round: Callable[[int], None] | None = None,
) -> SequenceLog:
    """Stage 2 of GaussianSpeech on ``samples`` (the training sequences), in the paper's order.

    1. Eq. 7: the Lip Transformer Encoder + lip head on the lip vertices (skipped for "w/o audio
       finetune": the encoder keeps its initial weights, i.e. generic, unpersonalised features).
    2. Eq. 8: the Wrinkle Transformer Encoder on [a; c] (c from the frozen lip encoder).
    3. Eq. 9: the Expression Encoder on [c; w].
    4. Eq. 14: ℰ and D on L_vertices (Eq. 13), e_pred from the frozen cascade, teacher forcing.
    5. The alternation: one L_vertices step (ℰ, D) on a sequence, then one L_photo step (Eq. 16) on a
       training image of that sequence rendered from the step's predicted canonical mesh (placed with the
       frame's tracked rigid pose) with colour conditioned on e_pred, updating only θ_color and z_i (Eq. 17).
    """
    generator = torch.Generator().manual_seed(seed)
    log_ = SequenceLog()
    with torch.no_grad():
        model.audio_norm.fit(torch.cat([s.audio for s in samples]))
        model.wrinkle_norm.fit(torch.cat([s.wrinkles for s in samples]))
        model.expression_norm.fit(torch.cat([s.expressions for s in samples]))
        model.vertex_norm.fit(torch.cat([s.offsets.reshape(-1, 1) for s in samples]))
    audio = [s.audio[None] for s in samples]
    lip_targets = [
        model.vertex_norm(s.offsets[:, model.lip_index].reshape(1, len(s.audio), -1)) for s in samples
    ]
    wrinkle_targets = [model.wrinkle_norm(s.wrinkles)[None] for s in samples]
    expression_targets = [model.expression_norm(s.expressions)[None] for s in samples]
    vertex_targets = [model.vertex_norm(s.offsets.reshape(1, len(s.audio), -1)) for s in samples]
    model.train()

    def pretrain(params, loss_of, record: list[float]) -> None:
        optimizer = torch.optim.Adam(params, lr=config.lr)
        for order in _epochs(config.pretrain_epochs, generator, len(samples)):
            losses = []
            for i in order:
                loss = loss_of(i)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
            record.append(float(np.mean(losses)))

    # 1. Eq. 7 (Lip Transformer Encoder).
    if config.finetune_audio:
        pretrain(
            [*model.lip_encoder.parameters(), *model.lip_head.parameters()],
            lambda i: _mse(model.lip_offsets(model.lip_features(audio[i])), lip_targets[i]),
            log_.lip,
        )
    model.eval()  # the cascade below the trained stage is frozen: its outputs without dropout
    with torch.no_grad():
        lips = [model.lip_features(a) for a in audio]
    model.train()
    # 2. Eq. 8 (Wrinkle Transformer Encoder).
    wrinkles: list[Tensor | None] = [None] * len(samples)
    if config.use_wrinkle_features:
        pretrain(
            [*model.wrinkle_encoder.parameters(), *model.wrinkle_head.parameters()],
            lambda i: _mse(model.wrinkle_features(audio[i], lips[i]), wrinkle_targets[i]),
            log_.wrinkle,
        )
        model.eval()
        with torch.no_grad():
            wrinkles = [model.wrinkle_features(a, c) for a, c in zip(audio, lips, strict=True)]
        model.train()
    # 3. Eq. 9 (Expression Encoder).
    pretrain(
        [*model.expression_encoder.parameters(), *model.expression_head.parameters()],
        lambda i: _mse(model.expressions(lips[i], wrinkles[i]), expression_targets[i]),
        log_.expression,
    )
    model.eval()
    with torch.no_grad():
        expressions = [model.expressions(c, w) for c, w in zip(lips, wrinkles, strict=True)]
    model.train()

    # 4. Eq. 14: ℰ and D on L_vertices.
    motion_params = [*model.expression2latent.parameters(), *model.decoder.parameters()]
    vertex_optimizer = torch.optim.Adam(motion_params, lr=config.lr)

    def vertices_step(i: int) -> Tensor:
        m = model.motion_features(lips[i], expressions[i])
        pred = model.decoder(m, vertex_targets[i])  # teacher forcing
        loss = _mse(pred, vertex_targets[i])  # Eq. 13
        vertex_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        vertex_optimizer.step()
        log_.vertices.append(float(loss.detach()))
        return pred.detach()

    for order in _epochs(config.decoder_epochs, generator, len(samples)):
        for i in order:
            vertices_step(i)

    # 5. Alternation of (a) L_vertices and (b) L_photo.
    photo_optimizer = None
    perceptual = None
    if config.photo_finetune and config.alternating_rounds > 0 and avatar.color_mlp is not None:
        photo_params = [avatar.rig.params["latent"], *avatar.color_mlp.parameters()]
        photo_optimizer = torch.optim.Adam(
            [
                {"params": photo_params[:1], "lr": config.lr_photo_latent},
                {"params": photo_params[1:], "lr": config.lr_photo_mlp},
            ],
            eps=1e-15,
        )
        perceptual = load_perceptual_terms(weights, {})
        log_.disabled_terms, log_.weight_ids = perceptual.disabled, perceptual.weight_ids
    fit = photo.fit
    background = torch.zeros(3)
    for round_index in range(config.alternating_rounds):
        image = int(torch.randint(int(fit.images.shape[0]), (1,), generator=generator))
        frame = int(fit.frame_index[image])
        i, t = photo.frame_sequence[frame], photo.frame_time[frame]
        pred = vertices_step(i)  # (a) Eq. 14
        if photo_optimizer is None:
            continue
        # (b) Eqs. 15-17: the predicted mesh and predicted expression drive the avatar.
        with torch.no_grad():
            canonical = model.vertices_from_offsets(pred[:, t : t + 1])[0, 0]
            sample = samples[i]
            world = rigid_to_world(canonical, sample.rotation[t], sample.translation[t], root)
            condition = model.expression_norm.inverse(expressions[i][0, t])
        camera = int(fit.camera_index[image])
        target, mask = fit.target(image)
        out = avatar.render(
            world, condition, sample.rotation[t], fit.world_to_cam[camera], fit.Ks[camera],
            fit.width, fit.height, background,
        )  # fmt: skip
        rendered = out.features[0]
        loss = photometric_loss(rendered, target)  # L_rgb
        if "global" in perceptual.networks:
            loss = loss + config.lambda_global * global_perceptual_loss(
                perceptual.networks["global"], rendered, target, mask
            )
        if "patch" in perceptual.networks:
            loss = loss + config.lambda_patch * patch_perceptual_loss(
                perceptual.networks["patch"],
                rendered,
                target,
                mask,
                avatar.config.num_patches,
                avatar.config.patch_size,
                generator,
            )
        photo_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=photo_params)  # Eq. 17: gradients for θ_color and z_i only
        photo_optimizer.step()
        log_.photo.append(float(loss.detach()))
        if on_round is not None:
            on_round(round_index)
    model.eval()
    return log_
