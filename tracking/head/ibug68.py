"""68-point iBUG landmark embedding of ``gsbench-head`` (face index + barycentric coordinates).

Semantics follow the iBUG 300-W markup as seen in a frontal image: 0-16 jaw line from the
subject's right (image left) to the left, 17-21 right brow (outer -> inner), 22-26 left brow
(inner -> outer), 27-30 nose bridge (nasion -> tip), 31-35 nose base (right -> left), 36-41 right
eye and 42-47 left eye (clockwise in the image from the image-left corner), 48-59 outer lip
contour (right corner, upper lip, left corner, lower lip), 60-67 inner lip contour. As in FLAME's
static embedding, the jaw line is fixed on the surface (the front-view outline of the lower face).

Most points are placed by casting a ray along -z onto the head surface at the (x, y) of the
feature curves in :mod:`tracking.head.layout` (the same curves paint the texture). Inner-lip points
are cast 0.4 mm above / below the mouth line so upper ones lie on the upper lip and lower ones on
the lower lip, and separate when the jaw opens.
"""

from __future__ import annotations

import numpy as np

from tracking.head import layout as L
from tracking.head.geometry import HeadGeometry, eye_fissure


def _frontal_hits(vertices: np.ndarray, faces: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit of rays along -z at ``xy [N,2]``: (face index [N], barycentrics [N,3]).

    A ray parallel to z hits a triangle iff its (x, y) lies inside the triangle's xy projection;
    the front-most such triangle (largest interpolated z) is the first hit.
    """
    tri = vertices[faces]  # [F, 3, 3]
    a, b, c = tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2]
    denom = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    valid = np.abs(denom) > 1e-14
    lo, hi = tri[:, :, :2].min(axis=1) - 1e-6, tri[:, :, :2].max(axis=1) + 1e-6
    face_idx = np.zeros(len(xy), np.int64)
    bary = np.zeros((len(xy), 3))
    for k, (px, py) in enumerate(xy):
        # only triangles whose xy bounding box holds the point can contain it
        near = np.nonzero(valid & (lo[:, 0] <= px) & (hi[:, 0] >= px) & (lo[:, 1] <= py) & (hi[:, 1] >= py))[
            0
        ]
        na, nb, nc, nd = a[near], b[near], c[near], denom[near]
        w0 = ((nb[:, 1] - nc[:, 1]) * (px - nc[:, 0]) + (nc[:, 0] - nb[:, 0]) * (py - nc[:, 1])) / nd
        w1 = ((nc[:, 1] - na[:, 1]) * (px - nc[:, 0]) + (na[:, 0] - nc[:, 0]) * (py - nc[:, 1])) / nd
        w2 = 1.0 - w0 - w1
        inside = (w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
        if not inside.any():
            raise RuntimeError(f"landmark ray at {(px, py)} missed the head surface")
        candidates = near[inside]
        w0, w1, w2 = w0[inside], w1[inside], w2[inside]
        weights = np.stack([w0, w1, w2], axis=-1)
        depth = np.einsum("nk,nk->n", weights, tri[candidates, :, 2])
        best = int(np.argmax(depth))
        face_idx[k] = candidates[best]
        bary[k] = np.clip(weights[best], 0.0, 1.0) / np.clip(weights[best], 0.0, 1.0).sum()
    return face_idx, bary


def _jaw_line(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """17 outline vertices of the lower face in the frontal projection, right (x<0) to left."""
    pivot = np.array([0.0, 0.004])
    candidates = np.nonzero(
        (vertices[:, 2] > 0.012) & (vertices[:, 1] > L.CHIN_Y - 0.01) & (vertices[:, 1] < 0.02)
    )[0]
    offset = vertices[candidates, :2] - pivot
    angle = np.arctan2(offset[:, 0], -offset[:, 1])  # 0 = straight down, + toward +x
    distance = np.linalg.norm(offset, axis=1)
    face_of_vertex = np.full(len(vertices), -1)
    face_of_vertex[faces[:, 0]] = np.arange(len(faces))
    face_idx, bary = [], []
    for psi in np.deg2rad(np.linspace(-84.0, 84.0, 17)):
        in_wedge = np.abs(angle - psi) < np.deg2rad(2.5)
        # the outline vertex; among near-ties (flat under-chin) the front-most, i.e. on the jaw bone
        score = distance[in_wedge] + 0.15 * vertices[candidates[in_wedge], 2]
        vertex = candidates[in_wedge][np.argmax(score)]
        face = np.nonzero((faces == vertex).any(axis=1))[0][0]
        face_idx.append(face)
        bary.append((faces[face] == vertex).astype(np.float64))
    return np.asarray(face_idx), np.asarray(bary)


def landmark_points_xy(geometry: HeadGeometry) -> dict[int, tuple[float, float]]:
    """Frontal (x, y) of landmarks 17-67 (the ones placed by ray casting)."""
    points: dict[int, tuple[float, float]] = {}
    for first, side, order in ((17, -1.0, np.linspace(1, 0, 5)), (22, 1.0, np.linspace(0, 1, 5))):
        x, y = L.brow_curve(side, order * 0.92 + 0.04)
        for k in range(5):
            points[first + k] = (float(x[k]), float(y[k]))
    head = geometry.vertices[geometry.parts["head"].vertices]
    midline = head[np.abs(head[:, 0]) < 0.002]
    tip_y = float(midline[np.argmax(midline[:, 2] * (midline[:, 1] > -0.04)), 1])
    for k, y in enumerate(np.linspace(L.NASION_Y - 0.004, tip_y, 4)):
        points[27 + k] = (0.0, float(y))
    for k, x in enumerate(np.linspace(-0.0115, 0.0115, 5)):
        points[31 + k] = (float(x), L.SUBNASALE_Y + 0.0015 + 0.0025 * abs(x) / 0.0115)

    def eye(side: float, u: float, upper: bool | None) -> tuple[float, float]:
        up, lo, _ = eye_fissure(np.array([u]))
        if upper is None:
            v = 0.5 * (up[0] + lo[0])
        else:
            v = up[0] + 0.0005 if upper else lo[0] - 0.0005
        return float(side * (L.EYE_X + u)), float(L.EYE_Y + v)

    inner, outer = L.EYE_OPEN_INNER + 0.0008, L.EYE_OPEN_OUTER - 0.0008
    third = (L.EYE_OPEN_OUTER - L.EYE_OPEN_INNER) / 3.0
    u1, u2 = L.EYE_OPEN_INNER + third, L.EYE_OPEN_INNER + 2 * third  # near inner, near outer
    right_eye = [
        eye(-1, outer, None),
        eye(-1, u2, True),
        eye(-1, u1, True),
        eye(-1, inner, None),
        eye(-1, u1, False),
        eye(-1, u2, False),
    ]
    left_eye = [
        eye(1, inner, None),
        eye(1, u1, True),
        eye(1, u2, True),
        eye(1, outer, None),
        eye(1, u2, False),
        eye(1, u1, False),
    ]
    for k, point in enumerate(right_eye + left_eye):
        points[36 + k] = point

    hw = L.MOUTH_HALF_WIDTH
    slit_x = geometry.vertices[geometry.slit_copies, 0]
    slit_y = geometry.vertices[geometry.slit_copies, 1]
    order = np.argsort(slit_x)

    def line_y(x: float) -> float:
        return float(np.interp(x, slit_x[order], slit_y[order]))

    outer_x = [-hw - 0.0008, -2 * hw / 3, -hw / 3, 0.0, hw / 3, 2 * hw / 3, hw + 0.0008]
    for k, x in enumerate(outer_x):
        y = line_y(x) if k in (0, 6) else float(L.upper_lip_outline(np.array([x]))[0]) - 0.0006
        points[48 + k] = (x, y)
    for k, x in enumerate([2 * hw / 3, hw / 3, 0.0, -hw / 3, -2 * hw / 3]):
        points[55 + k] = (x, float(L.lower_lip_outline(np.array([x]))[0]) + 0.0006)
    points[60] = (-hw + 0.003, line_y(-hw + 0.003) + 0.0004)
    for k, x in enumerate([-hw / 3, 0.0, hw / 3]):
        points[61 + k] = (x, line_y(x) + 0.0004)
    points[64] = (hw - 0.003, line_y(hw - 0.003) + 0.0004)
    for k, x in enumerate([hw / 3, 0.0, -hw / 3]):
        points[65 + k] = (x, line_y(x) - 0.0004)
    return points


def landmark_embedding(geometry: HeadGeometry) -> tuple[np.ndarray, np.ndarray]:
    """``(lmk_faces_idx [68], lmk_bary_coords [68, 3])`` on the head-surface faces of ``geometry``."""
    head_faces = geometry.faces[geometry.parts["head"].faces]
    face_offset = geometry.parts["head"].faces.start
    vertices = geometry.vertices
    face_idx = np.zeros(68, np.int64)
    bary = np.zeros((68, 3))
    face_idx[:17], bary[:17] = _jaw_line(vertices, head_faces)
    points = landmark_points_xy(geometry)
    keys = sorted(points)
    faces_hit, bary_hit = _frontal_hits(vertices, head_faces, np.array([points[k] for k in keys]))
    face_idx[keys], bary[keys] = faces_hit, bary_hit
    return face_idx + face_offset, bary
