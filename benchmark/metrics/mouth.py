"""The lip box: where the mouth-region image metrics (``psnr_mouth``, ``ssim_mouth``, ``lpips_mouth``) look.

Talking heads are judged at the mouth, while ``*_masked`` averages over the whole head. The lip box of
frame ``t`` is a square of a fixed side ``S`` (pixels of the evaluation frames) centred on the centroid of
the ground-truth mouth landmarks (iBUG 48-67, the LMD subset, from the dataset's MediaPipe landmarks
mapped to iBUG-68)::

    c_t = mean_k G_t[k],  k in 48..67                   (ground truth only: the same box for every method)
    S   = round(pad * median_t max(width_t, height_t))   (one side per dataset and camera)
    box_t = [c_t - S/2, c_t + S/2), shifted (not shrunk) to lie inside the frame

with ``pad`` = :data:`MOUTH_BOX_PAD` (ours: 1.6, so the lips, the teeth and some of the chin and the
cheeks around the mouth corners are inside while the nose is not). Taking ``S`` from the whole dataset
(every sequence of the evaluation camera, all subjects) keeps the box the same size for every subject
and method, so the figures of one dataset compare; a clip scored on its own (``gsbench metrics``) takes
``S`` from its own ground truth. Frames without a ground-truth detection are not scored (NaN).

PSNR and SSIM are computed on the ``S x S`` crops exactly as on full frames (SSIM's valid region is the
crop minus 5 pixels per side); LPIPS runs on the crops (AlexNet needs crops of at least
:data:`LPIPS_MIN_SIDE` pixels; smaller boxes leave ``lpips_mouth`` missing with the reason).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracking.landmarks import IBUG68_MOUTH, to_ibug68

MOUTH_BOX_PAD = 1.6
LPIPS_MIN_SIDE = 32


@dataclasses.dataclass(frozen=True)
class MouthBoxes:
    size: int  # side S in pixels
    corners: np.ndarray  # [T, 2] int (x0, y0) of each frame's box
    valid: np.ndarray  # [T] bool: the ground truth has a face in that frame

    def crop(self, frames: np.ndarray) -> np.ndarray:
        """[T, H, W, C] -> [T, S, S, C] (invalid frames give the box at the first valid position)."""
        s = self.size
        return np.stack([f[y : y + s, x : x + s] for f, (x, y) in zip(frames, self.corners, strict=True)])


def _mouth_points(points: np.ndarray) -> np.ndarray:
    """MediaPipe ``[T, 478, 2]`` -> iBUG mouth points ``[T, 20, 2]``."""
    return to_ibug68(np.asarray(points, np.float64))[:, IBUG68_MOUTH]


def mouth_extent(points: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """Per detected frame, ``max(width, height)`` of the mouth points' bounding box, in pixels."""
    mouth = _mouth_points(points)[np.asarray(detected, bool)]
    if len(mouth) == 0:
        return np.zeros(0)
    extent = mouth.max(axis=1) - mouth.min(axis=1)
    return extent.max(axis=1)


def mouth_box_size(extents: np.ndarray, image_size: tuple[int, int], pad: float = MOUTH_BOX_PAD) -> int:
    """``S = round(pad * median(extents))``, at least 11 (one SSIM window), at most the frame's side.

    extents: every detected frame's mouth extent over the frames that fix the size (a dataset's camera).
    image_size: (height, width).
    """
    extents = np.asarray(extents, np.float64)
    extents = extents[np.isfinite(extents)]
    if len(extents) == 0:
        return 0
    side = int(round(pad * float(np.median(extents))))
    return int(min(max(side, 11), min(image_size)))


def mouth_boxes(
    points: np.ndarray, detected: np.ndarray, size: int, image_size: tuple[int, int]
) -> MouthBoxes:
    """The lip box of every frame from ground-truth MediaPipe landmarks ``[T, 478, 2]`` + flags ``[T]``."""
    height, width = image_size
    detected = np.asarray(detected, bool) & np.isfinite(_mouth_points(points)).all(axis=(1, 2))
    centre = np.nan_to_num(_mouth_points(points).mean(axis=1))  # [T, 2]
    if detected.any():
        centre[~detected] = centre[np.flatnonzero(detected)[0]]
    x0 = np.clip(np.round(centre[:, 0] - size / 2), 0, width - size).astype(int)
    y0 = np.clip(np.round(centre[:, 1] - size / 2), 0, height - size).astype(int)
    return MouthBoxes(int(size), np.stack([x0, y0], axis=1), detected)
