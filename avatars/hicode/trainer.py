"""HiCoDe's three-stage training of the deformable Gaussians ("Expression-Controlled 3DGS Head Synthesis").

| stage | paper iterations | frames | deformation | add/prune points |
|---|---|---|---|---|
| initialisation | 3,000 | first frame only | off | yes |
| deformation | 2,000 | all | on | yes |
| refinement | 15,000 | all | on | no |

One loss in every stage (Eq. 15, :class:`avatars.hicode.losses.FaceLoss`), one frame per step. Densification
is 3DGS's (gsplat ``DefaultStrategy`` rules, :class:`avatars.gaussians.DensificationStrategy`) and stops when
the refinement stage starts. Learning rates: the 3DGS per-attribute rates (position 1.6e-4 → 1.6e-6,
exponential), the deformation network 8e-4 → 1.6e-6 log-linear over the deformation and refinement stages
(Deformable 3DGS). While training, F_Δ sees the *tracked* control signals (FLAME 3DMM, pose-free MediaPipe
landmarks): the paper trains the modules separately and does not say which signals the Gaussians see (ours).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
from torch import Tensor

from avatars.gaussians import DensificationStrategy, LearningRates, StrategyConfig
from avatars.hicode.hfec import Controls
from avatars.hicode.losses import FaceLoss, landmark_anchors, projected_landmarks
from avatars.hicode.model import HiCoDeHead
from gsbench.progress import log as progress_log


@dataclasses.dataclass(frozen=True)
class HeadTrainConfig:
    init_steps: int = 3_000
    deform_steps: int = 2_000
    refine_steps: int = 15_000
    densify_every: int = 100
    densify_from: int = 500  # 3DGS's refine_start_iter
    grow_grad2d: float = 2e-4
    prune_opa: float = 0.005
    opacity_reset_every: int = 3_000  # 3DGS
    max_gaussians: int | None = None  # CPU budgets: no densification step (add or prune) starts at or above
    lambdas: tuple[float, float, float, float] = (1.0, 0.2, 0.1, 0.01)  # λ1..λ4 of Eq. 15 (ours)
    vgg_every: int = 1  # L_VGG on every n-th step (CPU budgets: 4)
    wing_anchors: int = 8
    means_lr: float = 1.6e-4
    means_lr_final: float = 1.6e-6
    deformation_lr: float = 8e-4
    deformation_lr_final: float = 1.6e-6
    backend: str = "cpu"

    @property
    def total_steps(self) -> int:
        return self.init_steps + self.deform_steps + self.refine_steps


@dataclasses.dataclass
class HeadData:
    """The training frames of one camera. F frames, L landmarks, K 3DMM coefficients."""

    images: Tensor  # [F, H, W, 3] uint8
    masks: Tensor  # [F, H, W] bool
    rotations: Tensor  # [F, 3, 3]
    translations: Tensor  # [F, 3]
    threedmm: Tensor  # [F, K] standardised 3dmm(t)
    landmarks: Tensor  # [F, L, 3] normalised canonical lmds(t) (invalid ones = the mean)
    landmarks2d: Tensor  # [F, L, 2] MediaPipe detections (px)
    landmarks2d_valid: Tensor  # [F, L] bool
    mouth_boxes: list  # [F] (y0, y1, x0, x1) | None
    world_to_cam: Tensor  # [4, 4]
    K: Tensor  # [3, 3]
    audio: Tensor | None = None  # [F, A] per-frame audio features (variant "none")

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    def controls(self, frame: int) -> Controls:
        return Controls(
            threedmm=self.threedmm[frame],
            landmarks=self.landmarks[frame],
            audio=None if self.audio is None else self.audio[frame],
        )

    def target(self, frame: int) -> Tensor:
        return self.images[frame].float() / 255.0 * self.masks[frame][..., None]


@dataclasses.dataclass
class HeadTrainLog:
    losses: list[float] = dataclasses.field(default_factory=list)
    terms: list[dict[str, float]] = dataclasses.field(default_factory=list)
    densification: list[dict] = dataclasses.field(default_factory=list)
    stage_seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    stage_gaussians: dict[str, int] = dataclasses.field(default_factory=dict)
    backend: str = ""


def stage_of(step: int, config: HeadTrainConfig) -> str:
    """``step`` counted from 1."""
    if step <= config.init_steps:
        return "initialization"
    if step <= config.init_steps + config.deform_steps:
        return "deformation"
    return "refinement"


def train_head(
    head: HiCoDeHead,
    data: HeadData,
    config: HeadTrainConfig,
    *,
    landmark_anchor_points: Tensor,  # [L, 3] canonical landmark positions for the Wing proxy (metres)
    densify_scale: float,  # scene scale of the densification thresholds (metres)
    vgg: torch.nn.Module | None = None,
    seed: int = 0,
) -> HeadTrainLog:
    height, width = data.images.shape[1:3]
    gaussians = head.gaussians
    rates = dataclasses.replace(LearningRates(), means=config.means_lr)
    g_opt = gaussians.make_optimizer(rates, scene_scale=1.0)  # position lr in metres (one camera: no extent)
    d_opt = torch.optim.Adam(head.deformation.parameters(), lr=config.deformation_lr)
    strategy = DensificationStrategy(
        StrategyConfig(
            prune_opa=config.prune_opa,
            grow_grad2d=config.grow_grad2d,
            refine_start_iter=config.densify_from,
            refine_stop_iter=config.init_steps + config.deform_steps,  # no add/prune in refinement
            refine_every=config.densify_every,
            reset_every=config.opacity_reset_every,
        ),
        scene_scale=densify_scale,
        seed=seed,
    )
    loss_fn = FaceLoss(config.lambdas, vgg)
    generator = torch.Generator().manual_seed(seed)
    total = config.total_steps
    means_decay = (config.means_lr_final / config.means_lr) ** (1.0 / max(1, total))
    deform_total = max(1, config.deform_steps + config.refine_steps)
    log = HeadTrainLog()
    anchors = landmark_anchors(gaussians.means.detach(), landmark_anchor_points, config.wing_anchors)
    start = time.perf_counter()
    previous_stage = "initialization"
    for step in range(1, total + 1):
        stage = stage_of(step, config)
        if stage != previous_stage:
            log.stage_seconds[previous_stage] = time.perf_counter() - start
            log.stage_gaussians[previous_stage] = len(gaussians)
            start, previous_stage = time.perf_counter(), stage
        if stage == "initialization":
            frame, controls = 0, None  # the first frame, deformation network off
        else:
            frame = int(torch.randint(data.num_frames, (1,), generator=generator))
            controls = data.controls(frame)
            t = (step - config.init_steps - 1) / deform_total
            for group in d_opt.param_groups:  # Deformable 3DGS: log-linear decay
                group["lr"] = math.exp(
                    (1 - t) * math.log(config.deformation_lr) + t * math.log(config.deformation_lr_final)
                )
        out, world = head.render(
            controls,
            data.rotations[frame],
            data.translations[frame],
            data.world_to_cam,
            data.K,
            width,
            height,
            backend=config.backend,
        )
        log.backend = out.backend
        valid = data.landmarks2d_valid[frame]
        predicted = projected_landmarks(world, anchors, data.world_to_cam, data.K) if valid.any() else None
        loss, terms = loss_fn(
            out.features[0],
            data.target(frame),
            data.mouth_boxes[frame],
            predicted,
            data.landmarks2d[frame],
            valid,
            use_vgg=(step % config.vgg_every == 0),
        )
        loss.backward()
        count = len(gaussians)
        if stage != "refinement" and (config.max_gaussians is None or count < config.max_gaussians):
            event = strategy.step_post_backward(gaussians, g_opt, out, step)
            if event:
                log.densification.append({"stage": stage, **event})
        g_opt.step()
        g_opt.zero_grad(set_to_none=True)
        if controls is not None:
            d_opt.step()
        d_opt.zero_grad(set_to_none=True)
        for group in g_opt.param_groups:
            if group["name"] == "means":
                group["lr"] *= means_decay
        if len(gaussians) != count:
            anchors = landmark_anchors(gaussians.means.detach(), landmark_anchor_points, config.wing_anchors)
        log.losses.append(float(loss.detach()))
        log.terms.append(terms)
        if step % max(1, total // 10) == 0:
            progress_log(
                f"hicode: step {step}/{total} ({stage}), loss {np.mean(log.losses[-20:]):.4f}, "
                f"{len(gaussians)} Gaussians, {time.perf_counter() - start:.0f} s in this stage"
            )
    log.stage_seconds[previous_stage] = time.perf_counter() - start
    log.stage_gaussians[previous_stage] = len(gaussians)
    return log


def anchor_points(canonical: np.ndarray, valid: np.ndarray, fallback: np.ndarray) -> Tensor:
    """The init frame's canonical landmarks ``[L, 3]``, the training mean where it has no detection."""
    return torch.as_tensor(np.where(valid[:, None], canonical, fallback), dtype=torch.float32)
