"""PSNR and SSIM on [0, 1] RGB frames, full frame and inside the head mask.

PSNR (per frame, then averaged over frames by the caller)::

    psnr = -10 log10( mean over H, W, 3 of (pred - gt)^2 )        (inf when the frames are equal)

SSIM (Wang et al. 2004, Eq. 13) with the standard Gaussian window, 11x11, sigma 1.5, K1 = 0.01,
K2 = 0.03, data range 1, population (not sample) covariances, computed per channel and averaged::

    SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

Border rule: **"valid"** -- the SSIM map is evaluated only where the 11x11 window lies inside the image
(an (H-10) x (W-10) map), and the frame's SSIM is its mean. This equals scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
channel_axis=-1)``, which filters with reflect padding but then crops 5 pixels from every border before
averaging, and nerfbaselines/dm_pix (valid convolution). 3DGS-style ``ssim()`` (zero padding, "same")
gives slightly different numbers and is not used.

Masked variants (our definitions; the mask is the head region, True = head):

* ``psnr_masked``: the MSE is averaged over mask pixels only (all 3 channels), not over the frame, so it
  does not depend on how much background the frame holds.
* ``ssim_masked``: the same full-frame SSIM map, averaged over the mask pixels that lie in the valid
  region (the mask cropped by 5 pixels on every side).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from benchmark.metrics.registry import Clip, Metric, MetricResult, frames_mean, mouth_mean, register_metric
from gsbench.metric_table import MetricInfo

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr_per_frame(pred: np.ndarray, gt: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
    """[T] PSNR in dB of [T,H,W,3] images in [0,1]; with ``masks [T,H,W]`` the MSE is over mask pixels.

    A frame with an empty mask gives NaN.
    """
    diff2 = (np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) ** 2
    if masks is None:
        mse = diff2.reshape(len(diff2), -1).mean(axis=1)
    else:
        m = np.asarray(masks, bool)
        count = m.reshape(len(m), -1).sum(axis=1) * diff2.shape[-1]
        total = (diff2 * m[..., None]).reshape(len(diff2), -1).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mse = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(mse)


@functools.cache
def _gaussian_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


@functools.cache
def _band(size: int) -> torch.Tensor:
    """[size-10, size] matrix whose row i holds the Gaussian window at columns i .. i+10."""
    g = _gaussian_1d()
    band = torch.zeros(size - SSIM_WINDOW + 1, size, dtype=torch.float64)
    for i in range(band.shape[0]):
        band[i, i : i + SSIM_WINDOW] = g
    return band


def _filter_valid(x: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter without padding: [N,C,H,W] -> [N,C,H-10,W-10].

    Written as band-matrix products (rows, then columns): on CPU this is several times faster in
    float64 than a depthwise ``conv2d``.
    """
    return _band(x.shape[-2]) @ x @ _band(x.shape[-1]).T


def ssim_map(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """SSIM map [N, C, H-10, W-10] (valid region) of float64 images [N, C, H, W]."""
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    stacked = torch.cat([pred, gt, pred * pred, gt * gt, pred * gt], dim=1)
    filtered = _filter_valid(stacked)
    mu_x, mu_y, xx, yy, xy = filtered.chunk(5, dim=1)
    sigma_x = xx - mu_x * mu_x
    sigma_y = yy - mu_y * mu_y
    sigma_xy = xy - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2)
    )


def ssim_per_frame(
    pred: np.ndarray, gt: np.ndarray, masks: np.ndarray | None = None, batch_size: int = 16
) -> np.ndarray:
    """[T] SSIM of [T,H,W,3] images in [0,1] (valid border rule); masked: mean of the map over the mask."""
    if pred.shape[1] < SSIM_WINDOW or pred.shape[2] < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {pred.shape[1:3]}")
    half = SSIM_WINDOW // 2
    out = []
    for start in range(0, len(pred), batch_size):
        p = torch.from_numpy(np.asarray(pred[start : start + batch_size], np.float64)).permute(0, 3, 1, 2)
        g = torch.from_numpy(np.asarray(gt[start : start + batch_size], np.float64)).permute(0, 3, 1, 2)
        s = ssim_map(p, g).mean(dim=1)  # [B, H-10, W-10], channels averaged as skimage does
        if masks is None:
            out.append(s.mean(dim=(1, 2)))
            continue
        m = torch.from_numpy(np.asarray(masks[start : start + batch_size], bool))[:, half:-half, half:-half]
        area = m.sum(dim=(1, 2))
        value = (s * m).sum(dim=(1, 2)) / area.clamp(min=1)
        out.append(torch.where(area > 0, value, torch.full_like(value, float("nan"))))
    return torch.cat(out).numpy()


def compute_psnr(clip: Clip) -> dict[str, MetricResult]:
    out = {"psnr": frames_mean("psnr", psnr_per_frame(clip.pred, clip.gt))}
    if clip.masks is not None:
        out["psnr_masked"] = frames_mean("psnr_masked", psnr_per_frame(clip.pred, clip.gt, clip.masks))
    if clip.mouth_boxes is not None:
        out["psnr_mouth"] = mouth_mean("psnr_mouth", psnr_per_frame, clip.pred, clip.gt, clip.mouth_boxes)
    return out


SSIM_RULE = {
    "window": "gaussian 11x11 sigma 1.5",
    "border": "valid (= skimage mean)",
    "channels": "mean of the R, G, B SSIM maps",
}


def compute_ssim(clip: Clip) -> dict[str, MetricResult]:
    out = {"ssim": frames_mean("ssim", ssim_per_frame(clip.pred, clip.gt), **SSIM_RULE)}
    if clip.masks is not None:
        out["ssim_masked"] = frames_mean(
            "ssim_masked", ssim_per_frame(clip.pred, clip.gt, clip.masks), **SSIM_RULE
        )
    if clip.mouth_boxes is not None:
        out["ssim_mouth"] = mouth_mean(
            "ssim_mouth", ssim_per_frame, clip.pred, clip.gt, clip.mouth_boxes, **SSIM_RULE
        )
    return out


PSNR = register_metric(
    Metric(
        name="psnr",
        outputs=(
            MetricInfo(
                "psnr",
                "higher",
                "PSNR (dB)",
                column=10,
                ranks=("mono-front", "multiview"),
                convention="PSNR: per frame over the full frame in [0, 1], then the mean over frames; "
                "`*_masked` inside the ground-truth head mask, `*_mouth` inside the lip box (a square of one "
                "side per dataset centred on the ground-truth mouth landmarks, benchmark/metrics/mouth.py).",
            ),
            MetricInfo("psnr_masked", "higher", "PSNR head (dB)", column=20),
            MetricInfo("psnr_mouth", "higher", "PSNR mouth (dB)", column=70),
        ),
        compute=compute_psnr,
        order=10,
        mouth_output="psnr_mouth",
    )
)

SSIM = register_metric(
    Metric(
        name="ssim",
        outputs=(
            MetricInfo(
                "ssim",
                "higher",
                "SSIM",
                column=30,
                convention="SSIM: Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, the mean of the R, G, "
                "B SSIM maps over the valid region (where the window lies inside the image) = scikit-image "
                "`gaussian_weights=True` and nerfbaselines; 3DGS-style zero-padded SSIM gives other "
                "numbers.",
            ),
            MetricInfo("ssim_masked", "higher", "SSIM head", column=40),
            MetricInfo("ssim_mouth", "higher", "SSIM mouth", column=80),
        ),
        compute=compute_ssim,
        order=20,
        mouth_output="ssim_mouth",
    )
)
