"""Audio-Plane's two-stage training (Sec. 3.5, 4.1).

* **Coarse** (``coarse_iterations``; paper 3,000): the static Gaussians from 1,000 random points, no
  dynamics: ``L_coarse = L_L1 + λ_LPIPS L_LPIPS``.
* **Fine** (``fine_iterations``; paper 100,000): Gaussians, Audio-Plane and deformation field jointly:
  ``L_fine = L_L1 + λ_LPIPS L_LPIPS + λ_mask L_mask`` (λ_LPIPS = 0.05, λ_mask = 0.1, margin 0.2).

One training image (frame of a training camera) per step. The rendered head is composited as the harness
composites it (``alpha * rgb + (1 - alpha) * image * (1 - mask)``) and compared with the whole frame.
LPIPS (v0.1, AlexNet) runs only when ``lpips-alexnet`` is registered in the weight registry; otherwise the
term is skipped and the reason logged and recorded. Densification is gsplat's ``DefaultStrategy``
(avatars.gaussians) over both stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from typing import Any

import torch
from torch import Tensor

from avatars.audio_plane.model import (
    AudioPlaneConfig,
    AudioPlaneHead,
    Placement,
    mask_hinge_loss,
    render_head,
)
from avatars.gaussians import DensificationStrategy, LearningRates, StrategyConfig
from gsbench.progress import warn_once

LPIPS_WEIGHT = "lpips-alexnet"
# torchvision ``alexnet().features`` index -> lpips ``net.slice<k>`` (lpips keeps torchvision's indices)
_ALEX_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}


@dataclasses.dataclass
class TrainingImages:
    """I training images of C cameras with their frame's rigid pose and audio."""

    images: Tensor  # [I, H, W, 3] uint8
    masks: Tensor  # [I, H, W] bool head masks
    mouth: Tensor  # [I, H, W] bool dilated mouth masks (reference masks m)
    mouth_valid: Tensor  # [I] bool
    neighbours: Tensor  # [I, 8, 16, C_audio] audio windows of the frame and its neighbours
    rotation: Tensor  # [I, 3] axis-angle
    translation: Tensor  # [I, 3]
    camera_index: Tensor  # [I]
    world_to_cam: Tensor  # [C, 4, 4]
    Ks: Tensor  # [C, 3, 3]

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclasses.dataclass
class TrainLog:
    losses: list[float] = dataclasses.field(default_factory=list)  # L1 per step
    mask_losses: list[float] = dataclasses.field(default_factory=list)  # L_mask per fine step
    events: list[dict] = dataclasses.field(default_factory=list)
    lpips: str = ""  # weight id, or "" when skipped
    lpips_reason: str = ""
    backend: str = ""
    seconds: float = 0.0
    coarse_seconds: float = 0.0


def load_lpips(weights: Any) -> tuple[torch.nn.Module | None, str, str]:
    """(LPIPS v0.1 AlexNet network, weight id, "") or (None, "", reason it is skipped). Nothing is downloaded:
    the AlexNet backbone comes from the registry's verified ``lpips-alexnet`` file, the linear heads ship in
    the ``lpips`` wheel (as ``benchmark.metrics.lpips_metric`` builds it for the metric)."""
    if weights is None:
        return None, "", f"no weight registry given; LPIPS term ({LPIPS_WEIGHT}) skipped"
    try:
        resolved = weights.find(LPIPS_WEIGHT)
    except Exception as error:  # noqa: BLE001 - any reason the file is unusable is reported, not hidden
        return None, "", f"LPIPS term skipped, {LPIPS_WEIGHT} unavailable: {str(error).splitlines()[0]}"
    try:
        import lpips
    except ImportError as error:
        return None, "", f"LPIPS term skipped: the lpips package does not import ({error})"
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(resolved.path, map_location="cpu", weights_only=True)
    backbone = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] == "features":
            backbone[f"net.slice{_ALEX_SLICES[int(parts[1])]}.{parts[1]}.{parts[2]}"] = tensor
    model.load_state_dict(backbone, strict=False)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval(), resolved.weight_id, ""


def make_optimizers(
    head: AudioPlaneHead, config: AudioPlaneConfig
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """(Gaussian Adam with named groups for densification, Adam of the grids and networks)."""
    lrs = LearningRates(
        means=config.lr_means, scales=config.lr_scales, quats=config.lr_quats,
        opacities=config.lr_opacities, sh0=config.lr_sh0, shN=config.lr_shN,
    )  # fmt: skip
    gaussian_optimizer = head.gaussians.make_optimizer(lrs, scene_scale=1.0)
    field_optimizer = torch.optim.Adam(
        [
            {"params": head.grid_parameters(), "lr": config.lr_grid},
            {"params": head.prototype_parameters(), "lr": config.lr_prototypes},
            {"params": head.network_parameters(), "lr": config.lr_network},
        ]
    )
    return gaussian_optimizer, field_optimizer


def train_head(
    head: AudioPlaneHead,
    placement: Placement,
    data: TrainingImages,
    config: AudioPlaneConfig,
    *,
    seed: int = 0,
    weights: Any = None,
    backend: str = "auto",
) -> TrainLog:
    """Coarse then fine stage on ``data`` (see the module docstring)."""
    train_log = TrainLog()
    lpips_net, train_log.lpips, train_log.lpips_reason = (
        load_lpips(weights) if config.lambda_lpips > 0 else (None, "", "lambda_lpips = 0")
    )
    if lpips_net is None:
        warn_once(f"audio-plane: {train_log.lpips_reason}")
    generator = torch.Generator().manual_seed(seed)
    gaussian_optimizer, field_optimizer = make_optimizers(head, config)
    strategy = DensificationStrategy(
        StrategyConfig(
            grow_grad2d=config.grow_grad2d,
            refine_start_iter=config.densify_from,
            refine_stop_iter=config.densify_until,
            refine_every=config.densify_every,
            reset_every=config.opacity_reset_every,
        ),
        scene_scale=1.0,
        seed=seed,
    )
    decay = (config.lr_means_final / config.lr_means) ** (1.0 / max(1, config.iterations))
    height, width = int(data.images.shape[1]), int(data.images.shape[2])
    start = time.perf_counter()
    for step in range(1, config.iterations + 1):
        fine = step > config.coarse_iterations
        i = int(torch.randint(len(data), (1,), generator=generator))
        camera = int(data.camera_index[i])
        out, d = render_head(
            head,
            placement,
            data.neighbours[i : i + 1] if fine else None,
            data.rotation[i],
            data.translation[i],
            data.world_to_cam[camera],
            data.Ks[camera],
            width,
            height,
            sh_degree=(step - 1) // config.sh_degree_interval,
            backend=backend,
        )
        train_log.backend = out.backend
        # The head is composited over the frame outside its mask exactly as the harness does at test time
        # (ER-NeRF / TalkingGaussian train on the composite too), so Gaussians spilling over the background
        # are pushed to vanish rather than to turn black.
        target = data.images[i].float() / 255.0
        background = target * (~data.masks[i])[..., None]
        rgb = out.features[0, ..., :3] + (1 - out.alpha[0]) * background
        l1 = (rgb - target).abs().mean()
        loss = l1
        if lpips_net is not None:
            pair = torch.stack([rgb, target]).permute(0, 3, 1, 2) * 2 - 1
            loss = loss + config.lambda_lpips * lpips_net(pair[:1], pair[1:]).mean()
        if fine and d is not None and bool(data.mouth_valid[i]):
            l_mask = mask_hinge_loss(out.features[0, ..., 3], data.mouth[i], config.margin, config.mask_norm)
            loss = loss + config.lambda_mask * l_mask
            train_log.mask_losses.append(float(l_mask.detach()))
        loss.backward()
        event = strategy.step_post_backward(head.gaussians, gaussian_optimizer, out, step)
        if event:
            train_log.events.append(event)
        gaussian_optimizer.step()
        gaussian_optimizer.zero_grad(set_to_none=True)
        if fine:
            field_optimizer.step()
        field_optimizer.zero_grad(set_to_none=True)
        for group in gaussian_optimizer.param_groups:
            if group["name"] == "means":
                group["lr"] *= decay
        train_log.losses.append(float(l1.detach()))
        if step == config.coarse_iterations:
            train_log.coarse_seconds = time.perf_counter() - start
    train_log.seconds = time.perf_counter() - start
    return train_log
