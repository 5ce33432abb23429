"""MediaPipe FaceMesh wrapper and the 478 -> iBUG-68 mapping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tracking.landmarks import IBUG68_MOUTH, MEDIAPIPE_TO_IBUG68, detect_landmarks, to_ibug68


def draw_face(size: int = 256, mouth_open: float = 0.3, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A crude frontal cartoon face that FaceMesh detects (oval, eyes with pupils, brows, nose, mouth)."""
    img = np.full((size, size, 3), 200, np.uint8)
    s = size / 256
    cx, cy = size // 2 + shift[0], size // 2 + shift[1]

    def p(x, y):
        return (int(cx + x * s), int(cy + y * s))

    cv2.ellipse(img, p(0, 0), (int(70 * s), int(95 * s)), 0, 0, 360, (180, 140, 120), -1)
    for dx in (-28, 28):
        cv2.ellipse(img, p(dx, -20), (int(14 * s), int(7 * s)), 0, 0, 360, (255, 255, 255), -1)
        cv2.circle(img, p(dx, -20), int(5 * s), (40, 30, 20), -1)
        cv2.line(img, p(dx - 15, -38), p(dx + 15, -40), (60, 40, 30), max(1, int(4 * s)))
    cv2.line(img, p(0, -10), p(-6, 18), (140, 100, 90), max(1, int(3 * s)))
    cv2.ellipse(img, p(0, 45), (int(24 * s), int(4 * s + mouth_open * 14 * s)), 0, 0, 360, (120, 40, 50), -1)
    return img


def test_mapping_is_68_distinct_valid_indices():
    assert MEDIAPIPE_TO_IBUG68.shape == (68,)
    assert len(set(MEDIAPIPE_TO_IBUG68.tolist())) == 68
    assert MEDIAPIPE_TO_IBUG68.min() >= 0 and MEDIAPIPE_TO_IBUG68.max() < 468
    assert list(IBUG68_MOUTH) == list(range(48, 68))
    points = np.arange(478 * 2, dtype=np.float32).reshape(478, 2)
    np.testing.assert_array_equal(to_ibug68(points)[5], points[MEDIAPIPE_TO_IBUG68[5]])


@pytest.fixture(scope="module")
def detected_face():
    frames = np.stack([draw_face(), np.zeros((256, 256, 3), np.uint8), draw_face(shift=(10, 4))])
    return frames, detect_landmarks(frames, static_image_mode=True)


def test_detect_shapes_and_missing(detected_face):
    frames, (points, detected) = detected_face
    assert points.shape == (3, 478, 2) and points.dtype == np.float32
    assert detected.tolist() == [True, False, True]
    assert np.isnan(points[1]).all() and not np.isnan(points[[0, 2]]).any()
    # pixels of the frame: the face oval spans x 58..198, y 33..223 in the drawing
    assert 40 < np.median(points[0, :, 0]) < 216 and 20 < np.median(points[0, :, 1]) < 236


def test_mapping_semantics_on_detected_face(detected_face):
    """iBUG order holds on a real detection: jaw left to right, chin lowest, eyes above nose above mouth."""
    _, (points, _) = detected_face
    lm = to_ibug68(points[0])
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]
    assert lm[8, 1] == lm[:17, 1].max()  # chin is the lowest jaw point
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]  # eye corners left to right
    assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:68, 1].mean()
    assert lm[48, 0] < lm[51, 0] < lm[54, 0] and lm[51, 1] < lm[57, 1]  # mouth corners; top above bottom
    assert lm[62, 1] <= lm[66, 1]
    # the mouth landmarks lie on the drawn mouth (centre (128, 173))
    np.testing.assert_allclose(lm[48:68].mean(axis=0), [128, 173], atol=8)


def test_shift_moves_landmarks(detected_face):
    _, (points, _) = detected_face
    np.testing.assert_allclose(np.nanmean(points[2] - points[0], axis=0), [10, 4], atol=1.5)


def test_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        detect_landmarks(np.zeros((1, 8, 8, 3), np.float32))
