"""LPIPS v0.1 with the AlexNet backbone (Zhang et al., CVPR 2018), through the ``lpips`` package.

The linear heads ship in the lpips wheel (``lpips/weights/v0.1/alex.pth``). The backbone is torchvision's
ImageNet AlexNet, which ``lpips.LPIPS(net='alex')`` would download: we build
``lpips.LPIPS(net='alex', pretrained=True, pnet_rand=True)`` (random backbone, no network access) and load
the registry's ``alexnet-owt-7be5be79.pth`` into its slices ourselves. lpips splits
``torchvision.models.alexnet().features`` into ``slice1..slice5`` keeping the module indices, so
``features.<i>.<param>`` maps to ``net.slice<k>.<i>.<param>``; the classifier is not used.

Inputs are [0, 1] images scaled to [-1, 1] (``normalize=True``), full frame, as RAD-NeRF/ER-NeRF/
TalkingGaussian evaluate.

``lpips_masked`` (our definition): both images are composited on black outside the head mask, the
spatial LPIPS map (``spatial=True``: each layer's distance map upsampled bilinearly to the image size
and summed) is averaged over the mask pixels only. Pixels outside the mask therefore neither count nor
differ between the two inputs.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmark.metrics import mouth
from benchmark.metrics.registry import (
    Clip,
    Metric,
    MetricResult,
    frames_mean,
    missing,
    mouth_mean,
    register_metric,
)
from gsbench.errors import WeightsError
from gsbench.metric_table import MetricInfo
from gsbench.pretrained import PretrainedNetwork, read_state_dict, shape_problem

# torchvision alexnet().features index -> lpips slice number
_ALEX_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}


def backbone_state_for_lpips(alexnet_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision AlexNet state dict -> the ``net.slice<k>.<i>.*`` keys of ``lpips.LPIPS(net='alex')``."""
    out = {}
    for key, tensor in alexnet_state.items():
        parts = key.split(".")
        if parts[0] != "features":
            continue
        index = int(parts[1])
        out[f"net.slice{_ALEX_SLICES[index]}.{index}.{parts[2]}"] = tensor
    return out


ALEXNET_FIX = "pass torchvision's alexnet-owt-7be5be79.pth"


def check_alexnet_state_dict(path: Path) -> str | None:
    """None if ``path`` holds torchvision AlexNet ``features.*`` tensors of the right shapes."""
    import torchvision

    try:
        state = read_state_dict(path, fix=ALEXNET_FIX)
    except WeightsError as error:
        return str(error)
    with torch.device("meta"):
        expected = {
            k: tuple(v.shape)
            for k, v in torchvision.models.alexnet().state_dict().items()
            if k.startswith("features.")
        }
    return shape_problem(state, expected, "torchvision AlexNet")


def build_lpips_alex(alexnet_path: Path) -> torch.nn.Module:
    """``lpips.LPIPS(net='alex', version='0.1')`` with our AlexNet backbone file, in eval mode."""
    import lpips

    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    backbone = backbone_state_for_lpips(read_state_dict(alexnet_path, fix=ALEXNET_FIX))
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    not_loaded = [k for k in missing if k.startswith("net.")]
    if not_loaded or unexpected:
        raise WeightsError(
            f"AlexNet backbone keys do not match lpips (missing {not_loaded[:3]}, "
            f"unexpected {unexpected[:3]})",
            path=alexnet_path,
            fix=ALEXNET_FIX,
        )
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()


def _to_nchw(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(0, 3, 1, 2)


@torch.no_grad()
def lpips_per_frame(
    model: torch.nn.Module, pred: np.ndarray, gt: np.ndarray, batch_size: int = 8
) -> np.ndarray:
    """[T] LPIPS of [T,H,W,3] float images in [0,1] (scaled to [-1,1] inside, ``normalize=True``)."""
    out = []
    for start in range(0, len(pred), batch_size):
        p, g = _to_nchw(pred[start : start + batch_size]), _to_nchw(gt[start : start + batch_size])
        out.append(model(p, g, normalize=True).reshape(-1))
    return torch.cat(out).numpy().astype(np.float64)


@torch.no_grad()
def lpips_masked_per_frame(
    model: torch.nn.Module, pred: np.ndarray, gt: np.ndarray, masks: np.ndarray, batch_size: int = 8
) -> np.ndarray:
    """[T] masked LPIPS (see module docstring); NaN for a frame whose mask is empty."""
    out = []
    previous = model.spatial
    model.spatial = True
    try:
        for start in range(0, len(pred), batch_size):
            m = torch.from_numpy(np.asarray(masks[start : start + batch_size], bool)).float()[:, None]
            p = _to_nchw(pred[start : start + batch_size]) * m
            g = _to_nchw(gt[start : start + batch_size]) * m
            lpips_map = model(p, g, normalize=True)  # [B,1,H,W]
            area = m.sum(dim=(1, 2, 3))
            value = (lpips_map * m).sum(dim=(1, 2, 3)) / area.clamp(min=1)
            out.append(torch.where(area > 0, value, torch.full_like(value, float("nan"))))
    finally:
        model.spatial = previous
    return torch.cat(out).numpy().astype(np.float64)


ALEXNET = PretrainedNetwork(
    name="lpips-alexnet",
    filename="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    description="torchvision ImageNet AlexNet (IMAGENET1K_V1): the LPIPS v0.1 'alex' backbone",
    used_by="metric lpips (benchmark.metrics.lpips_metric)",
    sha256_prefix="7be5be79",
    checksum_note="full sha256 unpublished; torchvision's 8-hex file-name prefix is checked",
    check=check_alexnet_state_dict,
)
LPIPS_INFO = {"net": "alex", "version": "0.1", "inputs": "[-1,1] (normalize=True)"}


def compute_lpips(clip: Clip) -> dict[str, MetricResult]:
    names = ["lpips"] + (["lpips_masked"] if clip.masks is not None else [])
    names += ["lpips_mouth"] if clip.mouth_boxes is not None else []
    try:
        weight = clip.weights.find(ALEXNET.name)
    except WeightsError as error:
        return {n: missing(n, str(error)) for n in names}
    model = build_lpips_alex(weight.path)
    pred, gt, boxes = clip.pred, clip.gt, clip.mouth_boxes
    out = {"lpips": frames_mean("lpips", lpips_per_frame(model, pred, gt), weight.weight_id, **LPIPS_INFO)}
    if clip.masks is not None:
        out["lpips_masked"] = frames_mean(
            "lpips_masked",
            lpips_masked_per_frame(model, pred, gt, clip.masks),
            weight.weight_id,
            **LPIPS_INFO,
        )
    if boxes is not None:
        if boxes.size < mouth.LPIPS_MIN_SIDE:
            out["lpips_mouth"] = missing(
                "lpips_mouth",
                f"lip box of {boxes.size} px < {mouth.LPIPS_MIN_SIDE} px (AlexNet)",
                weight.weight_id,
            )
        else:
            out["lpips_mouth"] = mouth_mean(
                "lpips_mouth",
                lambda p, g: lpips_per_frame(model, p, g),
                pred,
                gt,
                boxes,
                weight.weight_id,
                **LPIPS_INFO,
            )
    return out


LPIPS = register_metric(
    Metric(
        name="lpips",
        outputs=(
            MetricInfo(
                "lpips",
                "lower",
                "LPIPS",
                column=50,
                convention="LPIPS: v0.1 AlexNet (`lpips.LPIPS(net='alex')`, inputs scaled to [-1, 1]).",
            ),
            MetricInfo("lpips_masked", "lower", "LPIPS head", column=60),
            MetricInfo("lpips_mouth", "lower", "LPIPS mouth", column=90),
        ),
        compute=compute_lpips,
        order=30,
        networks=(ALEXNET,),
        mouth_output="lpips_mouth",
    )
)
