"""The static studio around the rig and the ChArUco calibration board, both ray-cast analytically.

The studio is a textured cylindrical backdrop (radius 2.4 m, vertical axis through the rig centre)
with a floor and a ceiling. Its texture lives in world coordinates, so every camera sees the same
3D backdrop (structure-from-motion on the background plates is geometrically consistent). The
calibration board is a plane carrying ``cv2.aruco.CharucoBoard.generateImage`` on a white backing.

Calibration capture protocol (``board_trajectory``; what an operator calibrating a real rig does too):

* Hold the board still for a moment (>= 4 frames; 6 at 25 fps by default), then move it to the next
  pose. Still holds make every camera see the same pose whatever its sub-frame start offset
  (ingest pairs holds that overlap in time across cameras) and let ingest average a hold's corners.
* Sweep the print's facing direction across the rig's arc, a little beyond its outer cameras, in
  steps of at most ~20 deg: every camera sees the print in many holds and shares holds with its
  neighbours, which chains every camera to the frontal one (extrinsics).
* Tilt the board alternately up and down by 15-35 deg and turn it in its plane (up to +-40 deg):
  Zhang's method needs board planes at varied orientations, or focal length, principal point and
  the board's distance are confounded.
* Vary the distance (near holds that fill and overflow the images, far ones that show the whole
  board) and move the board sideways, so that corners reach the image borders and corners where
  the radial distortion is largest.

What the default preset's 12 s take gives ingest's calibration: docs/measurements.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import cv2
import numpy as np

WALL_RADIUS_M = 2.4
FLOOR_Y_M = -1.3
CEILING_Y_M = 1.6
_TEXEL_M = 0.004


@dataclasses.dataclass(frozen=True)
class Studio:
    wall: np.ndarray  # [H, W, 3] float32 linear RGB; column = arc length, row = height (top = ceiling)
    floor: np.ndarray  # [N, N, 3] float32 linear RGB over x, z in [-R, R]

    def shade(self, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
        """Linear RGB [..., 3] seen along rays ``origin + t * directions`` (origin inside the cylinder)."""
        d = directions.reshape(-1, 3)
        o = np.asarray(origin, np.float64)
        # |o_xz + t d_xz|^2 = R^2, positive root (the origin is inside)
        a = d[:, 0] ** 2 + d[:, 2] ** 2
        b = 2 * (o[0] * d[:, 0] + o[2] * d[:, 2])
        c = o[0] ** 2 + o[2] ** 2 - WALL_RADIUS_M**2
        t_wall = (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0.0))) / np.maximum(2 * a, 1e-12)
        hit = o + t_wall[:, None] * d
        colour = np.empty((len(d), 3), np.float32)
        on_wall = (hit[:, 1] >= FLOOR_Y_M) & (hit[:, 1] <= CEILING_Y_M)
        arc = (
            np.arctan2(hit[:, 0], -hit[:, 2]) * WALL_RADIUS_M
        )  # 0 behind the head, seen by the frontal camera
        rows, cols = self.wall.shape[:2]
        map_x = ((arc + np.pi * WALL_RADIUS_M) / (2 * np.pi * WALL_RADIUS_M) * cols - 0.5).astype(np.float32)
        map_y = ((CEILING_Y_M - hit[:, 1]) / (CEILING_Y_M - FLOOR_Y_M) * rows - 0.5).astype(np.float32)
        colour[:] = _sample(self.wall, map_x, map_y)
        # floor / ceiling planes
        off = ~on_wall
        if np.any(off):
            plane_y = np.where(hit[off, 1] < FLOOR_Y_M, FLOOR_Y_M, CEILING_Y_M)
            t_plane = (plane_y - o[1]) / d[off, 1]
            plane_hit = o + t_plane[:, None] * d[off]
            n = self.floor.shape[0]
            fx = ((plane_hit[:, 0] + WALL_RADIUS_M) / (2 * WALL_RADIUS_M) * n - 0.5).astype(np.float32)
            fz = ((plane_hit[:, 2] + WALL_RADIUS_M) / (2 * WALL_RADIUS_M) * n - 0.5).astype(np.float32)
            plane_colour = _sample(self.floor, fx, fz)
            ceiling = plane_y > 0
            plane_colour[ceiling] = plane_colour[ceiling] * 0.3 + 0.55
            colour[off] = plane_colour
        return colour.reshape(*directions.shape[:-1], 3)


def _sample(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``image`` at float pixel coordinates (1-D arrays), clamped at the border."""
    return remap_points(image, map_x, map_y).reshape(-1, image.shape[2])


def remap_points(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """``cv2.remap`` (bilinear, border replicated) at N points; [N, C] or [N] for a 2-D image.

    cv2.remap needs maps under 32767 per side, so the points are laid out in rows of 1024."""
    count = len(map_x)
    padded = -(-max(count, 1) // 1024) * 1024
    grid_x = np.zeros(padded, np.float32)
    grid_y = np.zeros(padded, np.float32)
    grid_x[:count], grid_y[:count] = map_x.reshape(-1), map_y.reshape(-1)
    out = cv2.remap(
        image,
        grid_x.reshape(-1, 1024),
        grid_y.reshape(-1, 1024),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return out.reshape(padded, *image.shape[2:])[:count]


def _value_noise(
    rng: np.random.Generator, shape: tuple[int, int], cells: int, channels: int = 1
) -> np.ndarray:
    grid = rng.random((max(2, shape[0] * cells // shape[1]), cells, channels)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).reshape(*shape, channels)


def build_studio(rng: np.random.Generator) -> Studio:
    """A backdrop of soft grey-blue cloth with panels, posters and light stands (features for SfM)."""
    cols = int(2 * np.pi * WALL_RADIUS_M / _TEXEL_M)
    rows = int((CEILING_Y_M - FLOOR_Y_M) / _TEXEL_M)
    base_colour = np.array([0.32, 0.36, 0.42], np.float32) * float(rng.uniform(0.8, 1.2))
    cloth = 0.75 + 0.5 * _value_noise(rng, (rows, cols), 40) + 0.12 * _value_noise(rng, (rows, cols), 400)
    wall = base_colour * cloth
    for _ in range(60):  # panels and posters with their own patterns
        w = int(rng.uniform(0.15, 0.6) / _TEXEL_M)
        h = int(rng.uniform(0.15, 0.7) / _TEXEL_M)
        x0 = int(rng.integers(0, cols - w))
        y0 = int(rng.integers(int(0.1 * rows), rows - h))
        colour = rng.uniform(0.05, 0.8, 3).astype(np.float32)
        patch = np.broadcast_to(colour, (h, w, 3)).copy()
        style = int(rng.integers(0, 4))
        if style == 0:  # stripes
            period = int(rng.integers(6, 30))
            patch[(np.arange(h)[:, None] + np.arange(w)[None, :]) % period < period // 2] *= 0.4
        elif style == 1:  # blobs
            patch *= 0.4 + 0.9 * _value_noise(rng, (h, w), int(rng.integers(4, 16)))
        elif style == 2:  # checker
            cell = int(rng.integers(8, 30))
            checker = ((np.arange(h)[:, None] // cell + np.arange(w)[None, :] // cell) % 2).astype(bool)
            patch[checker] = rng.uniform(0.05, 0.8, 3)
        else:  # "text": random short bars
            for _ in range(int(rng.integers(5, 20))):
                bx, by = int(rng.integers(0, max(1, w - 20))), int(rng.integers(0, max(1, h - 6)))
                cv2.rectangle(
                    patch, (bx, by), (bx + int(rng.integers(5, 40)), by + 3), (0.05, 0.05, 0.05), -1
                )
        wall[y0 : y0 + h, x0 : x0 + w] = patch
    for _ in range(6):  # light stands: dark vertical poles with a bright softbox on top
        x = int(rng.integers(0, cols - 30))
        wall[int(0.15 * rows) :, x : x + 8] = 0.04
        wall[int(0.05 * rows) : int(0.2 * rows), x - 40 : x + 48] = 0.9
    n = int(2 * WALL_RADIUS_M / 0.01)
    floor = np.array([0.25, 0.23, 0.21], np.float32) * (0.7 + 0.6 * _value_noise(rng, (n, n), 30, 1))
    return Studio(wall=np.ascontiguousarray(wall, np.float32), floor=np.ascontiguousarray(floor, np.float32))


@dataclasses.dataclass(frozen=True)
class BoardSpec:
    squares_x: int
    squares_y: int
    square_length_m: float
    marker_length_m: float
    dictionary: str
    margin_m: float = 0.02  # white backing around the printed board

    def cv_board(self) -> cv2.aruco.CharucoBoard:
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard(
            (self.squares_x, self.squares_y), self.square_length_m, self.marker_length_m, dictionary
        )

    def to_rig_yaml(self) -> dict:
        return {
            "type": "charuco",
            "squares_x": self.squares_x,
            "squares_y": self.squares_y,
            "square_length_m": self.square_length_m,
            "marker_length_m": self.marker_length_m,
            "dictionary": self.dictionary,
        }


class BoardRenderer:
    """Ray-casts the board: board frame has its origin at the top-left chessboard corner, x along
    the squares_x side, y along squares_y (OpenCV's CharucoBoard object points), z into the board
    (the printed side faces -z)."""

    def __init__(
        self, spec: BoardSpec, pixels_per_m: float = 2500.0, filtered_pixels_per_m: float | None = None
    ):
        """``filtered_pixels_per_m``: area-average the printed texture down to this density (about the
        density of image pixels on the board), so that one bilinear lookup per pixel is antialiased."""
        self.spec = spec
        size = (
            int(spec.squares_x * spec.square_length_m * pixels_per_m),
            int(spec.squares_y * spec.square_length_m * pixels_per_m),
        )
        printed = spec.cv_board().generateImage(size, marginSize=0, borderBits=1)
        margin = int(spec.margin_m * pixels_per_m)
        image = cv2.copyMakeBorder(printed, margin, margin, margin, margin, cv2.BORDER_CONSTANT, value=255)
        texture = (image.astype(np.float32) / 255.0) ** 2.2 * 0.85 + 0.02
        factor = int(pixels_per_m // filtered_pixels_per_m) if filtered_pixels_per_m else 1
        if factor > 1:
            # a whole factor (the white backing grown by < factor texels right and below) keeps texel
            # centres on the same board points
            rows, cols = -(-texture.shape[0] // factor) * factor, -(-texture.shape[1] // factor) * factor
            texture = np.pad(
                texture, ((0, rows - texture.shape[0]), (0, cols - texture.shape[1])), mode="edge"
            )
            texture = texture.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))
            pixels_per_m, margin = pixels_per_m / factor, margin / factor
        self.texture = np.ascontiguousarray(texture[..., None].repeat(3, axis=2))
        self.pixels_per_m = pixels_per_m
        self.margin_px = margin

    def shade(
        self, board_to_world: np.ndarray, origin: np.ndarray, directions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(linear RGB [..., 3], hit mask [...]) of the board along the rays."""
        rotation, translation = board_to_world[:3, :3], board_to_world[:3, 3]
        d = directions.reshape(-1, 3) @ rotation  # into the board frame
        o = rotation.T @ (np.asarray(origin) - translation)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -o[2] / d[:, 2]
        x = o[0] + t * d[:, 0]
        y = o[1] + t * d[:, 1]
        map_x = (x * self.pixels_per_m + self.margin_px - 0.5).astype(np.float32)
        map_y = (y * self.pixels_per_m + self.margin_px - 0.5).astype(np.float32)
        rows, cols = self.texture.shape[:2]
        hit = (t > 0) & (map_x >= 0) & (map_y >= 0) & (map_x <= cols - 1) & (map_y <= rows - 1)
        colour = np.zeros((len(d), 3), np.float32)
        if np.any(hit):
            front = d[hit, 2] > 0  # looking at the printed side (rays travel +z in the board frame)
            sampled = _sample(self.texture, map_x[hit], map_y[hit])
            sampled[~front] = 0.15
            # shading: the board is lit by the studio's frontal light
            cos = np.abs(d[hit, 2])
            colour[hit] = sampled * (0.55 + 0.45 * cos)[:, None]
        shape = directions.shape[:-1]
        return colour.reshape(*shape, 3), hit.reshape(shape)


def board_trajectory(
    rng: np.random.Generator,
    spec: BoardSpec,
    duration_s: float,
    camera_azimuths_deg: Sequence[float],
    hold_s: float = 0.24,
    move_s: float = 0.24,
    tilt_deg: tuple[float, float] = (15.0, 35.0),
    depth_m: tuple[float, float] = (-0.12, 0.22),
    lateral_m: float = 0.09,
    max_step_deg: float = 20.0,
) -> Callable[[float], np.ndarray]:
    """The calibration take's board motion (the capture protocol in the module docstring):
    ``pose(t) -> board_to_world [4, 4]`` at master time ``t`` (s). Each pose is held still for
    ``hold_s``, then the board glides to the next in ``move_s`` (smoothstep); the last pose is held to
    the end.

    The rig adapts the sweep: the print faces azimuths from ``min - 5°`` to ``max + 5°`` of
    ``camera_azimuths_deg`` (one per camera, 0 = frontal, as ``arc_layout``), in as many holds as fit
    in ``duration_s``. Where fewer would be more than ``max_step_deg`` apart (a short take or a wide
    arc), hold and move are shortened together (a hold stays >= 4 frames at 25 fps) so that every
    camera sees several holds and shares some with each neighbour, which chains every camera to the
    frontal one. Each pose is tilted up / down by ``tilt_deg`` (alternating), turned in its plane by
    up to ±40°, moved ``depth_m`` along the direction the print faces (stratified: near holds fill and
    overflow the images, far ones show the whole board) and up to ``lateral_m`` sideways; both shrink
    for a board with fewer than 24 inner corners (a small board must keep most corners in view).
    """
    from scipy.spatial.transform import Rotation, Slerp

    width = spec.squares_x * spec.square_length_m
    height = spec.squares_y * spec.square_length_m
    first, last = min(camera_azimuths_deg) - 5.0, max(camera_azimuths_deg) + 5.0
    needed = int(np.ceil((last - first) / max_step_deg)) + 1
    count = max(2, int((duration_s + move_s) / (hold_s + move_s) + 1e-9))
    if count < needed:  # shorten hold and move together so that ``needed`` holds fit
        scale = max(duration_s / ((needed - 1) * (hold_s + move_s) + hold_s), 0.16 / hold_s)
        hold_s, move_s = hold_s * scale, move_s * scale
        count = max(2, int((duration_s + move_s) / (hold_s + move_s) + 1e-9))
    # near and sideways holds cut up to about half of a 7x5 board's 24 inner corners off the images; a
    # board with fewer corners moves proportionally less, so its cut views keep enough for detection
    room = min(1.0, (spec.squares_x - 1) * (spec.squares_y - 1) / 24)
    depth_m, lateral_m = (depth_m[0] * room, depth_m[1] * room), lateral_m * room
    sweep = np.linspace(first, last, count)
    depths = rng.permutation(np.linspace(*depth_m, count))  # stratified near / far
    rotations, positions = [], []
    for index in range(count):
        azimuth = np.radians(sweep[index] + rng.normal(0, 5))
        sign = 1.0 if index % 2 == 0 else -1.0
        elevation = np.radians(sign * rng.uniform(*tilt_deg))
        in_plane = np.radians(rng.uniform(-40, 40))
        # board z (into the board) points away from the cameras: the print's normal is -z
        facing = Rotation.from_euler("yx", [azimuth, -elevation]) * Rotation.from_euler("z", in_plane)
        board_axes = facing * Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))  # print faces +z world
        toward = facing.apply([0.0, 0.0, 1.0])  # direction the print faces
        side = facing.apply([rng.uniform(-1, 1), rng.uniform(-1, 1), 0.0])
        centre = depths[index] * toward + lateral_m * side
        rotations.append(board_axes)
        positions.append(centre - board_axes.apply([width / 2, height / 2, 0.0]))  # board centre there
    key_times = np.arange(count) * (hold_s + move_s)
    stacked = Rotation.concatenate(rotations)

    def pose(t: float) -> np.ndarray:
        index = int(np.clip(np.searchsorted(key_times, t, side="right") - 1, 0, count - 1))
        local = t - key_times[index]
        if index == count - 1 or local <= hold_s:
            rotation, position = rotations[index], positions[index]
        else:
            s = (local - hold_s) / move_s
            s = s * s * (3 - 2 * s)  # smoothstep
            rotation = Slerp([0.0, 1.0], stacked[index : index + 2])([s])[0]
            position = (1 - s) * positions[index] + s * positions[index + 1]
        matrix = np.eye(4)
        matrix[:3, :3] = rotation.as_matrix()
        matrix[:3, 3] = position
        return matrix

    return pose
