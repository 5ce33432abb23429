"""Shape and expression bases of ``gsbench-head``.

Every component starts as a smooth, named displacement field (a function of template position,
plus the lip side for the lips) designed so that a coefficient of 1 is about one standard
deviation of adult variation (shape) or a full-strength action (expression), like FLAME's
coefficients. The fields are then made mutually orthogonal (Gram-Schmidt in component order over
the flattened [V*3] vectors, so earlier components keep their meaning) and each is rescaled to its
designed norm. Rigid parts (eyeballs, teeth) take their part's mean displacement, so they move
without deforming.

Shape fields are partly seeded: the last components are random smooth (low-frequency) fields
drawn from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.linalg

from tracking.head import layout as L
from tracking.head.geometry import HeadGeometry, eye_centre, eye_fissure, eye_local

RIGID_PARTS = ("left_eye", "right_eye", "upper_teeth", "lower_teeth")


def _gauss(
    p: np.ndarray, centre: tuple[float, float, float], radii: tuple[float, float, float]
) -> np.ndarray:
    q = (p - np.asarray(centre)) / np.asarray(radii)
    return np.exp(-np.sum(q * q, axis=-1))


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _vec(
    dx: np.ndarray | float = 0.0, dy: np.ndarray | float = 0.0, dz: np.ndarray | float = 0.0, n: int = 0
) -> np.ndarray:
    out = np.zeros((n, 3))
    out[:, 0], out[:, 1], out[:, 2] = dx, dy, dz
    return out


def _front(p: np.ndarray) -> np.ndarray:
    return _smoothstep(0.0, 0.05, p[:, 2])


def shape_fields(geometry: HeadGeometry, seed: int) -> list[tuple[str, np.ndarray]]:
    """Named shape displacement fields [V,3] (before orthogonalization), ~1 std each."""
    p = geometry.vertices
    n = len(p)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    face = _front(p)
    lower_face = (
        _smoothstep(L.MOUTH_Y + 0.03, L.MOUTH_Y - 0.01, y)
        * _smoothstep(-0.03, 0.02, z)
        * _smoothstep(-0.16, -0.12, y)
    )
    nose = _gauss(p, (0.0, -0.005, 0.1), (0.016, 0.03, 0.03))
    eyes = [_gauss(p, tuple(eye_centre(s)), (0.016, 0.014, 0.03)) for s in (-1.0, 1.0)]
    fields: list[tuple[str, np.ndarray]] = [
        ("head_width", _vec(dx=0.06 * x, n=n)),
        ("head_height", _vec(dy=0.05 * y * _smoothstep(-0.16, -0.10, y), n=n)),
        ("head_depth", _vec(dz=0.05 * (z + 0.01), n=n)),
        ("cranium_size", 0.05 * (p - np.array([0.0, 0.02, -0.01])) * _smoothstep(0.02, 0.08, y)[:, None]),
        ("jaw_width", _vec(dx=0.10 * x * lower_face, n=n)),
        ("chin_protrusion", _vec(dz=0.004 * _gauss(p, (0.0, -0.09, 0.08), (0.025, 0.02, 0.03)), n=n)),
        ("chin_height", _vec(dy=-0.004 * _gauss(p, (0.0, -0.095, 0.06), (0.03, 0.02, 0.04)), n=n)),
        ("nose_length", _vec(dz=0.003 * nose * face, dy=-0.001 * nose, n=n)),
        ("nose_width", _vec(dx=0.12 * x * nose * face, n=n)),
        ("nose_bridge", _vec(dz=0.002 * _gauss(p, (0.0, 0.02, 0.09), (0.008, 0.015, 0.03)), n=n)),
        ("eye_spacing", _vec(dx=0.0025 * (eyes[1] - eyes[0]), n=n)),
        ("eye_height", _vec(dy=0.0025 * (eyes[0] + eyes[1]), n=n)),
        (
            "cheekbones",
            0.003
            * sum(
                _gauss(p, (s * 0.045, 0.0, 0.05), (0.02, 0.018, 0.03))[:, None]
                * np.array([s * 0.6, 0.0, 0.8])
                for s in (-1.0, 1.0)
            ),
        ),
        (
            "cheek_fullness",
            0.003
            * sum(
                _gauss(p, (s * 0.045, -0.04, 0.04), (0.02, 0.022, 0.03))[:, None]
                * np.array([s * 0.8, 0.0, 0.6])
                for s in (-1.0, 1.0)
            ),
        ),
        ("brow_ridge", _vec(dz=0.003 * _gauss(p, (0.0, 0.042, 0.08), (0.05, 0.012, 0.03)), n=n)),
        ("forehead_slope", _vec(dz=-0.06 * np.clip(y - 0.045, 0.0, None) * face, n=n)),
        ("lip_fullness", _vec(dz=0.0025 * _gauss(p, (0.0, L.MOUTH_Y, 0.09), (0.022, 0.009, 0.02)), n=n)),
        ("mouth_width", _vec(dx=0.1 * x * _gauss(p, (0.0, L.MOUTH_Y, 0.08), (0.03, 0.012, 0.03)), n=n)),
        (
            "lower_face_height",
            _vec(
                dy=-0.006
                * _smoothstep(-0.01, -0.05, y)
                * _smoothstep(-0.16, -0.1, y)
                * _smoothstep(-0.04, 0.0, z),
                n=n,
            ),
        ),
        (
            "neck_thickness",
            _vec(
                dx=0.08 * x * _smoothstep(-0.09, -0.14, y),
                dz=0.08 * (z + 0.024) * _smoothstep(-0.09, -0.14, y),
                n=n,
            ),
        ),
        ("occiput", _vec(dz=-0.005 * _gauss(p, (0.0, 0.01, -0.11), (0.06, 0.05, 0.04)), n=n)),
        (
            "face_flatness",
            _vec(
                dz=0.003
                * (
                    _gauss(p, (0.0, -0.01, 0.09), (0.02, 0.05, 0.03))
                    - 0.6 * sum(_gauss(p, (s * 0.045, -0.01, 0.06), (0.015, 0.04, 0.03)) for s in (-1.0, 1.0))
                ),
                n=n,
            ),
        ),
        ("nose_asymmetry", _vec(dx=0.0015 * nose * face, n=n)),
    ]
    rng = np.random.default_rng(seed)
    for k in range(4):  # random low-frequency identity fields: a few Gaussian blobs each
        field = np.zeros((n, 3))
        for _ in range(6):
            centre = rng.normal(0.0, [0.05, 0.05, 0.05]) + np.array([0.0, 0.0, 0.03])
            field += _gauss(p, tuple(centre), (0.03, 0.03, 0.03))[:, None] * rng.normal(0.0, 0.0015, 3)
        fields.append((f"random_smooth_{k}", field))
    return fields


def expression_fields(geometry: HeadGeometry) -> list[tuple[str, np.ndarray]]:
    """Named, localized expression displacement fields [V,3] (coefficient 1 = full action)."""
    p = geometry.vertices
    n = len(p)
    x, y = p[:, 0], p[:, 1]
    side = geometry.lip_side.astype(np.float64)
    front = _front(p)
    mouth = _gauss(p, (0.0, L.MOUTH_Y, 0.085), (0.030, 0.016, 0.03)) * front
    lips = _gauss(p, (0.0, L.MOUTH_Y, 0.09), (0.026, 0.011, 0.025)) * front
    # the lips move apart only along the slit; beyond the corners upper and lower skin are one sheet
    along_slit = np.clip(1.0 - (x / L.MOUTH_HALF_WIDTH) ** 2, 0.0, 1.0)
    upper = lips * (side > 0) * along_slit
    lower = lips * (side < 0) * along_slit

    def corner(s: float) -> np.ndarray:
        return _gauss(p, (s * L.MOUTH_HALF_WIDTH, L.MOUTH_Y, 0.078), (0.014, 0.013, 0.03)) * front

    def cheek(s: float) -> np.ndarray:
        return _gauss(p, (s * 0.04, -0.02, 0.06), (0.018, 0.018, 0.03)) * front

    brows = _gauss(p, (0.0, 0.045, 0.08), (0.05, 0.016, 0.04)) * front
    forehead = _smoothstep(0.028, 0.05, y) * _smoothstep(0.11, 0.07, y) * front * np.exp(-((x / 0.06) ** 4))
    inner_brows = sum(_gauss(p, (s * 0.015, 0.042, 0.085), (0.012, 0.010, 0.03)) for s in (-1.0, 1.0)) * front

    fields: list[tuple[str, np.ndarray]] = [
        ("lip_pucker", _vec(dx=-0.25 * x * lips, dz=0.006 * lips, n=n)),
        ("lip_round", _vec(dx=-0.15 * x * lips, dy=0.003 * upper - 0.004 * lower, dz=0.003 * lips, n=n)),
        (
            "smile_left",
            (corner(1.0)[:, None] * np.array([0.004, 0.005, -0.003]))
            + _vec(dy=0.002 * cheek(1.0), dz=0.0015 * cheek(1.0), n=n),
        ),
        (
            "smile_right",
            (corner(-1.0)[:, None] * np.array([-0.004, 0.005, -0.003]))
            + _vec(dy=0.002 * cheek(-1.0), dz=0.0015 * cheek(-1.0), n=n),
        ),
        ("lip_press", _vec(dy=-0.0015 * upper + 0.0015 * lower, dz=-0.0035 * lips, n=n)),
        (
            "upper_lip_raise",
            _vec(dy=0.004 * upper * _gauss(p, (0.0, L.MOUTH_Y, 0.09), (0.03, 0.03, 0.05)), n=n),
        ),
        ("lower_lip_depress", _vec(dy=-0.005 * lower, dz=0.001 * lower, n=n)),
        (
            "cheek_puff",
            sum(
                _gauss(p, (s * 0.040, -0.038, 0.055), (0.018, 0.02, 0.03))[:, None]
                * np.array([s * 0.005, 0.0, 0.003])
                for s in (-1.0, 1.0)
            ),
        ),
        ("brow_raise", _vec(dy=0.006 * np.maximum(brows, 0.5 * forehead), n=n)),
        ("brow_furrow", _vec(dx=-0.004 * np.sign(x) * inner_brows, dy=-0.003 * inner_brows, n=n)),
        ("blink_left", _blink(geometry, 1.0)),
        ("blink_right", _blink(geometry, -1.0)),
        (
            "nose_wrinkle",
            _vec(dy=0.003 * _gauss(p, (0.0, -0.005, 0.1), (0.018, 0.02, 0.03)) * front + 0.0015 * upper, n=n),
        ),
        ("mouth_stretch", _vec(dx=0.12 * x * mouth, n=n)),
        ("mouth_shift", _vec(dx=0.004 * mouth, n=n)),
        ("lip_corner_depress", _vec(dy=-0.004 * (corner(1.0) + corner(-1.0)), n=n)),
        (
            "cheek_squint",
            _vec(
                dy=0.003
                * sum(_gauss(p, (s * 0.033, 0.0, 0.07), (0.014, 0.01, 0.03)) for s in (-1.0, 1.0))
                * front,
                n=n,
            ),
        ),
    ]
    return fields


def _blink(geometry: HeadGeometry, side: float) -> np.ndarray:
    """Upper lid rotating down over the eyeball about the eye's x axis (chord of the rotation)."""
    p = geometry.vertices
    out = np.zeros_like(p)
    head = np.zeros(len(p), bool)
    head[geometry.parts["head"].vertices] = True
    c = eye_centre(side)
    u, v = eye_local(p, side)
    upper, lower, _ = eye_fissure(u)
    height = np.maximum(upper - lower, 1e-4)
    mid = 0.5 * (L.EYE_OPEN_OUTER + L.EYE_OPEN_INNER)
    half = 0.5 * (L.EYE_OPEN_OUTER - L.EYE_OPEN_INNER)
    weight = (
        _smoothstep(lower + 0.25 * height, lower + 0.55 * height, v)
        * (1.0 - _smoothstep(upper + 0.004, upper + 0.013, v))
        * (1.0 - _smoothstep(half, half + 0.007, np.abs(u - mid)))
        * head
        * (p[:, 2] > c[2] - 0.005)
    )
    angle = 0.78  # rad: the upper margin reaches the lower one
    cos, sin = np.cos(angle), np.sin(angle)
    offset = p - c
    rotated = np.stack(
        [offset[:, 0], cos * offset[:, 1] - sin * offset[:, 2], sin * offset[:, 1] + cos * offset[:, 2]],
        axis=-1,
    )
    out = (rotated - offset) * weight[:, None]
    # keep the closing lid outside the eyeball: the chord midpoint dips by r (1 - cos(angle / 2))
    radial = offset / np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-9)
    out += radial * (0.0012 * weight)[:, None]
    return out


def make_rigid(field: np.ndarray, geometry: HeadGeometry) -> np.ndarray:
    field = field.copy()
    for name in RIGID_PARTS:
        part = geometry.parts[name].vertices
        field[part] = field[part].mean(axis=0)
    return field


def orthogonal_basis(
    fields: list[tuple[str, np.ndarray]], geometry: HeadGeometry, rigid: bool = True
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Gram-Schmidt in order; returns ``[V, 3, K]`` with mutually orthogonal columns, designed norms."""
    transform: Callable[[np.ndarray], np.ndarray] = (
        (lambda f: make_rigid(f, geometry)) if rigid else (lambda f: f)
    )
    names = tuple(name for name, _ in fields)
    designed = np.stack([transform(field).reshape(-1) for _, field in fields], axis=1)  # [V*3, K]
    # QR = Gram-Schmidt in column order: column k of Q spans what fields 0..k add to fields 0..k-1.
    norms = np.linalg.norm(designed, axis=0)
    q, r = _cholesky_qr2(designed / norms[None, :])
    if np.any(np.diag(r) < 1e-3):
        raise RuntimeError("a basis field is (nearly) a combination of earlier ones")
    columns = q * norms[None, :]
    basis = columns.reshape(len(geometry.vertices), 3, len(names))
    return basis, names


def _cholesky_qr2(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thin QR ``a [N, K] = q r`` with ``diag(r) > 0`` by CholeskyQR2 (Fukaya et al. 2014).

    Two passes of ``r = chol(aᵀa)ᵀ, q = a r⁻¹`` give Householder-level orthogonality for
    cond(a) << 1e8 (the fields are unit-normalised first) at a fraction of the cost for N >> K.
    """
    q, r = a, np.eye(a.shape[1])
    for _ in range(2):
        step = np.linalg.cholesky(q.T @ q).T  # upper triangular
        q = q @ scipy.linalg.solve_triangular(step, np.eye(len(step)))
        r = step @ r
    return q, r
