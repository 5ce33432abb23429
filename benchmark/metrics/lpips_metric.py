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

from gsbench.errors import WeightsError

# torchvision alexnet().features index -> lpips slice number
_ALEX_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}


def _read_alexnet(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a weights problem
        raise WeightsError(
            f"cannot read as a torch state dict ({exc})",
            path=path,
            fix="pass torchvision's alexnet-owt-7be5be79.pth",
        ) from exc
    if not isinstance(state, dict):
        raise WeightsError("not a state dict", path=path, fix="pass torchvision's alexnet-owt-7be5be79.pth")
    return state


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


def check_alexnet_state_dict(path: Path) -> str | None:
    """None if ``path`` holds torchvision AlexNet ``features.*`` tensors of the right shapes."""
    import torchvision

    try:
        state = _read_alexnet(Path(path))
    except WeightsError as error:
        return str(error)
    expected = {
        k: v for k, v in torchvision.models.alexnet().state_dict().items() if k.startswith("features.")
    }
    for key, tensor in expected.items():
        if key not in state:
            return f"missing key {key}"
        if tuple(state[key].shape) != tuple(tensor.shape):
            return f"{key}: shape {tuple(state[key].shape)} != {tuple(tensor.shape)}"
    return None


def build_lpips_alex(alexnet_path: Path) -> torch.nn.Module:
    """``lpips.LPIPS(net='alex', version='0.1')`` with our AlexNet backbone file, in eval mode."""
    import lpips

    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    backbone = backbone_state_for_lpips(_read_alexnet(Path(alexnet_path)))
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    not_loaded = [k for k in missing if k.startswith("net.")]
    if not_loaded or unexpected:
        raise WeightsError(
            f"AlexNet backbone keys do not match lpips (missing {not_loaded[:3]}, "
            f"unexpected {unexpected[:3]})",
            path=alexnet_path,
            fix="pass torchvision's alexnet-owt-7be5be79.pth",
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
