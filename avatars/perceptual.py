"""GaussianSpeech's perceptual losses (Aneja et al. 2025, Sec. 4.1, Eqs. 1-4) and the networks they use.

* **Global** (Eqs. 1-3): ``L_global = L_content + L_style`` on a face-recognition network, ArcFace
  (Deng et al. 2020, ref. [13] of the paper): ``L_content = sum_k ||phi_k(I_render) - phi_k(I_gt)||_1`` and
  ``L_style = sum_k ||G_k(I_render) - G_k(I_gt)||_1`` with ``phi_k`` the feature maps of layer k and ``G_k``
  their Gram matrices (Johnson et al. 2016, ref. [24]).
* **Patch** (Eq. 4): ``L_patch = 1/J sum_j sum_k ||zeta_k(I^j_render) - zeta_k(I^j_gt)||_1`` on VGG features
  of J = 16 patches of 128x128 sampled uniformly in the face area (alpha matte).

The paper names neither the ArcFace backbone nor the VGG depth or layers. Assumptions, written here once:
ArcFace is insightface's ``arcface_torch`` IResNet (iresnet100 by default, iresnet50 also registered), its
``phi_k`` the outputs of its four residual stages on the 112x112 face crop (the head mask's bounding square);
VGG is torchvision's ImageNet VGG16 (VGG19 also registered), its ``zeta_k`` relu1_2, relu2_2, relu3_3 and
relu4_3 (relu3_4, relu4_4 for VGG19), the layers of Johnson et al. Each L1 norm is taken as a mean over the
elements (as the usual implementations do) so the terms do not scale with the resolution.

Network definitions. :class:`IResNet` is written here because no maintained pip package ships the
``arcface_torch`` backbone as a plain ``torch.nn.Module`` (insightface's wheel carries ONNX models only):
it reproduces that architecture with the same state-dict key names (``conv1``, ``bn1``, ``prelu``,
``layer1..4.<i>.{bn1,conv1,bn2,prelu,conv2,bn3,downsample}``, ``bn2``, ``fc``, ``features``), so the
``backbone.pth`` files of insightface's model zoo load into it unchanged. VGG is torchvision's own
definition. Neither network's weights are downloaded or substituted: ``benchmark.weights`` finds the file
the user registered, and without one the loss is skipped with a logged reason.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gsbench.pretrained import PretrainedNetwork, declare

IRESNET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3)}
"""Residual blocks per stage of insightface's iresnet18/34/50/100."""

VGG_LAYERS = {"vgg16": (3, 8, 15, 22), "vgg19": (3, 8, 17, 26)}
"""Indices in torchvision ``vgg*().features`` of relu1_2, relu2_2, relu3_3 (3_4), relu4_3 (4_4)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCFACE_SIZE = 112  # arcface_torch's input: 112x112 aligned faces, pixels scaled to [-1, 1]


class IBasicBlock(torch.nn.Module):
    """arcface_torch's pre-activation basic block: BN, 3x3 conv, BN, PReLU, 3x3 conv (stride), BN, + skip."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.bn1 = torch.nn.BatchNorm2d(in_channels, eps=1e-5)
        self.conv1 = torch.nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(channels, eps=1e-5)
        self.prelu = torch.nn.PReLU(channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(channels, eps=1e-5)
        self.downsample: torch.nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = torch.nn.Sequential(
                torch.nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                torch.nn.BatchNorm2d(channels, eps=1e-5),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(torch.nn.Module):
    """ArcFace's IResNet backbone (arcface_torch ``backbones/iresnet.py`` layout, 112x112 input).

    ``forward`` returns the 512-d identity embedding; :meth:`feature_maps` the four stage outputs
    [B, 64, 56, 56], [B, 128, 28, 28], [B, 256, 14, 14], [B, 512, 7, 7] that the global loss compares.
    """

    def __init__(self, depth: int = 100, num_features: int = 512):
        super().__init__()
        if depth not in IRESNET_LAYERS:
            raise ValueError(f"iresnet depth {depth} not in {sorted(IRESNET_LAYERS)}")
        self.depth = depth
        self.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = torch.nn.PReLU(64)
        in_channels = 64
        for stage, (channels, blocks) in enumerate(
            zip((64, 128, 256, 512), IRESNET_LAYERS[depth], strict=True), 1
        ):
            layer = [IBasicBlock(in_channels, channels, 2)]
            layer += [IBasicBlock(channels, channels, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{stage}", torch.nn.Sequential(*layer))
            in_channels = channels
        self.bn2 = torch.nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = torch.nn.Dropout(p=0.0)
        self.fc = torch.nn.Linear(512 * 7 * 7, num_features)
        self.features = torch.nn.BatchNorm1d(num_features, eps=1e-5)

    def feature_maps(self, x: Tensor) -> list[Tensor]:
        """x [B, 3, 112, 112] in [-1, 1] -> the four stage outputs."""
        x = self.prelu(self.bn1(self.conv1(x)))
        maps = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn2(self.feature_maps(x)[-1])
        return self.features(self.fc(self.dropout(torch.flatten(x, 1))))


class VGGFeatures(torch.nn.Module):
    """torchvision VGG ``features`` up to the last layer of :data:`VGG_LAYERS`; returns those activations."""

    def __init__(self, arch: str = "vgg16"):
        super().__init__()
        import torchvision

        if arch not in VGG_LAYERS:
            raise ValueError(f"VGG architecture {arch!r} not in {sorted(VGG_LAYERS)}")
        self.arch = arch
        self.layers = VGG_LAYERS[arch]
        # torchvision's own layer builder (``vgg16().features`` is make_layers(cfgs["D"]), vgg19 "E"):
        # same modules and key names, without allocating the 120M-parameter classifier we never use.
        config = torchvision.models.vgg.cfgs["D" if arch == "vgg16" else "E"]
        self.features = torchvision.models.vgg.make_layers(config)[: self.layers[-1] + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """x [B, 3, H, W] RGB in [0, 1] -> activations at :data:`VGG_LAYERS`."""
        x = (x - self.mean) / self.std
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.layers:
                out.append(x)
        return out


def frozen(module: torch.nn.Module) -> torch.nn.Module:
    """Eval mode, no parameter gradients: a fixed loss network."""
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def gram_matrix(features: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, C, C] Gram matrix normalised by C*H*W (Johnson et al. 2016, Eq. 3)."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def mask_square(mask: Tensor, margin: float = 0.1) -> tuple[int, int, int]:
    """(top, left, size) of the square around the True pixels of ``mask`` [H, W] (+margin per side),
    clipped to the image; the whole image when the mask is empty."""
    height, width = mask.shape
    rows = mask.any(dim=1).nonzero()[:, 0]
    cols = mask.any(dim=0).nonzero()[:, 0]
    if rows.numel() == 0:
        size = min(height, width)
        return 0, 0, size
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    size = int(round(max(bottom - top, right - left) * (1 + 2 * margin)))
    size = max(1, min(size, height, width))
    centre_y, centre_x = (top + bottom) // 2, (left + right) // 2
    top = min(max(centre_y - size // 2, 0), height - size)
    left = min(max(centre_x - size // 2, 0), width - size)
    return top, left, size


def global_perceptual_loss(arcface: IResNet, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Eqs. 1-3: ``L_content + L_style`` on ArcFace stage features of the face crop.

    pred, target [H, W, 3] in [0, 1]; mask [H, W] bool head mask (the crop is its bounding square,
    resized to 112x112, pixels scaled to [-1, 1] as arcface_torch expects).
    """
    top, left, size = mask_square(mask)
    pair = torch.stack([pred, target])[:, top : top + size, left : left + size].permute(0, 3, 1, 2)
    pair = F.interpolate(pair, size=(ARCFACE_SIZE, ARCFACE_SIZE), mode="bilinear", align_corners=False)
    maps = arcface.feature_maps(pair * 2 - 1)
    content = sum((m[0] - m[1].detach()).abs().mean() for m in maps)  # Eq. 1
    grams = [gram_matrix(m) for m in maps]
    style = sum((g[0] - g[1].detach()).abs().mean() for g in grams)  # Eq. 2
    return content + style  # Eq. 3


def sample_patches(
    mask: Tensor, num_patches: int, size: int, generator: torch.Generator
) -> list[tuple[int, int, int]]:
    """``num_patches`` (top, left, size) squares whose centres are drawn uniformly from the True pixels of
    ``mask`` [H, W] ("sampled uniformly for the facial area by alpha matting"), clipped to the image;
    ``size`` is reduced to the image's smaller side when larger."""
    height, width = mask.shape
    size = min(size, height, width)
    pixels = mask.nonzero()
    if pixels.shape[0] == 0:
        pixels = torch.tensor([[height // 2, width // 2]])
    picks = pixels[torch.randint(pixels.shape[0], (num_patches,), generator=generator)]
    patches = []
    for y, x in picks.tolist():
        top = min(max(y - size // 2, 0), height - size)
        left = min(max(x - size // 2, 0), width - size)
        patches.append((top, left, size))
    return patches


def patch_perceptual_loss(
    vgg: VGGFeatures,
    pred: Tensor,
    target: Tensor,
    mask: Tensor,
    num_patches: int,
    patch_size: int,
    generator: torch.Generator,
) -> Tensor:
    """Eq. 4: mean over J patches of ``sum_k ||zeta_k(patch_render) - zeta_k(patch_gt)||_1`` (VGG)."""
    patches = sample_patches(mask, num_patches, patch_size, generator)
    crops_pred = torch.stack([pred[t : t + s, l : l + s] for t, l, s in patches]).permute(0, 3, 1, 2)
    crops_gt = torch.stack([target[t : t + s, l : l + s] for t, l, s in patches]).permute(0, 3, 1, 2)
    feats = vgg(torch.cat([crops_pred, crops_gt]))
    j = len(patches)
    # per-patch L1 (mean over elements), summed over layers, averaged over patches
    return sum((f[:j] - f[j:].detach()).abs().mean() for f in feats)


ARCFACE_ZOO = "https://github.com/deepinsight/insightface/tree/master/recognition/arcface_torch#model-zoo"
USER_SUPPLIED = (
    "user-supplied: the source publishes no checksum; accepted only if every key and shape matches"
)
TORCHVISION_PREFIX = "full sha256 unpublished; torchvision's 8-hex file-name prefix is checked"


def _torchvision_vgg(network: str, sha8: str, use: str) -> PretrainedNetwork:
    """A torchvision ImageNet VGG (IMAGENET1K_V1) checkpoint, checked by its file-name sha256 prefix; only
    ``features.*`` is used (:class:`VGGFeatures`)."""
    return PretrainedNetwork(
        name=f"{network}-imagenet",
        filename=f"{network}-{sha8}.pth",
        url=f"https://download.pytorch.org/models/{network}-{sha8}.pth",
        description=f"torchvision ImageNet {network.upper()} (IMAGENET1K_V1): {use}",
        used_by="patch perceptual loss, Eq. 4 (avatars.perceptual)",
        sha256_prefix=sha8,
        checksum_note=TORCHVISION_PREFIX,
        network=network,
    )


# The networks of these losses (benchmark.weights builds `network` and checks every key and shape)
VGG16_IMAGENET = declare(_torchvision_vgg("vgg16", "397923af", "GaussianSpeech patch perceptual loss"))
VGG19_IMAGENET = declare(_torchvision_vgg("vgg19", "dcbb9e9d", "alternative patch-loss backbone"))
ARCFACE_IRESNET100 = declare(
    PretrainedNetwork(
        name="arcface-iresnet100",
        filename="ms1mv3_arcface_r100_fp16.pth",
        url=ARCFACE_ZOO,
        description="ArcFace IResNet-100 (insightface arcface_torch, MS1MV3; its backbone.pth): "
        "GaussianSpeech global perceptual loss",
        used_by="global perceptual loss, Eqs. 1-3 (avatars.perceptual)",
        checksum_note=USER_SUPPLIED,
        network="iresnet100",
    )
)
ARCFACE_IRESNET50 = declare(
    PretrainedNetwork(
        name="arcface-iresnet50",
        filename="ms1mv3_arcface_r50_fp16.pth",
        url=ARCFACE_ZOO,
        description="ArcFace IResNet-50 (insightface arcface_torch, MS1MV3; its backbone.pth)",
        used_by="global perceptual loss, Eqs. 1-3, smaller backbone (avatars.perceptual)",
        checksum_note=USER_SUPPLIED,
        network="iresnet50",
    )
)
