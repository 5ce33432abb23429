"""HiCoDe's head-background composition (Eqs. 17-18): a pix2pix-style generator and discriminator.

Input: the paired face and background images (the rendered head on black, and the frame with the head
region blanked), 6 channels; output: the composited frame. Architecture (the paper names only pix2pix;
Isola et al. 2017's code): a U-Net generator (``levels`` down/up-sampling steps, ``ngf`` first-layer
channels, skip connections, instance normalisation = pix2pix's ``--norm instance``) and a PatchGAN
discriminator (``n_layers`` strided convolutions, ``ndf`` channels) on (input, output) pairs.

Losses (Eqs. 17-18): ``L_composition = L_recon + L_GAN``,
``L_recon = λ4 ||I − I_gt||² + λ5 ||F_VGG(I) − F_VGG(I_gt)||`` (VGG term only with registered weights),
``L_GAN = Σ_i 1/n(D_i) ||D_i(I) − D_i(I_gt)||_1 + log D(I_gt) + log(1 − D(I))``: feature matching over the
discriminator's layers plus the adversarial term (the generator minimises the non-saturating
``−log D(I)``, the discriminator maximises ``log D(I_gt) + log(1 − D(I))``, as pix2pix trains it).

Under gsbench's shared compositing rule the harness composites every method identically, so this module is
trained, saved and tested but not used for ranked rows (``HiCoDeMethod.composite`` offers it for an
unranked track).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclasses.dataclass(frozen=True)
class CompositorConfig:
    levels: int = 6
    ngf: int = 16
    ndf: int = 16
    n_layers: int = 3
    steps: int = 300
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_l2: float = 100.0  # λ4 of Eq. 18 (the paper gives no value; pix2pix weighs its L1 by 100)
    lambda_vgg: float = 10.0  # λ5 (ours)
    lambda_fm: float = 10.0  # weight of the feature-matching sum (pix2pixHD's 10; the paper gives none)
    size: int = 256  # training resolution (frames are resized to it)


class UNetGenerator(nn.Module):
    """pix2pix ``UnetGenerator``: conv 4x4 stride 2 down (LeakyReLU 0.2), transposed conv up (ReLU), skips."""

    def __init__(self, in_channels: int = 6, out_channels: int = 3, levels: int = 6, ngf: int = 16):
        super().__init__()
        widths = [min(ngf * 2**i, ngf * 8) for i in range(levels)]
        self.down = nn.ModuleList()
        previous = in_channels
        for i, width in enumerate(widths):
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(previous, width, 4, 2, 1))
            if 0 < i < levels - 1:
                layers.append(nn.InstanceNorm2d(width))
            self.down.append(nn.Sequential(*layers))
            previous = width
        self.up = nn.ModuleList()
        for i in reversed(range(levels)):
            in_width = widths[i] if i == levels - 1 else 2 * widths[i]
            out_width = out_channels if i == 0 else widths[i - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(in_width, out_width, 4, 2, 1)]
            layers.append(nn.Sigmoid() if i == 0 else nn.InstanceNorm2d(out_width))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = self.up[0](skips.pop())
        for layer in self.up[1:]:
            x = layer(torch.cat([x, skips.pop()], dim=1))
        return x


class PatchDiscriminator(nn.Module):
    """pix2pix ``NLayerDiscriminator`` (70x70 PatchGAN at n_layers = 3); returns every layer's output."""

    def __init__(self, in_channels: int = 9, ndf: int = 16, n_layers: int = 3):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2))]
        width = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            blocks.append(
                nn.Sequential(nn.Conv2d(width, out, 4, stride, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2))
            )
            width = out
        blocks.append(nn.Sequential(nn.Conv2d(width, 1, 4, 1, 1)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features  # the last one holds the patch logits


class Compositor(nn.Module):
    def __init__(self, config: CompositorConfig):
        super().__init__()
        self.config = config
        self.generator = UNetGenerator(6, 3, config.levels, config.ngf)
        self.discriminator = PatchDiscriminator(9, config.ndf, config.n_layers)

    def _resize(self, x: Tensor) -> Tensor:
        size = self.config.size
        return x if x.shape[-2:] == (size, size) else F.interpolate(x, (size, size), mode="bilinear")

    def forward(self, face: Tensor, background: Tensor) -> Tensor:
        """``face``, ``background`` [B, 3, H, W] in [0, 1] -> composited frame [B, 3, H, W]."""
        height, width = face.shape[-2:]
        out = self.generator(self._resize(torch.cat([face, background], dim=1)))
        return (
            out if out.shape[-2:] == (height, width) else F.interpolate(out, (height, width), mode="bilinear")
        )


def composition_losses(
    model: Compositor, face: Tensor, background: Tensor, target: Tensor, vgg: nn.Module | None
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """(generator loss, discriminator loss, terms) of Eqs. 17-18 on one batch (B, 3, S, S at the
    training size)."""
    cfg = model.config
    inputs = torch.cat([face, background], dim=1)
    output = model.generator(inputs)
    # Eq. 18: L_recon = λ4 ||I − I_gt||² + λ5 ||F_VGG(I) − F_VGG(I_gt)||
    recon = cfg.lambda_l2 * ((output - target) ** 2).mean()
    terms = {"l2": float(recon.detach())}
    if vgg is not None:
        perceptual = sum((a - b).abs().mean() for a, b in zip(vgg(output), vgg(target), strict=True))
        recon = recon + cfg.lambda_vgg * perceptual
        terms["vgg"] = float(perceptual.detach())
    fake = model.discriminator(torch.cat([inputs, output], dim=1))
    with torch.no_grad():
        real_features = model.discriminator(torch.cat([inputs, target], dim=1))
    # Eq. 18: Σ_i 1/n(D_i) ||D_i(I) − D_i(I_gt)||_1 (feature matching; mean = sum / n(D_i))
    matching = sum((f - r).abs().mean() for f, r in zip(fake[:-1], real_features[:-1], strict=True))
    adversarial = F.binary_cross_entropy_with_logits(fake[-1], torch.ones_like(fake[-1]))
    generator_loss = recon + cfg.lambda_fm * matching + adversarial  # Eq. 17: L_recon + L_GAN
    # Discriminator: maximise log D(I_gt) + log(1 − D(I))
    d_fake = model.discriminator(torch.cat([inputs, output.detach()], dim=1))[-1]
    d_real = model.discriminator(torch.cat([inputs, target], dim=1))[-1]
    discriminator_loss = 0.5 * (
        F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
        + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    )
    terms.update(matching=float(matching.detach()), adversarial=float(adversarial.detach()))
    terms["discriminator"] = float(discriminator_loss.detach())
    return generator_loss, discriminator_loss, terms


def fit_compositor(
    model: Compositor,
    faces: Tensor,  # [I, 3, H, W]
    backgrounds: Tensor,  # [I, 3, H, W]
    targets: Tensor,  # [I, 3, H, W]
    vgg: nn.Module | None,
    seed: int,
) -> list[dict[str, float]]:
    """Adam (2e-4, β1 0.5, as pix2pix) on random training frames, batch 1, alternating G and D steps."""
    cfg = model.config
    faces, backgrounds, targets = (model._resize(x) for x in (faces, backgrounds, targets))
    generator = torch.Generator().manual_seed(seed)
    g_opt = torch.optim.Adam(model.generator.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    history = []
    model.train()
    for _ in range(cfg.steps):
        i = int(torch.randint(faces.shape[0], (1,), generator=generator))
        g_loss, d_loss, terms = composition_losses(
            model, faces[i : i + 1], backgrounds[i : i + 1], targets[i : i + 1], vgg
        )
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward(inputs=list(model.generator.parameters()))
        g_opt.step()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward(inputs=list(model.discriminator.parameters()))
        d_opt.step()
        history.append(terms)
    model.eval()
    return history
