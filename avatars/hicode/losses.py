"""HiCoDe's face reconstruction loss L_3DGS (Eqs. 15-16).

``L_3DGS = λ1 L_RGB + λ2 L_SSIM + λ3 L_VGG + λ4 L_WING`` with

* ``L_RGB = ||I^f − I^f_gt|| + ||I^m − I^m_gt||`` (L1, mean over pixels; I^m = the mouth crop);
* ``L_SSIM``, written ``||SSIM(I^f) − SSIM(I^f_gt)||``, read as ``1 − SSIM(I^f, I^f_gt)`` (3DGS's D-SSIM);
* ``L_VGG`` on the face and the mouth crop with the first four VGG16 layers (``avatars.perceptual``; only when
  ``vgg16-imagenet`` is registered, else the term is off and logged);
* ``L_WING = (1/N) Wing(lmds, lmds_gt)`` (Feng et al. 2018, w = 10, ε = 2 px; ours). The paper detects the
  landmarks of the render with MediaPipe, which is not differentiable and gives no gradient. Our proxy
  (documented as ours): each of the 478 landmarks is anchored to the K = 8 canonical Gaussians nearest to its
  canonical position on the initialisation frame; the landmark of a render is the projection of the mean of
  their deformed, placed centres, compared with the frame's MediaPipe detection.

Face image: the render on black, against the ground truth multiplied by the head mask. Mouth crop: the
box around the MediaPipe lip points of the frame's detection, padded by 25 % (ours).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from avatars.gaussian_speech_avatar import ssim
from tracking.landmarks import IBUG68_MOUTH, MEDIAPIPE_TO_IBUG68

MOUTH_LANDMARKS = np.asarray(MEDIAPIPE_TO_IBUG68)[IBUG68_MOUTH]  # MediaPipe indices of the iBUG 48-67 lips


def wing_loss(prediction: Tensor, target: Tensor, w: float = 10.0, epsilon: float = 2.0) -> Tensor:
    """Wing (Feng et al. 2018) per coordinate: ``w ln(1 + |x|/ε)`` for |x| < w, else ``|x| − C`` with
    ``C = w − w ln(1 + w/ε)``; summed over the coordinates of each landmark: ``[..., 2] -> [...]``."""
    x = (prediction - target).abs()
    c = w - w * math.log(1.0 + w / epsilon)
    return torch.where(x < w, w * torch.log1p(x / epsilon), x - c).sum(-1)


def mouth_box(
    landmarks2d: np.ndarray, width: int, height: int, pad: float = 0.25
) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the lip points ``[478, 2]`` padded by ``pad``; None without valid lips."""
    lips = landmarks2d[MOUTH_LANDMARKS]
    lips = lips[np.isfinite(lips).all(-1)]
    if len(lips) < 3:
        return None
    low, high = lips.min(0), lips.max(0)
    margin = pad * (high - low) + 1.0
    x0, y0 = np.floor(low - margin).astype(int)
    x1, y1 = np.ceil(high + margin).astype(int)
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width, x1), min(height, y1)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    return int(y0), int(y1), int(x0), int(x1)


def landmark_anchors(gaussian_means: Tensor, landmarks: Tensor, k: int = 8) -> Tensor:
    """``[L, k]`` indices of the ``k`` canonical Gaussians nearest to each canonical landmark ``[L, 3]``."""
    k = min(k, gaussian_means.shape[0])
    return torch.cdist(landmarks, gaussian_means).topk(k, largest=False).indices


def projected_landmarks(world_means: Tensor, anchors: Tensor, world_to_cam: Tensor, K: Tensor) -> Tensor:
    """``[L, 2]`` pixels: the projection of the mean placed centre of each landmark's anchors."""
    points = world_means[anchors].mean(1)
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    uvw = cam @ K.T
    return uvw[:, :2] / uvw[:, 2:3].clamp_min(1e-6)


class FaceLoss:
    """Eq. 15 with the weights λ1..λ4 and the optional VGG network (None: term off)."""

    def __init__(self, lambdas: tuple[float, float, float, float], vgg: torch.nn.Module | None = None):
        self.lambdas = lambdas
        self.vgg = vgg

    def _vgg(self, a: Tensor, b: Tensor) -> Tensor:
        fa = self.vgg(a.permute(2, 0, 1)[None])
        fb = self.vgg(b.permute(2, 0, 1)[None])
        return sum((x - y).abs().mean() for x, y in zip(fa, fb, strict=True))

    def __call__(
        self,
        face: Tensor,  # [H, W, 3] render on black
        target: Tensor,  # [H, W, 3] ground truth x head mask
        box: tuple[int, int, int, int] | None,
        landmarks_pred: Tensor | None = None,  # [L, 2] proxy landmarks of the render
        landmarks_gt: Tensor | None = None,  # [L, 2] MediaPipe detection
        landmarks_valid: Tensor | None = None,  # [L] bool
        use_vgg: bool = True,
    ) -> tuple[Tensor, dict[str, float]]:
        l1, l2, l3, l4 = self.lambdas
        terms: dict[str, Tensor] = {}
        # Eq. 16 (HiCoDe): L_RGB = ||I^f − I^f_gt|| + ||I^m − I^m_gt||
        rgb = (face - target).abs().mean()
        mouth = face_m = target_m = None
        if box is not None:
            y0, y1, x0, x1 = box
            face_m, target_m = face[y0:y1, x0:x1], target[y0:y1, x0:x1]
            mouth = (face_m - target_m).abs().mean()
            rgb = rgb + mouth
        terms["rgb"] = rgb
        terms["ssim"] = 1.0 - ssim(face, target)  # L_SSIM
        if self.vgg is not None and use_vgg and l3 > 0:
            vgg = self._vgg(face, target)
            if face_m is not None and min(face_m.shape[:2]) >= 16:
                vgg = vgg + self._vgg(face_m, target_m)
            terms["vgg"] = vgg
        if (
            landmarks_pred is not None
            and l4 > 0
            and landmarks_valid is not None
            and bool(landmarks_valid.any())
        ):
            # L_WING = (1/N) Wing(lmds, lmds_gt) over the N detected landmarks (anchored proxy)
            terms["wing"] = wing_loss(landmarks_pred[landmarks_valid], landmarks_gt[landmarks_valid]).mean()
        weights = {"rgb": l1, "ssim": l2, "vgg": l3, "wing": l4}
        total = sum(weights[name] * value for name, value in terms.items())
        return total, {name: float(value.detach()) for name, value in terms.items()}
