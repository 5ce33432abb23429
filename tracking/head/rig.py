"""Skinning of ``gsbench-head``: FLAME's 5 joints, a joint regressor and smooth blend weights.

Joint locations (``layout.ROOT_JOINT``, ``NECK_JOINT``, ``JAW_JOINT``, eyeball centres) are
reproduced by ``J_regressor`` as convex combinations of surface vertices (non-negative least
squares, rows sum to one), so joints follow shape changes as in FLAME.

Jaw weights are a smoothstep of a harmonic field (cotangent Laplacian) on the head surface between
vertices fixed to 1 (lower lip, mandible) and to 0 (everything above the mouth line, behind the
jaw joint, the lower throat); see :func:`jaw_weights`. The mouth slit separates the two lips, so the
field is discontinuous across it and continuous around the corners. The global (root) joint takes
the lower neck; the neck joint takes the rest of the head. Eyeballs are rigid on their eye joints,
upper teeth on the neck joint, lower teeth on the jaw; the mouth interior blends from neck (top) to
jaw (bottom).
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.linalg

from tracking.head import layout as L
from tracking.head.geometry import HeadGeometry, eye_centre

GLOBAL, NECK, JAW, LEFT_EYE, RIGHT_EYE = range(5)
PARENTS = np.array([-1, GLOBAL, NECK, NECK, NECK], np.int64)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def uniform_laplacian(num_vertices: int, faces: np.ndarray) -> scipy.sparse.csr_matrix:
    """Graph Laplacian (degree - adjacency) of the mesh edges."""
    start = faces.reshape(-1)
    end = faces[:, [1, 2, 0]].reshape(-1)
    adjacency = scipy.sparse.coo_matrix(
        (np.ones(2 * len(start)), (np.concatenate([start, end]), np.concatenate([end, start]))),
        shape=(num_vertices, num_vertices),
    ).tocsr()  # sums duplicates: an edge shared by two faces is counted twice...
    adjacency.data[:] = 1.0  # ...so every edge is set back to one
    degree = scipy.sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel())
    return (degree - adjacency).tocsr()


def harmonic_field(laplacian: scipy.sparse.csr_matrix, fixed: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Solve L x = 0 on the free vertices with x[fixed] = values."""
    n = laplacian.shape[0]
    free = np.ones(n, bool)
    free[fixed] = False
    x = np.zeros(n)
    x[fixed] = values
    rhs = -laplacian[free][:, fixed] @ values
    x[free] = scipy.sparse.linalg.spsolve(laplacian[free][:, free].tocsc(), rhs)
    return np.clip(x, 0.0, 1.0)


def cotangent_laplacian(vertices: np.ndarray, faces: np.ndarray) -> scipy.sparse.csr_matrix:
    """Cotangent Laplacian (degree - adjacency), ``w_ij = (cot a_ij + cot b_ij) / 2``.

    Unlike the graph Laplacian its harmonic fields do not depend on how densely the grid samples a
    region (the radial grid is sparse on the throat). Cotangents are clamped to [1e-3, 1e3] so the
    weights stay positive and the harmonic field obeys the maximum principle (stays in [0, 1]).
    """
    tri = vertices[faces]
    rows, cols, values = [], [], []
    for corner in range(3):
        i, j = faces[:, (corner + 1) % 3], faces[:, (corner + 2) % 3]  # the edge opposite ``corner``
        a = tri[:, (corner + 1) % 3] - tri[:, corner]
        b = tri[:, (corner + 2) % 3] - tri[:, corner]
        cot = np.einsum("fi,fi->f", a, b) / np.maximum(np.linalg.norm(np.cross(a, b), axis=1), 1e-20)
        weight = 0.5 * np.clip(cot, 1e-3, 1e3)
        rows += [i, j]
        cols += [j, i]
        values += [weight, weight]
    adjacency = scipy.sparse.coo_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(vertices), len(vertices)),
    ).tocsr()
    degree = scipy.sparse.diags(np.asarray(adjacency.sum(axis=1)).ravel())
    return (degree - adjacency).tocsr()


def jaw_weights(geometry: HeadGeometry) -> np.ndarray:
    """Jaw weights on the head surface [n_head]: a smoothstep of a cotangent-harmonic field.

    Pinned to 1 on the lower lip and the mandible (below the mouth, above the jaw line, in front);
    to 0 above the mouth line, behind the jaw joint (further back, z < -0.035, below the ear so the
    neck sides can blend) and on the throat below y = -0.165. The free band under the chin and down
    the throat is 5-7 cm wide: an open jaw (0.3 rad moves the chin ~3 cm back) stretches it instead
    of folding it. The smoothstep makes the field C1 where it meets the pinned regions.
    """
    head = geometry.parts["head"].vertices
    vertices = geometry.vertices[head]
    faces = geometry.faces[geometry.parts["head"].faces]
    x, y, z = vertices[:, 0], vertices[:, 1], vertices[:, 2]
    side = geometry.lip_side[head]
    lower_lip = (side < 0) & (np.abs(x) < L.MOUTH_HALF_WIDTH - 0.002) & (y > L.MOUTH_Y - 0.02) & (z > 0.05)
    jaw_line = -0.085 - 0.02 * _smoothstep(0.03, 0.07, z)  # lower border of the mandible
    mandible = (y < L.MOUTH_Y - 0.016) & (y > jaw_line) & (z > 0.045)
    ones = lower_lip | mandible
    ones[geometry.slit_copies] = True
    behind = np.where(y < -0.07, -0.035, L.JAW_JOINT[2] - 0.012)
    zeros = (y > L.MOUTH_Y + 0.003) | (z < behind) | (y < -0.165)
    upper_slit = geometry.mouth_row * geometry.grid_shape[1] + geometry.slit_columns
    zeros[upper_slit] = True
    ones &= ~zeros
    fixed = np.nonzero(ones | zeros)[0]
    values = ones[fixed].astype(np.float64)
    field = harmonic_field(cotangent_laplacian(vertices, faces), fixed, values)
    return field * field * (3.0 - 2.0 * field)


def skinning_weights(geometry: HeadGeometry) -> np.ndarray:
    """``lbs_weights [V, 5]``, rows sum to one."""
    vertices = geometry.vertices
    weights = np.zeros((len(vertices), 5))
    head = geometry.parts["head"].vertices
    jaw = jaw_weights(geometry)
    root = _smoothstep(-0.125, -0.19, vertices[head, 1])
    jaw = jaw * (1.0 - root)
    weights[head, JAW] = jaw
    weights[head, GLOBAL] = root
    weights[head, NECK] = 1.0 - jaw - root
    weights[geometry.parts["left_eye"].vertices, LEFT_EYE] = 1.0
    weights[geometry.parts["right_eye"].vertices, RIGHT_EYE] = 1.0
    weights[geometry.parts["upper_teeth"].vertices, NECK] = 1.0
    weights[geometry.parts["lower_teeth"].vertices, JAW] = 1.0
    interior = geometry.parts["mouth_interior"].vertices
    centre_y = vertices[interior, 1].mean()
    interior_jaw = _smoothstep(centre_y + 0.004, centre_y - 0.005, vertices[interior, 1])
    weights[interior, JAW] = interior_jaw
    weights[interior, NECK] = 1.0 - interior_jaw
    return weights


def _convex_combination(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights summing to one with ``weights @ points ~= target``."""
    penalty = 10.0
    a = np.concatenate([points.T, penalty * np.ones((1, len(points)))])
    b = np.concatenate([target, [penalty]])
    weights, _ = scipy.optimize.nnls(a, b)
    return weights / weights.sum()


def joint_regressor(geometry: HeadGeometry) -> np.ndarray:
    """``J_regressor [5, V]``: each joint a convex combination of nearby surface vertices."""
    vertices = geometry.vertices
    regressor = np.zeros((5, len(vertices)))
    head_index = np.arange(len(vertices))[geometry.parts["head"].vertices]
    head = vertices[head_index]
    rings = {
        GLOBAL: (L.ROOT_JOINT, np.abs(head[:, 1] - L.ROOT_JOINT[1]) < 0.006),
        NECK: (L.NECK_JOINT, np.abs(head[:, 1] - L.NECK_JOINT[1]) < 0.004),
        JAW: (
            L.JAW_JOINT,
            (np.abs(head[:, 1] - L.JAW_JOINT[1]) < 0.004) & (np.abs(head[:, 2] - L.JAW_JOINT[2]) < 0.01),
        ),
    }
    for joint, (target, band) in rings.items():
        candidates = head_index[band]
        regressor[joint, candidates] = _convex_combination(vertices[candidates], target)
    for joint, part in ((LEFT_EYE, "left_eye"), (RIGHT_EYE, "right_eye")):
        index = np.arange(len(vertices))[geometry.parts[part].vertices]
        regressor[joint, index] = 1.0 / len(index)
    return regressor


def joint_targets() -> np.ndarray:
    """The template joint positions [5, 3] the regressor is built to reproduce."""
    return np.stack([L.ROOT_JOINT, L.NECK_JOINT, L.JAW_JOINT, eye_centre(1.0), eye_centre(-1.0)])
