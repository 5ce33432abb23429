"""Test data for the rigged-avatar tests (no tests here): a tiny FLAME-format sphere head with a jaw and
a labelled mouth, and multi-view images of it ray-cast with ``tracking.head.preview.render_mesh``.

Imported by ``test_rigged.py`` and ``test_gaussian_avatars.py`` through ``load_support()``.
"""

from __future__ import annotations

import numpy as np

from tracking.head_model import REGIONS, HeadModel

RADIUS = 0.1


def sphere_head(rows: int = 10, cols: int = 16, num_expr: int = 4) -> HeadModel:
    """A UV sphere of radius 0.1 m (FLAME frame: y up, +z front) rigged like FLAME: J = 5 joints at the
    centre, the lower front cap skinned to the jaw, the rest to the neck; expression k pushes a band of
    the face outward; a patch of front vertices around the mouth line is labelled teeth."""
    theta = np.linspace(0, np.pi, rows + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * RADIUS
    num_v = len(vertices)
    faces = []
    for c in range(cols):
        faces.append([0, 1 + (c + 1) % cols, 1 + c])
    for r in range(rows - 2):
        for c in range(cols):
            a = 1 + r * cols + c
            b = 1 + r * cols + (c + 1) % cols
            faces += [[a, b, b + cols], [a, b + cols, a + cols]]
    last = 1 + (rows - 2) * cols
    for c in range(cols):
        faces.append([last + c, last + (c + 1) % cols, num_v - 1])
    faces = np.asarray(faces, np.int64)
    unit = vertices / RADIUS
    jaw = (unit[:, 1] < -0.25) & (unit[:, 2] > 0.2)
    lbs_weights = np.zeros((num_v, 5))
    lbs_weights[jaw, 2] = 1.0
    lbs_weights[~jaw, 1] = 1.0
    exprdirs = np.zeros((num_v, 3, num_expr))
    for k in range(num_expr):
        band = np.exp(-((unit[:, 1] - (0.6 - 0.4 * k)) ** 2) / 0.05) * (unit[:, 2] > 0)
        exprdirs[:, :, k] = 0.01 * band[:, None] * unit
    regions = np.zeros(num_v, np.int8)
    regions[(np.abs(unit[:, 1] + 0.2) < 0.25) & (unit[:, 2] > 0.7)] = REGIONS["teeth"]
    return HeadModel(
        v_template=vertices,
        faces=faces,
        shapedirs=np.zeros((num_v, 3, 2)),
        exprdirs=exprdirs,
        posedirs=np.zeros((4 * 9, num_v * 3)),
        J_regressor=np.full((5, num_v), 1.0 / num_v),
        parents=np.array([-1, 0, 1, 1, 1]),
        lbs_weights=lbs_weights,
        lmk_faces_idx=np.arange(68) % len(faces),
        lmk_bary_coords=np.full((68, 3), 1.0 / 3.0),
        vertex_regions=regions,
        name="test-sphere",
    ).validate()


def vertex_colors(head: HeadModel, expr: np.ndarray) -> np.ndarray:
    """[V, 3] albedo: latitude/longitude stripes, darkened on the upper band by expression 0 (a
    'wrinkle' the colour MLP can learn)."""
    unit = head.v_template / RADIUS
    base = np.stack(
        [0.5 + 0.4 * np.sin(6 * unit[:, 0]), 0.5 + 0.4 * np.cos(5 * unit[:, 1]), 0.6 - 0.3 * unit[:, 2]], -1
    )
    crease = np.exp(-((unit[:, 1] - 0.6) ** 2) / 0.05) * max(float(expr[0]), 0.0)
    return np.clip(base * (1 - 0.6 * crease[:, None]), 0, 1)


def cameras(num: int = 4, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """``num`` cameras on an arc in front of the head: world_to_cam [C,4,4], K [C,3,3]."""
    from tracking.head.preview import intrinsics, orbit_camera

    yaws = np.linspace(-50, 50, num)
    viewmats = np.stack([orbit_camera(float(y), 10.0 * (i % 2), 0.45, (0, 0, 0)) for i, y in enumerate(yaws)])
    Ks = np.stack([intrinsics(size, size, 32.0)] * num)
    return viewmats, Ks
