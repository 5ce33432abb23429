"""PSNR and SSIM against their formulas and scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from benchmark.metrics.image import psnr_per_frame, ssim_per_frame


def _pair(seed: int, shape=(3, 48, 64, 3), noise=0.1):
    rng = np.random.default_rng(seed)
    gt = rng.random(shape)
    pred = np.clip(gt + noise * rng.standard_normal(shape), 0, 1)
    return pred, gt


def test_psnr_identical_is_inf():
    _, gt = _pair(0)
    assert np.all(np.isinf(psnr_per_frame(gt, gt)))


def test_psnr_known_noise_level():
    rng = np.random.default_rng(1)
    gt = np.full((2, 32, 32, 3), 0.5)
    # +-0.05 everywhere: MSE = 0.0025 exactly -> PSNR = -10 log10(0.0025) = 26.0206 dB
    pred = gt + 0.05 * rng.choice([-1.0, 1.0], size=gt.shape)
    np.testing.assert_allclose(psnr_per_frame(pred, gt), -10 * np.log10(0.0025), atol=1e-9)


def test_psnr_masked_uses_only_mask_pixels():
    gt = np.zeros((1, 20, 20, 3))
    pred = gt.copy()
    pred[0, :10] = 0.1  # error only in the top half
    masks = np.zeros((1, 20, 20), bool)
    masks[0, :10] = True
    np.testing.assert_allclose(psnr_per_frame(pred, gt, masks), 20.0, atol=1e-9)  # MSE 0.01 inside
    assert np.isinf(psnr_per_frame(pred, gt, ~masks))[0]
    assert np.isnan(psnr_per_frame(pred, gt, np.zeros_like(masks)))[0]


@pytest.mark.parametrize("shape", [(3, 48, 64, 3), (2, 11, 13, 3), (1, 101, 37, 3)])
def test_ssim_equals_skimage(shape):
    pred, gt = _pair(2, shape)
    ours = ssim_per_frame(pred, gt)
    ref = [
        structural_similarity(
            p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
        )
        for p, g in zip(pred, gt, strict=True)
    ]
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    np.testing.assert_allclose(ours, ref, atol=1e-10)  # float64 throughout: equal to rounding


def test_ssim_float32_input_and_identity():
    pred, gt = _pair(3)
    np.testing.assert_allclose(ssim_per_frame(gt, gt), 1.0, atol=1e-12)
    ref = ssim_per_frame(pred, gt)
    np.testing.assert_allclose(ssim_per_frame(pred.astype(np.float32), gt.astype(np.float32)), ref, atol=1e-4)


def test_ssim_masked_is_map_mean_over_cropped_mask():
    pred, gt = _pair(4, (1, 40, 40, 3))
    full_mask = np.ones((1, 40, 40), bool)
    np.testing.assert_allclose(ssim_per_frame(pred, gt, full_mask), ssim_per_frame(pred, gt), atol=1e-12)
    # damage only the right half: SSIM over a left-half mask must be unaffected by the damage
    damaged = pred.copy()
    damaged[0, :, 25:] = 1 - damaged[0, :, 25:]
    left = np.zeros((1, 40, 40), bool)
    left[0, :, :14] = True  # window of the valid map column j covers image columns j .. j+10 < 25
    np.testing.assert_allclose(ssim_per_frame(damaged, gt, left), ssim_per_frame(pred, gt, left), atol=1e-12)
    assert ssim_per_frame(damaged, gt)[0] < ssim_per_frame(pred, gt)[0] - 0.1
