"""The synthetic camera rig: a NeRSemble-like arc of cameras with per-camera imperfections.

World frame = the head model's canonical frame (metres, y up, +z toward the frontal camera), with
the rig centre (where the subject's head sits) at the origin. Cameras follow OpenCV (x right,
y down, z forward); ``world_to_cam`` maps world points into a camera's frame. Each camera has its
own focal length, principal point, radial distortion (k1, k2), exposure and white balance gains,
sensor noise and a sub-frame recording start offset ``time_offset_s`` relative to the master
audio clock: frame ``k`` of camera ``c`` shows the scene at master time ``k / fps + time_offset_s[c]``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np

from capture_tools.synth.speech import SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class SynthCamera:
    id: str
    width: int
    height: int
    K: np.ndarray  # [3, 3] pixels
    dist: np.ndarray  # [5] OpenCV (k1, k2, p1, p2, k3)
    world_to_cam: np.ndarray  # [4, 4]
    time_offset_s: float  # recording start relative to the master audio (multiple of 1/16000 s)
    exposure: float  # linear gain
    white_balance: np.ndarray  # [3] RGB gains
    noise_std: float  # sensor read noise, in 8-bit levels
    azimuth_deg: float
    elevation_deg: float
    mic_gain: float
    mic_noise: float

    @property
    def centre(self) -> np.ndarray:
        rotation, translation = self.world_to_cam[:3, :3], self.world_to_cam[:3, 3]
        return -rotation.T @ translation

    def project(self, points_world: np.ndarray, distort: bool = True) -> np.ndarray:
        """Pixels [N, 2] of world points [N, 3] (with the lens distortion unless ``distort=False``)."""
        rvec, _ = cv2.Rodrigues(self.world_to_cam[:3, :3])
        dist = self.dist if distort else np.zeros(5)
        pixels, _ = cv2.projectPoints(
            np.asarray(points_world, np.float64).reshape(-1, 1, 3),
            rvec,
            self.world_to_cam[:3, 3],
            self.K,
            dist,
        )
        return pixels.reshape(-1, 2)

    def pixel_rays(self, subpixel: tuple[float, float] = (0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
        """World-space ray origin [3] and unit directions [H, W, 3] through the *raw* (distorted) pixels
        (their centres, moved by ``subpixel``). Casting these rays renders the distorted image directly:
        it equals rendering a pinhole image and remapping it with the inverse distortion map (the
        issue's recipe) without resampling twice."""
        u, v = np.meshgrid(
            np.arange(self.width, dtype=np.float64) + subpixel[0],
            np.arange(self.height, dtype=np.float64) + subpixel[1],
        )
        pixels = np.stack([u, v], axis=-1).reshape(-1, 1, 2)
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)
        normalized = cv2.undistortPointsIter(pixels, self.K, self.dist, None, None, criteria).reshape(-1, 2)
        directions_cam = np.concatenate([normalized, np.ones((len(normalized), 1))], axis=1)
        directions = directions_cam @ self.world_to_cam[:3, :3]  # R^T d, row-wise
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        return self.centre, directions.reshape(self.height, self.width, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "K": self.K.tolist(),
            "dist": self.dist.tolist(),
            "world_to_cam": self.world_to_cam.tolist(),
            "width": self.width,
            "height": self.height,
            "time_offset_s": self.time_offset_s,
            "exposure": self.exposure,
            "white_balance": self.white_balance.tolist(),
            "noise_std": self.noise_std,
            "azimuth_deg": self.azimuth_deg,
            "elevation_deg": self.elevation_deg,
            "mic_gain": self.mic_gain,
            "mic_noise": self.mic_noise,
        }


def look_at(centre: np.ndarray, target: np.ndarray, roll_rad: float = 0.0) -> np.ndarray:
    """OpenCV world_to_cam [4, 4] of a camera at ``centre`` looking at ``target`` with world +y up."""
    forward = target - centre
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    if roll_rad:
        c, s = np.cos(roll_rad), np.sin(roll_rad)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ rotation
    world_to_cam = np.eye(4)
    world_to_cam[:3, :3] = rotation
    world_to_cam[:3, 3] = -rotation @ centre
    return world_to_cam


def arc_layout(num_cameras: int) -> tuple[list[tuple[float, float]], int]:
    """(azimuth, elevation) in degrees per camera, rows top to bottom, and the frontal camera's index.

    16 cameras: 5 above (+18 deg), 7 at eye level (-70..+70 deg, the frontal one in the middle),
    4 below (-15 deg), like NeRSemble's arc. Fewer cameras: eye-level row only, frontal included.
    """
    if num_cameras >= 12:
        middle = 7 if num_cameras >= 14 else 5
        lower = (num_cameras - middle) // 2
        upper = num_cameras - middle - lower
        rows = [(18.0, upper, 56.0), (0.0, middle, 70.0), (-15.0, lower, 45.0)]
    else:
        rows = [(0.0, num_cameras, 70.0 if num_cameras >= 5 else 45.0)]
    layout: list[tuple[float, float]] = []
    frontal = -1
    for elevation, count, half_span in rows:
        azimuths = np.linspace(-half_span, half_span, count) if count > 1 else np.zeros(1)
        if elevation == 0.0 and count % 2 == 0:
            # keep a camera at azimuth 0: shift the row's middle camera onto it
            azimuths[count // 2] = 0.0
        for azimuth in azimuths:
            if elevation == 0.0 and abs(azimuth) < 1e-9:
                frontal = len(layout)
            layout.append((float(azimuth), elevation))
    return layout, frontal


def build_rig(
    rng: np.random.Generator,
    num_cameras: int,
    width: int,
    height: int,
    fps: float,
    distance_m: float = 1.0,
    field_of_view_m: float = 0.36,
) -> tuple[list[SynthCamera], str]:
    """Cameras on an arc around the origin, and the frontal camera's id.

    ``field_of_view_m`` is the width the image spans at ``distance_m`` (sets the focal length).
    """
    layout, frontal_index = arc_layout(num_cameras)
    cameras = []
    focal_nominal = width * distance_m / field_of_view_m
    for index, (azimuth, elevation) in enumerate(layout):
        az, el = np.radians(azimuth + rng.normal(0, 1.0)), np.radians(elevation + rng.normal(0, 0.7))
        radius = distance_m * float(rng.uniform(0.96, 1.04))
        centre = radius * np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
        target = rng.normal(0.0, 0.008, 3)
        world_to_cam = look_at(centre, target, roll_rad=float(np.radians(rng.normal(0, 1.0))))
        focal = focal_nominal * radius / distance_m * float(rng.uniform(0.95, 1.05))
        K = np.array(
            [
                [
                    focal * float(rng.uniform(0.998, 1.002)),
                    0.0,
                    (width - 1) / 2 + rng.normal(0, 0.015 * width),
                ],
                [0.0, focal, (height - 1) / 2 + rng.normal(0, 0.015 * height)],
                [0.0, 0.0, 1.0],
            ]
        )
        dist = np.array([rng.uniform(-0.35, 0.15), rng.uniform(-0.2, 0.2), 0.0, 0.0, 0.0])
        offset_samples = int(rng.integers(-int(0.45 * SAMPLE_RATE / fps), int(0.45 * SAMPLE_RATE / fps) + 1))
        cameras.append(
            SynthCamera(
                id=f"cam{index:02d}",
                width=width,
                height=height,
                K=K,
                dist=dist,
                world_to_cam=world_to_cam,
                time_offset_s=offset_samples / SAMPLE_RATE,
                exposure=float(rng.uniform(0.85, 1.15)),
                white_balance=np.array([rng.uniform(0.9, 1.1), 1.0, rng.uniform(0.9, 1.1)]),
                noise_std=float(rng.uniform(1.0, 2.5)),
                azimuth_deg=azimuth,
                elevation_deg=elevation,
                mic_gain=float(rng.uniform(0.5, 1.0)),
                mic_noise=float(rng.uniform(0.002, 0.006)),
            )
        )
    return cameras, cameras[frontal_index].id
