"""Geometry HiCoDe needs from the tracked head: the depth-based initial point cloud and pose-free landmarks.

* **Initialisation** ("Remark on 3DGS Initialization"): one frame's depth map (Depth-Anything in the paper;
  offline stand-in: the depth of the tracked FLAME mesh ray-cast with ``tracking.head.preview.render_mesh``),
  the head region (the dataset's head mask), one point per head pixel (at a pixel stride on a CPU). The paper
  takes (x, y) from the pixel coordinates and z from the depth; we back-project each pixel through K at its
  depth, which is the same point cloud in metric camera coordinates (a Depth-Anything map has no metric
  scale; the tracked mesh does). Head-mask pixels the mesh does not cover (hair, ears beyond the mesh) take
  the depth of the nearest covered pixel. Points are mapped into the canonical frame with the inverse rigid
  pose of that frame. Colours: the pixel's colour.
* **Random initialisation** (Table 2 "w/ Random Init."): the same number of points uniform in the box of
  the depth point cloud, random colours (3DGS's random init).
* **Pose-free landmarks**: each 2D MediaPipe detection is back-projected onto the tracked mesh (a ray
  through the pixel, first hit) and mapped into the canonical frame with the inverse rigid pose, giving
  478 × 3 points free of head motion that keep the detector's detail. Rays that miss the mesh (or frames
  without a detection) are marked invalid.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gsbench.errors import DependencyError


def axis_angle_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues: ``[..., 3]`` axis-angle -> ``[..., 3, 3]``."""
    from scipy.spatial.transform import Rotation

    flat = np.asarray(axis_angle, np.float64).reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(np.shape(axis_angle)[:-1] + (3, 3))


def world_to_canonical(
    points: np.ndarray, rotation: np.ndarray, translation: np.ndarray, root_joint: np.ndarray
):
    """Inverse of ``x_world = R (x − J0) + J0 + t``: ``points [..., 3]``, ``rotation [3, 3]``."""
    return (points - root_joint - translation) @ rotation + root_joint


def _scene(vertices_cam: np.ndarray, faces: np.ndarray):
    try:
        import open3d as o3d
    except ImportError as error:  # open3d needs the system library libusb-1.0
        raise DependencyError(
            f"open3d does not import ({error})", fix="apt-get install libusb-1.0-0 (Debian/Ubuntu)"
        ) from None
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(vertices_cam.astype(np.float32)), o3d.core.Tensor(np.asarray(faces).astype(np.uint32))
    )
    return scene, o3d


def back_project(
    pixels: np.ndarray,  # [P, 2] continuous pixel coordinates (pixel j spans [j, j+1])
    vertices_world: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [F, 3]
    K: np.ndarray,
    world_to_cam: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """First hit of the camera rays through ``pixels`` on the mesh: (world points [P, 3], hit [P] bool)."""
    rotation, translation = world_to_cam[:3, :3], world_to_cam[:3, 3]
    scene, o3d = _scene(np.asarray(vertices_world) @ rotation.T + translation, faces)
    pixels = np.nan_to_num(np.asarray(pixels, np.float64), nan=-1e6)
    directions = np.stack(
        [(pixels[:, 0] - K[0, 2]) / K[0, 0], (pixels[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(pixels))], -1
    )
    rays = np.concatenate([np.zeros_like(directions), directions], -1).astype(np.float32)
    t_hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().astype(np.float64)
    hit = np.isfinite(t_hit)
    cam = directions * np.where(hit, t_hit, 0.0)[:, None]  # z of a direction is 1: t_hit is the depth
    world = (cam - translation) @ rotation
    return world, hit


def pose_free_landmarks(
    points2d: np.ndarray,  # [T, L, 2] px, NaN where missing
    detected: np.ndarray,  # [T] bool
    vertices_world: np.ndarray,  # [T, V, 3] tracked mesh per frame
    faces: np.ndarray,
    K: np.ndarray,
    world_to_cam: np.ndarray,
    rotations: np.ndarray,  # [T, 3, 3]
    translations: np.ndarray,  # [T, 3]
    root_joint: np.ndarray,  # [3]
) -> tuple[np.ndarray, np.ndarray]:
    """(canonical landmarks [T, L, 3] (0 where invalid), valid [T, L] bool)."""
    num_frames, num_landmarks = points2d.shape[:2]
    out = np.zeros((num_frames, num_landmarks, 3), np.float32)
    valid = np.zeros((num_frames, num_landmarks), bool)
    for t in range(num_frames):
        if not detected[t]:
            continue
        world, hit = back_project(points2d[t], vertices_world[t], faces, K, world_to_cam)
        hit &= np.isfinite(points2d[t]).all(-1)
        out[t] = np.where(
            hit[:, None], world_to_canonical(world, rotations[t], translations[t], root_joint), 0
        )
        valid[t] = hit
    return out, valid


def depth_point_cloud(
    vertices_world: np.ndarray,  # [V, 3] tracked mesh of the chosen frame
    faces: np.ndarray,
    K: np.ndarray,
    world_to_cam: np.ndarray,
    mask: np.ndarray,  # [H, W] bool head region
    image: np.ndarray,  # [H, W, 3] uint8
    stride: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(world points [P, 3], colours [P, 3] in [0, 1]): one point per head pixel (every ``stride``-th)."""
    from tracking.head.preview import render_mesh

    height, width = mask.shape
    depth = render_mesh(
        vertices_world,
        faces,
        K,
        world_to_cam,
        width,
        height,
        vertex_colors=np.zeros((len(vertices_world), 3)),
        supersample=1,
    ).depth
    covered = np.isfinite(depth)
    if not covered.any():
        raise ValueError("the tracked mesh is not visible from the initialisation camera")
    # Head pixels beyond the mesh take the depth of the nearest covered pixel.
    _, (iy, ix) = ndimage.distance_transform_edt(~covered, return_indices=True)
    depth = depth[iy, ix]
    grid = np.zeros_like(mask, dtype=bool)
    grid[::stride, ::stride] = True
    rows, cols = np.nonzero(mask & grid)
    z = depth[rows, cols].astype(np.float64)
    cam = np.stack([(cols + 0.5 - K[0, 2]) / K[0, 0] * z, (rows + 0.5 - K[1, 2]) / K[1, 1] * z, z], -1)
    rotation, translation = world_to_cam[:3, :3], world_to_cam[:3, 3]
    world = (cam - translation) @ rotation
    colours = image[rows, cols].astype(np.float32) / 255.0
    return world, colours


def random_point_cloud(like: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Table 2 "w/ Random Init.": as many points as ``like [P, 3]``, uniform in its box; random colours."""
    rng = np.random.default_rng(seed)
    low, high = like.min(0), like.max(0)
    points = low + (high - low) * rng.random(like.shape)
    return points, rng.random(like.shape).astype(np.float32)
