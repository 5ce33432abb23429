"""Template mesh of ``gsbench-head``: head surface, eyeballs, teeth and mouth interior.

The head surface is a radial height field around :data:`layout.CENTRE`: on a (theta, phi) grid
(theta from +y, phi around y with phi = 0 toward +z) the radius is the first crossing of a smooth
union of ellipsoids and a neck capsule (cranium, mid-face, jaw, chin, cheekbones, mandible
angles) minus two eye sockets. Small features are then displaced along +z (nose, alae, brow
ridge, lips, ears). Grid rows and columns are denser around the face, and the grid doubles as the
UV layout, so the face gets most of the texels.

A mouth slit is cut along one grid row: its vertices are duplicated, the upper copies belong to
the upper lip and the lower copies to the lower lip, and the two coincide at rest (closed mouth).
Each eye opening is made without holes: around an eye, skin is wrapped onto a sphere just
outside the eyeball, except inside the palpebral fissure, where it is tucked just inside the
eyeball so the eyeball shows through. The visible lid margin is therefore the smooth fissure
curve, not a grid staircase.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tracking.head import layout as L


@dataclasses.dataclass(frozen=True)
class Part:
    """A contiguous vertex / face range of the assembled mesh."""

    name: str
    vertices: slice
    faces: slice


@dataclasses.dataclass(frozen=True)
class HeadGeometry:
    vertices: np.ndarray  # [V, 3]
    faces: np.ndarray  # [F, 3]
    uvs: np.ndarray  # [Vt, 2]
    uv_faces: np.ndarray  # [F, 3]
    parts: dict[str, Part]
    grid_shape: tuple[int, int]  # (rows, cols) of the head surface grid (vertex i*cols + j)
    grid_theta: np.ndarray  # [rows]
    grid_phi: np.ndarray  # [cols]
    grid_positions: np.ndarray  # [rows, cols, 3] head surface before the slit copies
    mouth_row: int
    slit_columns: np.ndarray  # grid columns whose mouth-row vertex is duplicated
    slit_copies: np.ndarray  # vertex index of each column's lower-lip copy
    lip_side: np.ndarray  # [V] +1 upper lip/face above the mouth, -1 below it, 0 elsewhere
    head_uv_rect: tuple[float, float]  # v range (v_bottom, v_top) of the head surface in the atlas


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _ellipsoid(
    xyz: tuple[np.ndarray, np.ndarray, np.ndarray],
    centre: tuple[float, float, float],
    radii: tuple[float, float, float],
) -> np.ndarray:
    """Approximate signed distance to an ellipsoid: k0 (k0 - 1) / k1 (Quilez), per coordinate array."""
    qx, qy, qz = ((xyz[k] - centre[k]) / radii[k] for k in range(3))
    k0 = np.sqrt(qx * qx + qy * qy + qz * qz)
    qx, qy, qz = qx / radii[0], qy / radii[1], qz / radii[2]
    k1 = np.sqrt(qx * qx + qy * qy + qz * qz)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def _capsule_y(
    xyz: tuple[np.ndarray, np.ndarray, np.ndarray], x: float, z: float, y0: float, y1: float, radius: float
) -> np.ndarray:
    y = np.clip(xyz[1], y0, y1)
    return np.sqrt((xyz[0] - x) ** 2 + (xyz[1] - y) ** 2 + (xyz[2] - z) ** 2) - radius


def head_implicit(p: np.ndarray) -> np.ndarray:
    """Approximate signed distance of the base head (negative inside). ``p [..., 3]``."""
    p = np.asarray(p, np.float64)
    xyz = (np.ascontiguousarray(p[..., 0]), np.ascontiguousarray(p[..., 1]), np.ascontiguousarray(p[..., 2]))
    d = _ellipsoid(xyz, (0.0, 0.030, -0.012), (0.0745, 0.094, 0.098))  # cranium
    d = _smin(d, _ellipsoid(xyz, (0.0, -0.010, 0.014), (0.063, 0.076, 0.077)), 0.03)  # mid-face
    d = _smin(d, _ellipsoid(xyz, (0.0, -0.058, 0.010), (0.056, 0.040, 0.071)), 0.03)  # jaw
    d = _smin(d, _ellipsoid(xyz, (0.0, -0.086, 0.064), (0.021, 0.018, 0.022)), 0.02)  # chin
    for side in (-1.0, 1.0):
        d = _smin(
            d, _ellipsoid(xyz, (side * 0.050, -0.064, -0.008), (0.013, 0.020, 0.020)), 0.02
        )  # gonial angle
        d = _smin(d, _ellipsoid(xyz, (side * 0.041, 0.006, 0.047), (0.024, 0.017, 0.030)), 0.02)  # cheekbone
    d = _smin(d, _capsule_y(xyz, 0.0, -0.024, -0.30, -0.03, 0.054), 0.03)  # neck
    for side in (-1.0, 1.0):  # eye sockets (smooth subtraction)
        socket = _ellipsoid(xyz, (side * L.EYE_X, L.EYE_Y + 0.001, 0.083), (0.021, 0.015, 0.019))
        d = -_smin(-d, socket, 0.012)
    return d


def _density_samples(
    n: int, lo: float, hi: float, peaks: list[tuple[float, float, float]], endpoint: bool = True
) -> np.ndarray:
    """``n`` samples in [lo, hi] spaced by the inverse CDF of 1 + sum boost * gauss(centre, width)."""
    x = np.linspace(lo, hi, 8193)
    density = np.ones_like(x)
    for centre, width, boost in peaks:
        density += boost * np.exp(-(((x - centre) / width) ** 2))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    return np.interp(np.linspace(0.0, 1.0, n, endpoint=endpoint), cdf, x)


def _directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    st = np.sin(theta)
    return np.stack([st * np.sin(phi), np.cos(theta) * np.ones_like(phi), st * np.cos(phi)], axis=-1)


def _first_crossing(directions: np.ndarray, r_max: float = 0.32, step: float = 0.01) -> np.ndarray:
    """Radius of the first inside->outside crossing of :func:`head_implicit` along each direction."""
    flat = directions.reshape(-1, 3)
    lo = np.zeros(len(flat))
    hi = np.full(len(flat), r_max)
    pending = np.arange(len(flat))
    for r in np.arange(0.04, r_max, step):  # the centre's 4 cm ball is inside the head
        outside = head_implicit(L.CENTRE + flat[pending] * r) > 0
        hi[pending[outside]] = r
        lo[pending[outside]] = r - step
        pending = pending[~outside]
        if len(pending) == 0:
            break
    for _ in range(15):
        mid = 0.5 * (lo + hi)
        outside = head_implicit(L.CENTRE + flat * mid[:, None]) > 0
        hi = np.where(outside, mid, hi)
        lo = np.where(outside, lo, mid)
    return (0.5 * (lo + hi)).reshape(directions.shape[:-1])


def nose_height(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Forward (+z) protrusion of the nose over the base face at frontal coordinates (x, y)."""
    ys = [0.045, 0.032, 0.018, 0.004, -0.006, -0.0115, -0.0165, -0.0215, -0.0255, -0.030]
    hs = [0.0, 0.0015, 0.0055, 0.0120, 0.0180, 0.0205, 0.0190, 0.0115, 0.0030, 0.0]
    ws = [0.0075, 0.0065, 0.0066, 0.0072, 0.0085, 0.0098, 0.0108, 0.0112, 0.0105, 0.0095]
    # np.interp needs increasing x
    h = np.interp(-y, [-v for v in ys], hs)
    w = np.interp(-y, [-v for v in ys], ws)
    ridge = h * np.exp(-(np.abs(x / w) ** 2.6))
    alae = np.zeros_like(x)
    for side in (-1.0, 1.0):
        alae += 0.0068 * np.exp(-(((x - side * 0.0122) / 0.0052) ** 2 + ((y + 0.0195) / 0.0055) ** 2))
    return np.maximum(ridge, alae)


def _feature_displacement(p: np.ndarray) -> np.ndarray:
    """+z displacement of the nose, brow ridge, philtrum and ears for base-surface points ``p``."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    front = _smoothstep(0.02, 0.06, z)
    dz = nose_height(x, y) * front
    dz += 0.0045 * np.exp(-(((y - 0.041) / 0.011) ** 2)) * np.exp(-((x / 0.048) ** 4)) * front  # brow ridge
    dz -= 0.0030 * np.exp(-(((y - 0.031) / 0.008) ** 2)) * np.exp(-((x / 0.009) ** 2)) * front  # nasion dip
    # philtrum columns and the groove between them
    philtrum = np.exp(-(((y - (L.MOUTH_Y + 0.013)) / 0.007) ** 2))
    dz += philtrum * (0.0012 * np.exp(-(((np.abs(x) - 0.0045) / 0.0022) ** 2)) - 0.0004) * front
    out = np.zeros_like(p)
    out[..., 2] = dz
    # ears: outward bumps on the sides behind the jaw joint
    for side in (-1.0, 1.0):
        ear = np.exp(-((((y - 0.004) / 0.026) ** 2 + ((z + 0.010) / 0.016) ** 2) ** 1.5))
        out[..., 0] += side * 0.013 * ear * (np.sign(x) == side)
    return out


def _uv_sphere(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unit sphere with poles on +z (front) and -z; returns verts, faces, polar angle, azimuth."""
    gamma = np.linspace(0.0, np.pi, n_lat + 1)[1:-1]
    psi = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)
    g, s = np.meshgrid(gamma, psi, indexing="ij")
    ring = np.stack([np.sin(g) * np.cos(s), np.sin(g) * np.sin(s), np.cos(g)], axis=-1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    faces = []
    idx = lambda i, j: 1 + i * n_lon + (j % n_lon)  # noqa: E731
    for j in range(n_lon):
        faces.append([0, idx(0, j), idx(0, j + 1)])
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a, b, c, d = idx(i, j), idx(i, j + 1), idx(i + 1, j + 1), idx(i + 1, j)
            faces += [[a, d, c], [a, c, b]]
    last = len(verts) - 1
    for j in range(n_lon):
        faces.append([last, idx(n_lat - 2, j + 1), idx(n_lat - 2, j)])
    polar = np.concatenate([[0.0], g.reshape(-1), [np.pi]])
    azimuth = np.concatenate([[0.0], s.reshape(-1), [0.0]])
    return verts, np.asarray(faces, np.int64), polar, azimuth


def _orient_outward(vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if np.sum(np.einsum("fi,fi->f", normals, tri.mean(axis=1) - centre)) < 0:
        return faces[:, ::-1].copy()
    return faces


def eye_fissure(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper lid, lower lid heights and normalized position t in [-1, 1] at eye-local lateral ``u``."""
    half = 0.5 * (L.EYE_OPEN_OUTER - L.EYE_OPEN_INNER)
    t = np.clip((u - 0.5 * (L.EYE_OPEN_OUTER + L.EYE_OPEN_INNER)) / half, -1.0, 1.0)
    centre = 0.5 * L.EYE_CORNER_TILT * t
    upper = centre + L.EYE_OPEN_UP * (1.0 - t * t) ** 0.75 * (1.0 - 0.18 * t)
    lower = centre - L.EYE_OPEN_DOWN * (1.0 - t * t) ** 0.9 * (1.0 + 0.2 * t)
    return upper, lower, t


def eye_local(p: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """Eye-local coordinates: ``u`` lateral (away from the nose), ``v`` up, relative to the eye centre."""
    return side * (p[..., 0] - side * L.EYE_X), p[..., 1] - L.EYE_Y


def fissure_signed_distance(p: np.ndarray, side: float) -> np.ndarray:
    """Approximate signed distance (metres, negative inside) to the eye opening in the frontal plane."""
    u, v = eye_local(p, side)
    upper, lower, _ = eye_fissure(u)
    half = 0.5 * (L.EYE_OPEN_OUTER - L.EYE_OPEN_INNER)
    mid = 0.5 * (L.EYE_OPEN_OUTER + L.EYE_OPEN_INNER)
    return np.maximum(np.maximum(v - upper, lower - v), np.abs(u - mid) - half)


def eye_centre(side: float) -> np.ndarray:
    return np.array([side * L.EYE_X, L.EYE_Y, L.EYE_Z])


def _wrap_eyelids(p: np.ndarray) -> np.ndarray:
    """Wrap skin around each eyeball; tuck it inside the eyeball within the fissure (see module doc)."""
    p = p.copy()
    for side in (-1.0, 1.0):
        c = eye_centre(side)
        u, v = eye_local(p, side)
        q = ((u - 0.001) / 0.024) ** 2 + ((v - 0.001) / 0.017) ** 2
        weight = 1.0 - _smoothstep(0.45, 1.0, q)
        near = (q < 1.2) & (p[:, 2] > c[2] - 0.012)
        offset = p - c
        radius = np.linalg.norm(offset, axis=1)
        direction = offset / np.maximum(radius, 1e-9)[:, None]
        # fissure membership of where the vertex lands on the lid sphere, not where it starts
        sd = fissure_signed_distance(c + direction * (L.EYE_RADIUS + L.LID_GAP), side)
        target = L.EYE_RADIUS + L.LID_GAP * np.clip(sd / 0.0011, -1.0, 1.0)
        floor_radius = np.maximum(radius, L.EYE_RADIUS + L.LID_GAP)
        new_radius = weight * target + (1.0 - weight) * floor_radius
        p[near] = c + direction[near] * new_radius[near, None]
    return p


def _lip_profile(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """+z bulge of the lips given the height ``dy`` above the mouth line and ``x``."""
    lateral = np.clip(1.0 - (x / (L.MOUTH_HALF_WIDTH + 0.004)) ** 2, 0.0, 1.0) ** 0.6
    upper = 0.0042 * np.exp(-(((dy - 0.0042) / 0.0042) ** 2))
    lower = 0.0050 * np.exp(-(((dy + 0.0050) / 0.0050) ** 2))
    curl = -0.0014 * np.exp(-((dy / 0.0016) ** 2))
    sulcus = -0.0022 * np.exp(-(((dy + 0.0175) / 0.0045) ** 2)) * np.clip(1.0 - (x / 0.03) ** 2, 0.0, 1.0)
    return lateral * (np.where(dy >= 0, upper, lower) + curl) + sulcus


def build_geometry(rows: int = 104, cols: int = 128) -> HeadGeometry:
    """Assemble the template mesh. Deterministic (no randomness)."""
    mouth_dir_theta = float(np.arctan2(0.09, L.MOUTH_Y - L.CENTRE[1]))
    theta_max = float(np.pi - np.arctan2(0.056, 0.24))
    theta = _density_samples(
        rows, 0.05, theta_max, [(1.45, 0.45, 1.6), (mouth_dir_theta, 0.10, 1.2), (1.32, 0.08, 0.6)]
    )
    mouth_row = int(np.argmin(np.abs(theta - mouth_dir_theta)))
    theta[mouth_row] = mouth_dir_theta
    phi = _density_samples(cols, -np.pi, np.pi, [(0.0, 0.75, 2.4), (0.0, 0.25, 1.2)], endpoint=False)
    phi = phi - phi[np.argmin(np.abs(phi))]  # a column exactly at phi = 0 (the midline)

    directions = _directions(theta[:, None], phi[None, :])  # [rows, cols, 3]
    radius = _first_crossing(directions)
    base = L.CENTRE + directions * radius[..., None]
    grid = base + _feature_displacement(base)

    # Lips: bulge relative to the mouth row of each column.
    line_y = grid[mouth_row, :, 1]
    dy = grid[..., 1] - line_y[None, :]
    lip_columns = np.abs(grid[mouth_row, :, 0]) < L.MOUTH_HALF_WIDTH + 0.008
    lips = _lip_profile(dy, grid[..., 0]) * lip_columns[None, :] * (np.abs(dy) < 0.03)
    lips *= _smoothstep(0.04, 0.07, grid[..., 2])
    grid[..., 2] += lips
    flat = _wrap_eyelids(grid.reshape(-1, 3))
    grid = flat.reshape(rows, cols, 3)

    slit_columns = np.nonzero(np.abs(grid[mouth_row, :, 0]) < L.MOUTH_HALF_WIDTH)[0]
    slit_columns = slit_columns[(grid[mouth_row, slit_columns, 2] > 0.05)]

    # Head surface vertices: grid (row-major), top pole, then the lower-lip copies of the slit row.
    n_grid = rows * cols
    pole = np.array([[0.0, _first_crossing(np.array([[0.0, 1.0, 0.0]]))[0], 0.0]]) + L.CENTRE
    pole_index = n_grid
    copies = n_grid + 1 + np.arange(len(slit_columns))
    head_vertices = np.concatenate([grid.reshape(-1, 3), pole, grid[mouth_row, slit_columns]])
    copy_of_column = np.full(cols, -1)
    copy_of_column[slit_columns] = copies

    faces, uv_faces = [], []
    head_v_lo, head_v_hi = 0.2, 1.0
    # UV: grid (rows x cols+1, the seam column duplicated) then one pole uv per column.
    grid_u = np.arange(cols + 1) / cols
    grid_v = head_v_hi - (head_v_hi - head_v_lo) * (np.arange(rows) / (rows - 1))
    uv_grid = np.stack(np.meshgrid(grid_u, grid_v, indexing="xy"), axis=-1).reshape(-1, 2)
    uv_pole = np.stack([(np.arange(cols) + 0.5) / cols, np.full(cols, 1.0)], axis=-1)
    uvs_head = np.concatenate([uv_grid, uv_pole])

    j = np.arange(cols)
    faces.append(np.stack([np.full(cols, pole_index), j, (j + 1) % cols], axis=-1))
    uv_faces.append(np.stack([rows * (cols + 1) + j, j, j + 1], axis=-1))
    ii, jj = np.meshgrid(np.arange(rows - 1), j, indexing="ij")
    ii, jj = ii.reshape(-1), jj.reshape(-1)
    a, b = ii * cols + jj, ii * cols + (jj + 1) % cols
    below = ii == mouth_row
    a = np.where(below & (copy_of_column[jj] >= 0), copy_of_column[jj], a)
    b = np.where(below & (copy_of_column[(jj + 1) % cols] >= 0), copy_of_column[(jj + 1) % cols], b)
    c, d = (ii + 1) * cols + (jj + 1) % cols, (ii + 1) * cols + jj
    faces.append(np.stack([np.stack([a, d, c], -1), np.stack([a, c, b], -1)], axis=1).reshape(-1, 3))
    ta, tb = ii * (cols + 1) + jj, ii * (cols + 1) + jj + 1
    tc, td = (ii + 1) * (cols + 1) + jj + 1, (ii + 1) * (cols + 1) + jj
    uv_faces.append(np.stack([np.stack([ta, td, tc], -1), np.stack([ta, tc, tb], -1)], axis=1).reshape(-1, 3))
    head_faces = np.concatenate(faces).astype(np.int64)
    head_uv_faces = np.concatenate(uv_faces).astype(np.int64)
    if np.sum(np.einsum("fi,fi->f", *_face_normals_and_offsets(head_vertices, head_faces))) < 0:
        head_faces = head_faces[:, ::-1].copy()
        head_uv_faces = head_uv_faces[:, ::-1].copy()

    lip_side = np.zeros(len(head_vertices), np.int8)
    near_mouth = np.abs(head_vertices[:, 0]) < 0.06
    lip_side[: n_grid + 1] = np.where(
        head_vertices[: n_grid + 1, 1]
        >= np.interp(
            head_vertices[: n_grid + 1, 0],
            np.sort(grid[mouth_row, slit_columns, 0]),
            grid[mouth_row, slit_columns, 1][np.argsort(grid[mouth_row, slit_columns, 0])],
        )
        - 1e-6,
        1,
        -1,
    )
    lip_side[~near_mouth] = 0
    lip_side[copies] = -1

    pieces_v = [head_vertices]
    pieces_f = [head_faces]
    pieces_uv = [uvs_head]
    pieces_uvf = [head_uv_faces]
    parts = {"head": Part("head", slice(0, len(head_vertices)), slice(0, len(head_faces)))}

    def add_part(
        name: str, verts: np.ndarray, faces_: np.ndarray, uvs_: np.ndarray, uv_faces_: np.ndarray
    ) -> None:
        v0 = sum(len(v) for v in pieces_v)
        f0 = sum(len(f) for f in pieces_f)
        t0 = sum(len(t) for t in pieces_uv)
        pieces_v.append(verts)
        pieces_f.append(faces_ + v0)
        pieces_uv.append(uvs_)
        pieces_uvf.append(uv_faces_ + t0)
        parts[name] = Part(name, slice(v0, v0 + len(verts)), slice(f0, f0 + len(faces_)))

    sphere, sphere_faces, polar, azimuth = _uv_sphere(18, 32)
    eye_uv = np.stack(
        [
            L.EYE_UV_CENTRE[0] + L.eye_uv_radius(polar) * np.cos(azimuth),
            L.EYE_UV_CENTRE[1] + L.eye_uv_radius(polar) * np.sin(azimuth),
        ],
        axis=-1,
    )
    for side, name in ((1.0, "left_eye"), (-1.0, "right_eye")):
        add_part(name, eye_centre(side) + L.EYE_RADIUS * sphere, sphere_faces, eye_uv, sphere_faces)

    for name, (verts, faces_, uvs_) in _teeth().items():
        add_part(name, verts, faces_, uvs_, faces_)
    bag, bag_faces, bag_polar, bag_azimuth = _uv_sphere(14, 28)
    bag_centre = np.array([0.0, L.MOUTH_Y - 0.004, 0.046])
    bag_vertices = bag_centre + bag * np.array([0.023, 0.0135, 0.029])
    bag_uv = np.stack([0.62 + 0.36 * (bag_azimuth / (2 * np.pi)), 0.02 + 0.16 * (bag_polar / np.pi)], axis=-1)
    bag_faces = _orient_outward(bag_vertices, bag_faces, bag_centre)
    add_part("mouth_interior", bag_vertices, bag_faces, bag_uv, bag_faces)

    vertices = np.concatenate(pieces_v)
    lip_side_all = np.zeros(len(vertices), np.int8)
    lip_side_all[: len(lip_side)] = lip_side
    return HeadGeometry(
        vertices=vertices,
        faces=np.concatenate(pieces_f),
        uvs=np.concatenate(pieces_uv),
        uv_faces=np.concatenate(pieces_uvf),
        parts=parts,
        grid_shape=(rows, cols),
        grid_theta=theta,
        grid_phi=phi,
        grid_positions=grid,
        mouth_row=mouth_row,
        slit_columns=slit_columns,
        slit_copies=copies,
        lip_side=lip_side_all,
        head_uv_rect=(head_v_lo, head_v_hi),
    )


def _face_normals_and_offsets(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tri = vertices[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return normals, tri.mean(axis=1) - L.CENTRE - np.array([0.0, 0.0, -0.01])


def _teeth() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Upper and lower dental arches: a swept closed band (front, bottom, back, top faces)."""
    out = {}
    n_arc = 29
    beta = np.linspace(-1.2, 1.2, n_arc)
    for name, radius, front_z, y_lo, y_hi, uv_v0 in (
        ("upper_teeth", L.TEETH_ARCH_RADIUS, L.TEETH_FRONT_Z, L.MOUTH_Y + 0.0006, L.MOUTH_Y + 0.0105, 0.10),
        (
            "lower_teeth",
            L.TEETH_ARCH_RADIUS - 0.002,
            L.TEETH_FRONT_Z - 0.0025,
            L.MOUTH_Y - 0.0095,
            L.MOUTH_Y - 0.0004,
            0.0,
        ),
    ):
        thickness = 0.0045
        centre_z = front_z - radius
        section = [(radius, y_hi), (radius, y_lo), (radius - thickness, y_lo), (radius - thickness, y_hi)]
        verts, uvs = [], []
        for k, (r, y) in enumerate(section):
            for b in beta:
                verts.append([r * np.sin(b), y, centre_z + r * np.cos(b)])
                uvs.append([0.22 + 0.36 * (b - beta[0]) / (beta[-1] - beta[0]), uv_v0 + 0.02 + 0.06 * k / 3])
        verts = np.asarray(verts)
        faces = []
        for k in range(4):
            k2 = (k + 1) % 4
            for a in range(n_arc - 1):
                p, q = k * n_arc + a, k * n_arc + a + 1
                r_, s = k2 * n_arc + a + 1, k2 * n_arc + a
                faces += [[p, s, r_], [p, r_, q]]
        faces = np.asarray(faces, np.int64)
        # outward = away from the band's own centre line
        tri = verts[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        cen = tri.mean(axis=1)
        radial = cen - np.array([0.0, 0.0, centre_z])
        radial[:, 1] = 0
        band_r = np.linalg.norm(radial, axis=1)
        mid_r = radius - thickness / 2
        mid_y = 0.5 * (y_lo + y_hi)
        outward = np.stack(
            [
                radial[:, 0] / band_r * (band_r - mid_r),
                cen[:, 1] - mid_y,
                radial[:, 2] / band_r * (band_r - mid_r),
            ],
            axis=-1,
        )
        if np.sum(np.einsum("fi,fi->f", normals, outward)) < 0:
            faces = faces[:, ::-1].copy()
        out[name] = (verts, faces, np.asarray(uvs))
    return out
