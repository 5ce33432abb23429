"""GaussianSpeech's perceptual losses (avatars.perceptual): networks, Gram matrices, crops and patches."""

from __future__ import annotations

import pytest
import torch
import torchvision

from avatars.perceptual import (
    IResNet,
    VGGFeatures,
    global_perceptual_loss,
    gram_matrix,
    mask_square,
    patch_perceptual_loss,
    sample_patches,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_iresnet_has_arcface_torch_layout_and_stage_shapes():
    model = IResNet(18).eval()
    keys = model.state_dict().keys()
    for key in ("conv1.weight", "prelu.weight", "layer1.0.bn1.weight", "layer1.0.downsample.0.weight",
                "layer4.1.conv2.weight", "bn2.running_var", "fc.weight", "features.weight"):  # fmt: skip
        assert key in keys
    assert model.fc.in_features == 512 * 7 * 7
    maps = model.feature_maps(torch.zeros(1, 3, 112, 112))
    assert [tuple(m.shape[1:]) for m in maps] == [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)]
    assert model(torch.zeros(2, 3, 112, 112)).shape == (2, 512)
    assert sum(len(getattr(IResNet(100), f"layer{i}")) for i in range(1, 5)) == 3 + 13 + 30 + 3


def test_vgg_features_are_torchvisions_relu_layers():
    torch.manual_seed(0)
    reference = torchvision.models.vgg16().features.eval()
    ours = VGGFeatures("vgg16").eval()
    ours.features.load_state_dict(reference[: len(ours.features)].state_dict())
    x = torch.rand(1, 3, 32, 32)
    outputs = ours(x)
    normalised = (x - ours.mean) / ours.std
    for index, out in zip((3, 8, 15, 22), outputs, strict=True):
        assert torch.allclose(out, reference[: index + 1](normalised), atol=1e-5)


def test_gram_matrix_matches_its_definition():
    features = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    gram = gram_matrix(features)
    flat = features.reshape(2, 3, 20)
    expected = torch.einsum("bcn,bdn->bcd", flat, flat) / 60
    assert torch.allclose(gram, expected, atol=1e-6)


def test_global_loss_is_zero_for_equal_images_and_has_gradients():
    torch.manual_seed(0)
    arcface = IResNet(18).eval()
    target = torch.rand(64, 64, 3)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[10:50, 20:44] = True
    assert float(global_perceptual_loss(arcface, target, target, mask)) == pytest.approx(0.0, abs=1e-6)
    pred = torch.rand(64, 64, 3, requires_grad=True)
    loss = global_perceptual_loss(arcface, pred, target, mask)
    loss.backward()
    assert float(loss) > 0
    grad = pred.grad.abs().sum(-1)
    top, left, size = mask_square(mask)
    assert float(grad[top : top + size, left : left + size].sum()) > 0
    assert float(grad.sum()) == pytest.approx(float(grad[top : top + size, left : left + size].sum()))


def test_patches_centre_on_the_mask_and_stay_inside_the_image():
    mask = torch.zeros(60, 80, dtype=torch.bool)
    mask[40:50, 60:70] = True
    patches = sample_patches(mask, 16, 32, torch.Generator().manual_seed(0))
    assert len(patches) == 16
    for top, left, size in patches:
        assert size == 32 and 0 <= top <= 60 - 32 and 0 <= left <= 80 - 32
        assert top + size > 40 and left + size > 60  # overlaps the masked area
    assert sample_patches(mask, 2, 128, torch.Generator())[0][2] == 60  # clipped to the image


def test_patch_loss_is_zero_for_equal_images_and_positive_otherwise():
    torch.manual_seed(0)
    vgg = VGGFeatures("vgg16").eval()
    target = torch.rand(48, 48, 3)
    mask = torch.ones(48, 48, dtype=torch.bool)
    same = patch_perceptual_loss(vgg, target, target, mask, 4, 32, torch.Generator().manual_seed(0))
    other = patch_perceptual_loss(vgg, target.flip(0), target, mask, 4, 32, torch.Generator().manual_seed(0))
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    assert float(other) > 0
