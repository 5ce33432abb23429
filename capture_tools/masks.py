"""Foreground masks: difference to a clean background plate where the session has one, else MediaPipe
selfie segmentation (the legacy ``mp.solutions.selfie_segmentation``, whose model ships in the wheel).

Plate differencing: per-pixel max over RGB of ``|frame - plate|`` above ``threshold`` levels, then a
morphological open (removes sensor noise specks) and close (fills small gaps), then the largest
connected component with its holes filled (the head and shoulders are one blob). The plate goes
through the same undistortion and resize as the frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskParams:
    threshold: float = 18.0  # 8-bit levels
    kernel_px: int = 3
    segmentation_threshold: float = 0.5  # MediaPipe confidence


def plate_mask(frame: np.ndarray, plate: np.ndarray, params: MaskParams = MaskParams()) -> np.ndarray:
    """``[H,W] bool`` foreground of an RGB frame given the RGB plate of the same camera."""
    # cv2 on uint8: |frame - plate| exactly, and the channel max without numpy's slow last-axis reduce.
    red, green, blue = cv2.split(cv2.absdiff(np.ascontiguousarray(frame), np.ascontiguousarray(plate)))
    difference = cv2.max(cv2.max(red, green), blue)
    mask = (difference > params.threshold).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (params.kernel_px, params.kernel_px))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
    return largest_component_filled(mask)


def largest_component_filled(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(mask.shape, bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == largest).astype(np.uint8)
    # Fill holes: flood the background from the border (with 2); what it cannot reach is the blob or
    # inside it.
    flood = cv2.copyMakeBorder(blob, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    cv2.floodFill(flood, None, (0, 0), 2)
    return flood[1:-1, 1:-1] != 2


class SelfieSegmenter:
    """MediaPipe selfie segmentation for sessions without background plates."""

    def __init__(self, params: MaskParams = MaskParams()):
        import mediapipe as mp

        from gsbench.native_log import quiet_native_stderr

        self.params = params
        self._quiet = quiet_native_stderr
        with quiet_native_stderr():
            self.model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        with self._quiet():  # the first call builds the graph and logs its routine warnings
            result = self.model.process(np.ascontiguousarray(frame))
        if result.segmentation_mask is None:
            return np.zeros(frame.shape[:2], bool)
        return result.segmentation_mask > self.params.segmentation_threshold

    def close(self) -> None:
        self.model.close()


def write_mask(path, mask: np.ndarray) -> None:
    from gsbench.io import atomic_path

    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
        if not ok:
            raise RuntimeError(f"PNG encoding failed for {path}")
        tmp.write_bytes(data.tobytes())
