"""Camera projection, multi-view triangulation, similarity alignment and closest points on a mesh.

Cameras follow DESIGN.md: OpenCV convention, pinhole ``K`` and a 4x4 ``world_to_cam``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


def project(
    points: torch.Tensor,  # [B, L, 3] world
    intrinsics: torch.Tensor,  # [C, 3, 3]
    world_to_cam: torch.Tensor,  # [C, 4, 4]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels [C, B, L, 2] and camera-space depth [C, B, L]."""
    rotation = world_to_cam[:, :3, :3]
    cam = torch.einsum("crk,blk->cblr", rotation, points) + world_to_cam[:, None, None, :3, 3]
    depth = cam[..., 2]
    normalized = cam[..., :2] / depth.clamp_min(1e-6)[..., None]
    focal = torch.stack([intrinsics[:, 0, 0], intrinsics[:, 1, 1]], dim=-1)[:, None, None]
    centre = intrinsics[:, None, None, :2, 2]
    skew = intrinsics[:, 0, 1][:, None, None]
    pixels = normalized * focal + centre
    pixels = torch.stack([pixels[..., 0] + skew * normalized[..., 1], pixels[..., 1]], dim=-1)
    return pixels, depth


def project_np(points: np.ndarray, intrinsics: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """[..., 3] world points -> [..., 2] pixels for one camera."""
    cam = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    uvw = cam @ intrinsics.T
    return uvw[..., :2] / uvw[..., 2:3]


def camera_centres(world_to_cam: np.ndarray) -> np.ndarray:
    """[C, 4, 4] -> [C, 3] camera centres in world coordinates."""
    rotation = world_to_cam[:, :3, :3]
    return -np.einsum("crk,cr->ck", rotation, world_to_cam[:, :3, 3])


def triangulate(
    pixels: np.ndarray,  # [C, N, 2], NaN where unobserved
    weights: np.ndarray,  # [C, N] >= 0
    intrinsics: np.ndarray,  # [C, 3, 3]
    world_to_cam: np.ndarray,  # [C, 4, 4]
    iterations: int = 3,
    robust_scale_px: float = 4.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear (DLT) multi-view triangulation, iteratively reweighted with a Cauchy kernel.

    Returns points [N, 3] (NaN where fewer than two cameras see the point), the RMS reprojection
    error [N] in pixels over the observing cameras, and the number of observing cameras [N].
    """
    num_cams, num_points = pixels.shape[:2]
    observed = np.isfinite(pixels).all(-1) & (weights > 0)
    safe = np.where(observed[..., None], pixels, 0.0)
    homogeneous = np.concatenate([safe, np.ones((num_cams, num_points, 1))], axis=-1)
    rays = np.einsum("crk,cnk->cnr", np.linalg.inv(intrinsics), homogeneous)  # normalized coords
    rays = rays[..., :2] / rays[..., 2:3]
    projection = world_to_cam[:, :3, :]  # [C, 3, 4]
    # each observation gives two rows: x * P3 - P1, y * P3 - P2
    rows_x = rays[..., 0:1] * projection[:, None, 2] - projection[:, None, 0]  # [C, N, 4]
    rows_y = rays[..., 1:2] * projection[:, None, 2] - projection[:, None, 1]
    obs_weight = np.where(observed, weights, 0.0)
    count = observed.sum(0)
    points = np.full((num_points, 3), np.nan)
    error = np.full(num_points, np.nan)
    for _ in range(max(1, iterations)):
        rows = np.concatenate([rows_x * obs_weight[..., None], rows_y * obs_weight[..., None]], axis=0)
        normal = np.einsum("knr,kns->nrs", rows[..., :3], rows[..., :3])  # [N, 3, 3]
        rhs = -np.einsum("knr,kn->nr", rows[..., :3], rows[..., 3])
        ok = count >= 2
        normal[~ok] = np.eye(3)
        rhs[~ok] = 0.0
        solved = np.linalg.solve(normal + 1e-12 * np.eye(3), rhs[..., None])[..., 0]
        points = np.where(ok[:, None], solved, np.nan)
        residual = np.full((num_cams, num_points), np.nan)
        for c in range(num_cams):
            residual[c] = np.linalg.norm(
                project_np(points, intrinsics[c], world_to_cam[c]) - safe[c], axis=-1
            )
        residual = np.where(observed, residual, np.nan)
        obs_weight = np.where(
            observed, weights / (1.0 + (np.nan_to_num(residual) / robust_scale_px) ** 2), 0.0
        )
    with np.errstate(invalid="ignore"):
        error = np.sqrt(np.nanmean(np.where(observed, residual, np.nan) ** 2, axis=0))
    return points, error, count


def umeyama(source: np.ndarray, target: np.ndarray, with_scale: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``target ≈ s R source + t`` (Umeyama 1991). Points [N, 3]."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    centred_s, centred_t = source - mu_s, target - mu_t
    covariance = centred_t.T @ centred_s / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rotation = u @ sign @ vt
    variance = (centred_s**2).sum() / len(source)
    scale = float(np.trace(np.diag(singular) @ sign) / variance) if with_scale else 1.0
    translation = mu_t - scale * rotation @ mu_s
    return scale, rotation, translation


def rotation_to_axis_angle(rotation: np.ndarray) -> np.ndarray:
    """[..., 3, 3] -> [..., 3] axis-angle (numerically safe near 0 and pi)."""
    from scipy.spatial.transform import Rotation

    flat = rotation.reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_rotvec().reshape(*rotation.shape[:-2], 3)


def axis_angle_to_rotation(axis_angle: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    flat = np.asarray(axis_angle, np.float64).reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(*np.shape(axis_angle)[:-1], 3, 3)


def closest_point_on_triangles(
    points: np.ndarray,  # [N, 3]
    a: np.ndarray,  # [N, K, 3] triangle corners
    b: np.ndarray,
    c: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Closest points [N, K, 3] on each candidate triangle and their barycentrics [N, K, 3].

    Ericson, Real-Time Collision Detection, 5.1.5, vectorized over the Voronoi regions.
    """
    p = points[:, None, :]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = va + vb + vc
    denom = np.where(np.abs(denom) < 1e-30, 1e-30, denom)
    v = vb / denom
    w = vc / denom
    bary = np.stack([1 - v - w, v, w], -1)

    def set_where(mask: np.ndarray, value: np.ndarray) -> None:
        bary[mask] = value[mask]

    def edge(t: np.ndarray, i: int, j: int) -> np.ndarray:
        out = np.zeros(t.shape + (3,))
        out[..., i] = 1 - t
        out[..., j] = t
        return out

    with np.errstate(divide="ignore", invalid="ignore"):
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        set_where((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), edge(np.nan_to_num(t_bc), 1, 2))
        t_ac = d2 / (d2 - d6)
        set_where((vb <= 0) & (d2 >= 0) & (d6 <= 0), edge(np.nan_to_num(t_ac), 0, 2))
        t_ab = d1 / (d1 - d3)
        set_where((vc <= 0) & (d1 >= 0) & (d3 <= 0), edge(np.nan_to_num(t_ab), 0, 1))
    set_where((d6 >= 0) & (d5 <= d6), np.broadcast_to(np.array([0.0, 0.0, 1.0]), bary.shape))
    set_where((d3 >= 0) & (d4 <= d3), np.broadcast_to(np.array([0.0, 1.0, 0.0]), bary.shape))
    set_where((d1 <= 0) & (d2 <= 0), np.broadcast_to(np.array([1.0, 0.0, 0.0]), bary.shape))
    bary = np.clip(bary, 0.0, 1.0)
    bary /= bary.sum(-1, keepdims=True)
    closest = bary[..., 0:1] * a + bary[..., 1:2] * b + bary[..., 2:3] * c
    return closest, bary


def closest_point_on_mesh(
    points: np.ndarray,  # [N, 3]
    vertices: np.ndarray,  # [V, 3]
    faces: np.ndarray,  # [F, 3]
    allowed_faces: np.ndarray | None = None,  # [F] bool
    neighbours: int = 12,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface point of each query: (face index [N], barycentrics [N, 3], distance [N]).

    Candidates are the faces around the ``neighbours`` nearest vertices, which contains the true
    closest face unless the mesh is much coarser than the query's distance to it.
    """
    faces = np.asarray(faces, np.int64)
    if allowed_faces is None:
        allowed_faces = np.ones(len(faces), bool)
    face_ids = np.flatnonzero(allowed_faces)
    used = np.unique(faces[face_ids])
    tree = cKDTree(vertices[used])
    _, nearest = tree.query(points, k=min(neighbours, len(used)))
    nearest = used[np.atleast_2d(nearest)]  # [N, k] global vertex ids
    # vertex -> incident allowed faces, padded with -1
    flat_vertices = faces[face_ids].reshape(-1)
    order = np.argsort(flat_vertices, kind="stable")
    sorted_vertices = flat_vertices[order]
    sorted_faces = np.repeat(face_ids, 3)[order]
    counts = np.bincount(sorted_vertices, minlength=len(vertices))
    slot = np.arange(len(sorted_vertices)) - (np.cumsum(counts) - counts)[sorted_vertices]
    table = np.full((len(vertices), int(counts.max())), -1, np.int64)
    table[sorted_vertices, slot] = sorted_faces
    candidates = table[nearest].reshape(len(points), -1)  # [N, k*width]
    valid = candidates >= 0
    safe = np.where(valid, candidates, face_ids[0])
    corners = vertices[faces[safe]]  # [N, K, 3, 3]
    closest, bary = closest_point_on_triangles(points, corners[:, :, 0], corners[:, :, 1], corners[:, :, 2])
    distance = np.linalg.norm(closest - points[:, None], axis=-1)
    distance = np.where(valid, distance, np.inf)
    best = distance.argmin(1)
    rows = np.arange(len(points))
    return safe[rows, best], bary[rows, best], distance[rows, best]
