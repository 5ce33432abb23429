"""LPIPS through our loading path equals lpips.LPIPS built by the package with the same backbone."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest
import torch
import torchvision

from benchmark.metrics.lpips_metric import (
    backbone_state_for_lpips,
    build_lpips_alex,
    check_alexnet_state_dict,
    lpips_masked_per_frame,
    lpips_per_frame,
)


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """A torchvision AlexNet with seeded random weights, saved under torchvision's file name."""
    torch.manual_seed(7)
    net = torchvision.models.alexnet()
    folder = tmp_path_factory.mktemp("torch_home") / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    path = folder / "alexnet-owt-7be5be79.pth"
    torch.save(net.state_dict(), path)
    return path


def _frames(seed):
    rng = np.random.default_rng(seed)
    gt = rng.random((3, 64, 64, 3)).astype(np.float32)
    pred = np.clip(gt + 0.2 * rng.standard_normal(gt.shape), 0, 1).astype(np.float32)
    return pred, gt


def test_lpips_equals_package_reference(alexnet_file, monkeypatch):
    import lpips

    # the package's own path: torchvision reads the backbone from $TORCH_HOME/hub/checkpoints
    monkeypatch.setenv("TORCH_HOME", str(alexnet_file.parent.parent.parent))
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        reference = lpips.LPIPS(net="alex", version="0.1").eval()
    ours = build_lpips_alex(alexnet_file)
    ref_state, our_state = reference.state_dict(), ours.state_dict()
    assert set(ref_state) == set(our_state)
    for key in ref_state:
        assert torch.equal(ref_state[key], our_state[key]), key

    pred, gt = _frames(0)
    with torch.no_grad():
        expected = reference(
            torch.from_numpy(pred).permute(0, 3, 1, 2),
            torch.from_numpy(gt).permute(0, 3, 1, 2),
            normalize=True,
        ).reshape(-1)
    np.testing.assert_allclose(lpips_per_frame(ours, pred, gt, batch_size=2), expected.numpy(), rtol=1e-6)
    assert np.all(lpips_per_frame(ours, gt, gt) == 0)


def test_backbone_differs_from_random_init(alexnet_file):
    """Loading really replaces lpips' random backbone (else every LPIPS would silently be random)."""
    state = torch.load(alexnet_file, weights_only=True)
    model = build_lpips_alex(alexnet_file)
    mapped = backbone_state_for_lpips(state)
    assert len(mapped) == 10  # 5 convolutions x (weight, bias)
    for key, tensor in mapped.items():
        assert torch.equal(model.state_dict()[key], tensor)


def test_masked_lpips(alexnet_file):
    model = build_lpips_alex(alexnet_file)
    pred, gt = _frames(1)
    masks = np.zeros(gt.shape[:3], bool)
    masks[:, 16:48, 16:48] = True
    masked = lpips_masked_per_frame(model, pred, gt, masks)
    assert np.all(masked > 0)
    # outside the mask nothing counts: changing the background of pred leaves the value unchanged
    other = pred.copy()
    other[~masks] = 0.5
    np.testing.assert_allclose(lpips_masked_per_frame(model, other, gt, masks), masked, rtol=1e-6)
    assert np.isnan(lpips_masked_per_frame(model, pred, gt, np.zeros_like(masks))).all()


def test_check_alexnet_rejects_other_state_dict(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, path)
    assert "shape" in check_alexnet_state_dict(path) or "missing" in check_alexnet_state_dict(path)
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    assert check_alexnet_state_dict(tmp_path / "junk.pth") is not None
