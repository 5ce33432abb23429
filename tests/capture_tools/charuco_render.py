"""Render a ChArUco board through known pinhole + OpenCV-distortion cameras (test inputs for calibration)."""

from __future__ import annotations

import cv2
import numpy as np

from capture_tools.calibrate import make_board
from capture_tools.rig import BoardSpec

BOARD = BoardSpec(
    type="charuco",
    squares_x=7,
    squares_y=5,
    square_length_m=0.04,
    marker_length_m=0.03,
    dictionary="DICT_5X5_100",
)
PIXELS_PER_M = 4000.0


def board_texture(spec: BoardSpec = BOARD) -> np.ndarray:
    size = (
        int(round(spec.squares_x * spec.square_length_m * PIXELS_PER_M)),
        int(round(spec.squares_y * spec.square_length_m * PIXELS_PER_M)),
    )
    texture = make_board(spec).generateImage(size, marginSize=0, borderBits=1)
    # Pre-filter so that minifying with bilinear sampling does not alias (biases corners by ~0.3 px).
    return cv2.GaussianBlur(texture, (0, 0), 2.5)


def look_at(centre: np.ndarray) -> np.ndarray:
    """``world_to_cam [4,4]`` (OpenCV: z forward, y down) of a camera at ``centre`` looking at the origin,
    world y up."""
    up = np.array([0.0, 1.0, 0.0])
    z = -centre
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)  # right = forward x up
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, y, z])
    pose[:3, 3] = -pose[:3, :3] @ centre
    return pose


def camera_rays(K: np.ndarray, dist: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalized undistorted rays ``[H*W, 3]`` through the centres of the raw (distorted) pixels."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack([u.ravel(), v.ravel()], -1)[:, None, :]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)
    normalized = cv2.undistortPointsIter(pixels, K, dist, None, None, criteria)
    return np.concatenate([normalized.reshape(-1, 2), np.ones((len(pixels), 1))], axis=1)


def render_board(
    texture: np.ndarray,
    cam_from_board: np.ndarray,
    K: np.ndarray,
    dist: np.ndarray,
    width: int,
    height: int,
    background: int = 90,
    rays: np.ndarray | None = None,
) -> np.ndarray:
    """RGB image ``[H,W,3] uint8`` of the board at ``cam_from_board`` (board plane z = 0, metres)."""
    if rays is None:
        rays = camera_rays(K, dist, width, height)
    homography = np.stack([cam_from_board[:3, 0], cam_from_board[:3, 1], cam_from_board[:3, 3]], axis=1)
    board_h = rays @ np.linalg.inv(homography).T
    behind = board_h[:, 2] <= 0
    xy = board_h[:, :2] / board_h[:, 2:3]
    # Texture pixel i covers board coordinates [i, i + 1) / PIXELS_PER_M (checked: zero mean corner bias).
    map_x = (xy[:, 0] * PIXELS_PER_M - 0.5).reshape(height, width).astype(np.float32)
    map_y = (xy[:, 1] * PIXELS_PER_M - 0.5).reshape(height, width).astype(np.float32)
    map_x[behind.reshape(height, width)] = -1e4
    image = cv2.remap(
        texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=background
    )
    return np.repeat(image[..., None], 3, axis=2)
