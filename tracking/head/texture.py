"""Procedural albedo texture and wrinkle maps of ``gsbench-head``.

Atlas (v up, as in OBJ): the head surface fills v in [0.2, 1] (u = grid column, v = grid row, so the
face gets most texels); the bottom strip holds the shared eyeball disc (u < 0.2), the teeth
(0.22-0.58) and the mouth interior (0.62-0.98).

Head texels are painted from their template 3D position (found by interpolating the surface grid)
with the same feature curves as the landmark embedding: skin with low- and high-frequency
variation and redness (cheeks, nose, ears, lips), red lips with a dark mouth line, dark
eyebrows with strands, lash lines and lid creases, nostrils, and hair over the scalp. Eyeballs
get a sclera, a textured iris with a limbal ring, and a pupil.

Wrinkle maps are [H, W] darkening amounts in [0, 1], keyed by the expression component that
shows them (``brow_raise``: forehead lines; ``smile_left``/``smile_right``: nasolabial folds;
``brow_furrow``: glabella lines; ``nose_wrinkle``: lines beside the bridge; ``cheek_squint``:
crow's feet). See :func:`tracking.head_model.expression_albedo`.

Painting is float32. Each small feature (eye lines, nostrils, lips, brows, wrinkles) is evaluated
only inside the texel rectangle that holds its support: a Gaussian line ``exp(-(d / w)^2)`` is
cut at ``|d| > 6 w`` (below 1e-15), everything else there is exactly zero.
"""

from __future__ import annotations

import cv2
import numpy as np

from tracking.head import layout as L
from tracking.head.geometry import HeadGeometry, eye_fissure, eye_local

TEXTURE_SIZE = 1024


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _rgb(red: float, green: float, blue: float) -> np.ndarray:
    return np.array([red, green, blue], np.float32)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    """scipy.ndimage's Gaussian taps (radius ``int(4 sigma + 0.5)``, normalised)."""
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _gaussian_filter_wrap(field: np.ndarray, sigmas: tuple[float, float]) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter(field, sigmas, mode="wrap")`` for 2D ``field``, in float32."""
    kernel_rows, kernel_cols = _gaussian_kernel(sigmas[0]), _gaussian_kernel(sigmas[1])
    pad_rows, pad_cols = len(kernel_rows) // 2, len(kernel_cols) // 2
    padded = np.pad(field.astype(np.float32), ((pad_rows, pad_rows), (pad_cols, pad_cols)), mode="wrap")
    filtered = cv2.sepFilter2D(padded, -1, kernel_cols, kernel_rows, borderType=cv2.BORDER_REFLECT)
    return filtered[pad_rows : pad_rows + field.shape[0], pad_cols : pad_cols + field.shape[1]]


def _bilinear(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``grid [R, C, ...]`` sampled at fractional ``rows [h]`` x ``cols [w]`` -> ``[h, w, ...]``.

    Separable linear interpolation, coordinates clamped to the grid (``map_coordinates(order=1,
    mode="nearest")`` on a tensor-product sample grid).
    """

    def taps(coord: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        coord = np.clip(coord, 0.0, n - 1.0)
        first = np.minimum(coord.astype(np.int64), n - 2)
        return first, (coord - first).astype(grid.dtype)

    row0, row_w = taps(rows, grid.shape[0])
    col0, col_w = taps(cols, grid.shape[1])
    trailing = (None,) * (grid.ndim - 2)
    # columns first on the small grid, so the large gather copies whole rows
    col_w = col_w[(None, slice(None), *trailing)]
    along_cols = grid[:, col0] * (1 - col_w) + grid[:, col0 + 1] * col_w  # [R, w, ...]
    row_w = row_w[(slice(None), None, *trailing)]
    return along_cols[row0] * (1 - row_w) + along_cols[row0 + 1] * row_w


def _noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, float]
) -> np.ndarray:
    """Gaussian-filtered (wrapping) white noise normalised to unit standard deviation, float32.

    Smooth fields (sigma >= 4 texels) are drawn at a quarter of the resolution and upsampled
    linearly (corners to corners, as ``scipy.ndimage.zoom(order=1)``).
    """
    sigmas = np.broadcast_to(np.asarray(sigma, np.float64), (2,))
    if sigmas.min() >= 4.0:
        small = (shape[0] // 4 + 2, shape[1] // 4 + 2)
        field = _gaussian_filter_wrap(rng.standard_normal(small), tuple(sigmas / 4.0))
        zoom_rows = np.arange(shape[0]) * ((small[0] - 1) / (4 * small[0] - 1))
        zoom_cols = np.arange(shape[1]) * ((small[1] - 1) / (4 * small[1] - 1))
        field = _bilinear(field, zoom_rows, zoom_cols)
    else:
        field = _gaussian_filter_wrap(rng.standard_normal(shape), tuple(sigmas))
    return field / max(float(field.std(dtype=np.float64)), 1e-12)


def _box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """Smallest (rows, cols) rectangle of ``mask [h, w]`` holding all its True texels; None if none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def texel_positions(geometry: HeadGeometry, size: int) -> tuple[np.ndarray, slice]:
    """Template 3D position [rows_px, size, 3] of each head texel and the image-row slice it covers."""
    rows, cols = geometry.grid_shape
    v_lo, v_hi = geometry.head_uv_rect
    top = int(round((1.0 - v_hi) * size))
    bottom = int(round((1.0 - v_lo) * size))
    py = np.arange(top, bottom) + 0.5
    px = np.arange(size) + 0.5
    v = 1.0 - py / size
    grid_i = (v_hi - v) / (v_hi - v_lo) * (rows - 1)
    grid_j = px / size * cols
    grid = np.concatenate([geometry.grid_positions, geometry.grid_positions[:, :1]], axis=1)  # seam column
    return _bilinear(grid.astype(np.float32), grid_i, grid_j), slice(top, bottom)


def _hairline(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hair coverage in [0, 1] from template positions (front hairline, temples, above ears, nape)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    line = np.interp(
        -z,
        [-0.09, -0.06, -0.035, -0.015, 0.01, 0.035, 0.06, 0.09, 0.13],
        [L.HAIRLINE_Y + 0.006, L.HAIRLINE_Y - 0.002, 0.062, 0.048, 0.038, 0.005, -0.045, -0.07, -0.075],
    ).astype(x.dtype)
    line = line - 0.010 * np.exp(-((x / 0.012) ** 2)) * (z > 0.05)  # slight widow's peak
    wobble = 0.003 * _noise(rng, p.shape[:2], (3.0, 6.0))
    return _smoothstep(-0.002, 0.004, y - line + wobble)


def _lip_mask(p: np.ndarray) -> np.ndarray:
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    upper = L.upper_lip_outline(x)
    lower = L.lower_lip_outline(x)
    inside = np.minimum(upper - y, y - lower)
    edge = _smoothstep(-0.0004, 0.0006, inside)
    return edge * (np.abs(x) < L.MOUTH_HALF_WIDTH + 0.001) * _smoothstep(0.05, 0.07, z)


def _brow_lines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Eyebrow coverage before strands: 1 on the brow curves, tapered at their ends."""
    out = np.zeros(x.shape, x.dtype)
    t = np.linspace(0.0, 1.0, 60)
    for side in (-1.0, 1.0):
        bx, by = L.brow_curve(side, t)
        half = L.brow_half_thickness(t)
        # distance to the polyline, sampled densely (60 points) — enough at texel scale
        sel = (np.abs(x - side * 0.034) < 0.032) & (np.abs(y - L.BROW_Y) < 0.016)
        px, py = x[sel][:, None], y[sel][:, None]
        d = np.sqrt((px - bx[None]) ** 2 + (py - by[None]) ** 2) / half[None]
        k = np.argmin(d, axis=1)
        dn = d[np.arange(len(k)), k]
        taper = np.where(t[k] < 0.08, t[k] / 0.08, 1.0) * np.where(
            t[k] > 0.85, (1.0 - t[k]) / 0.15 + 0.3, 1.0
        )
        out[sel] = np.maximum(out[sel], (1.0 - _smoothstep(0.6, 1.15, dn)) * np.clip(taper, 0, 1))
    return out


def _brow_support(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Where :func:`_brow_lines` can be non-zero."""
    return (np.abs(x) < 0.066) & (np.abs(y - L.BROW_Y) < 0.016)


def _brow_mask(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    lines = _brow_lines(x, y)
    strands = 0.65 + 0.35 * _noise(rng, x.shape, (0.6, 2.5))
    return np.clip(lines * strands, 0.0, 1.0) * _smoothstep(0.03, 0.06, z)


def _line(d: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-((d / width) ** 2))


def paint_head(p: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Albedo [h, w, 3] float32 in [0, 1] and wrinkle maps for head texels at template positions ``p``."""
    p = p.astype(np.float32, copy=False)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    shape = x.shape
    front = _smoothstep(0.03, 0.07, z)
    skin = np.array([0.86, 0.66, 0.54]) * (1.0 + 0.02 * rng.standard_normal(3))
    low = _noise(rng, shape, 18.0)
    mid = _noise(rng, shape, 4.0)
    pores = _noise(rng, shape, 0.7)
    shade = 1.0 + 0.035 * low + 0.02 * mid + 0.025 * pores
    redness = (
        sum(np.exp(-(((x - s * 0.042) / 0.018) ** 2 + ((y + 0.018) / 0.016) ** 2)) for s in (-1.0, 1.0))
        * front
        + 0.8 * np.exp(-((x / 0.012) ** 2 + ((y - L.NOSE_TIP_Y) / 0.012) ** 2)) * front
        + 0.6 * np.exp(-(((np.abs(x) - 0.075) / 0.012) ** 2 + ((y - 0.004) / 0.025) ** 2))
    )
    colour = np.empty(shape + (3,), np.float32)
    for channel, tint in enumerate((1.0, -0.5, -0.4)):
        colour[..., channel] = np.float32(skin[channel]) * shade + (0.05 * tint) * redness
    hair = _hairline(p, rng).astype(np.float32)
    strands = 1.0 + 0.25 * _noise(rng, shape, (0.5, 3.0)) + 0.1 * low
    face = _face_window(p)
    face_colour = colour[face]  # a view: _paint_face paints into colour
    face_wrinkles = _paint_face(p[face], face_colour, hair[face], mid[face], rng)
    colour *= (1.0 - hair)[..., None]
    colour += (hair * strands)[..., None] * _rgb(0.20, 0.13, 0.09)
    np.clip(colour, 0.0, 1.0, out=colour)
    wrinkles = {}
    for name, value in face_wrinkles.items():
        full = np.zeros(shape, np.float32)
        full[face] = value
        wrinkles[name] = full
    return colour, wrinkles


def _face_window(p: np.ndarray) -> tuple[slice, slice]:
    """Bounding rows/columns of the texels on the front of the face (where features are painted)."""
    front = (p[..., 2] > 0.03) & (np.abs(p[..., 0]) < 0.065) & (p[..., 1] > -0.075) & (p[..., 1] < 0.075)
    window = _box(front)
    if window is None:
        raise RuntimeError("no texel lies on the front of the face")
    return window


def _paint_face(
    p: np.ndarray, colour: np.ndarray, hair: np.ndarray, mid: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Paint eyes, nose, lips and brows into ``colour`` (in place); return the wrinkle maps."""
    x, y = p[..., 0], p[..., 1]
    shape = x.shape

    def front_of(box: tuple[slice, slice]) -> np.ndarray:
        return _smoothstep(0.03, 0.07, p[box][..., 2])

    # shading hints that survive any lighting: lid creases, under-eye, nostrils, mouth line
    for side in (-1.0, 1.0):
        u, v = eye_local(p, side)
        # lash lines, crease and under-eye shadow all lie within u in (-0.016, 0.018), v in (-0.03, 0.026)
        box = _box((u > -0.017) & (u < 0.019) & (v > -0.031) & (v < 0.027))
        if box is not None:
            _paint_eye_surround(p[box], colour[box], side, front_of(box))
        nostril_box = _box(
            (np.abs(x - side * 0.0058) < 0.0033) & (np.abs(y - (L.SUBNASALE_Y + 0.0028)) < 0.002)
        )
        if nostril_box is not None:
            q = p[nostril_box]
            nostril = ((q[..., 0] - side * 0.0058) / 0.0032) ** 2 + (
                (q[..., 1] - (L.SUBNASALE_Y + 0.0028)) / 0.0019
            ) ** 2
            colour[nostril_box] *= (1.0 - 0.75 * (1.0 - _smoothstep(0.6, 1.0, nostril)) * (q[..., 2] > 0.09))[
                ..., None
            ]
    lip_box = _box(
        (np.abs(x) < L.MOUTH_HALF_WIDTH + 0.0015)
        & (y > L.MOUTH_Y - 1.1 * L.LOWER_LIP_HEIGHT - 0.001)
        & (y < L.MOUTH_Y + 1.2 * L.UPPER_LIP_HEIGHT + 0.001)
    )
    if lip_box is not None:
        lips = _lip_mask(p[lip_box])[..., None]
        lip_colour = _rgb(0.74, 0.38, 0.38) * (1.0 + 0.04 * mid[lip_box])[..., None]
        colour[lip_box] = colour[lip_box] * (1.0 - lips) + lip_colour * lips
    line_box = _box((np.abs(x) < L.MOUTH_HALF_WIDTH) & (np.abs(y - L.MOUTH_Y) < 6 * 0.0007))
    if line_box is not None:
        q = p[line_box]
        mouth_line = _line(q[..., 1] - L.MOUTH_Y, 0.0007) * (np.abs(q[..., 0]) < L.MOUTH_HALF_WIDTH)
        colour[line_box] *= (1.0 - 0.55 * mouth_line * front_of(line_box))[..., None]
    strands = 0.65 + 0.35 * _noise(rng, shape, (0.6, 2.5))
    brow_box = _box(_brow_support(x, y))
    if brow_box is not None:
        q = p[brow_box]
        brows = np.clip(_brow_lines(q[..., 0], q[..., 1]) * strands[brow_box], 0.0, 1.0)
        brows = (0.88 * brows * _smoothstep(0.03, 0.06, q[..., 2]))[..., None]
        colour[brow_box] = colour[brow_box] * (1.0 - brows) + brows * _rgb(0.22, 0.15, 0.11)
    return _wrinkle_maps(p, hair, front_of)


def _paint_eye_surround(p: np.ndarray, colour: np.ndarray, side: float, front: np.ndarray) -> None:
    """Lash lines, lid crease, tucked lid skin and under-eye shadow of one eye into ``colour`` (in place)."""
    u, v = eye_local(p, side)
    upper, lower, t = eye_fissure(u)
    inside_u = np.abs(t) < 0.999
    lash = _line(v - upper - 0.0006, 0.00075 + 0.0004 * (u > 0.004)) * inside_u
    colour *= (1.0 - 0.85 * lash * front)[..., None]
    lower_lash = _line(v - lower + 0.0004, 0.0005) * inside_u
    colour *= (1.0 - 0.35 * lower_lash * front)[..., None]
    crease = _line(v - upper - 0.0062, 0.0018) * (np.abs(u - 0.001) < 0.016)
    colour *= (1.0 - 0.18 * crease * front)[..., None]
    tucked = (v < upper) & (v > lower) & inside_u  # lid skin hidden inside the eyeball when open
    colour[tucked & (front > 0.5)] *= _rgb(0.92, 0.82, 0.8)
    under = _line(v - lower + 0.005, 0.003) * (np.abs(u) < 0.014)
    colour *= (1.0 - 0.08 * under * front)[..., None]


def _wrinkle_maps(p: np.ndarray, hair: np.ndarray, front_of) -> dict[str, np.ndarray]:
    """Wrinkle maps [h, w] float32 in [0, 1] over the face window ``p [h, w, 3]``."""
    x, y = p[..., 0], p[..., 1]
    wrinkles = {name: np.zeros(x.shape, np.float32) for name in _WRINKLE_NAMES}

    def paint(name: str, support: np.ndarray, draw) -> None:
        box = _box(support)
        if box is not None:
            q = p[box]
            value = draw(q[..., 0], q[..., 1], box) * front_of(box)
            wrinkles[name][box] = np.clip(value, 0.0, 1.0)

    def forehead(x: np.ndarray, y: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
        lines = np.zeros(x.shape, np.float32)
        for k in range(4):
            centre = L.BROW_Y + 0.014 + 0.0085 * k + 0.005 * (x / 0.05) ** 2
            lines += (
                _line(y - centre, 0.0008) * (1.0 - _smoothstep(0.03, 0.05, np.abs(x))) * (0.8 + 0.2 * (k % 2))
            )
        return 0.4 * lines * (1.0 - hair[box])

    paint("brow_raise", (np.abs(x) < 0.05) & (y > 0.050) & (y < 0.095), forehead)
    for name, side in (("smile_left", 1.0), ("smile_right", -1.0)):
        # nasolabial fold: from above the ala, around the mouth corner

        def fold(x: np.ndarray, y: np.ndarray, box: tuple[slice, slice], side: float = side) -> np.ndarray:
            t = np.clip((L.SUBNASALE_Y + 0.006 - y) / 0.04, 0.0, 1.0)
            fold_x = side * (0.0175 + 0.0145 * np.sin(t * np.pi * 0.62))
            on_fold = (y < L.SUBNASALE_Y + 0.008) & (y > L.MOUTH_Y - 0.014)
            return 0.35 * _line(x - fold_x, 0.0016) * on_fold

        on_rows = (y < L.SUBNASALE_Y + 0.008) & (y > L.MOUTH_Y - 0.014)
        paint(name, on_rows & (side * x > 0.007) & (side * x < 0.043), fold)

    def glabella(x: np.ndarray, y: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
        lines = sum(_line(x - s * 0.0045, 0.0005) for s in (-1.0, 1.0))
        return 0.5 * lines * (np.abs(y - 0.037) < 0.008)

    paint("brow_furrow", (np.abs(y - 0.037) < 0.008) & (np.abs(x) < 0.008), glabella)

    def bunny(x: np.ndarray, y: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
        lines = sum(_line((x - s * 0.009) - s * 0.4 * (y - 0.02), 0.0006) for s in (-1.0, 1.0))
        return 0.4 * lines * (np.abs(y - 0.018) < 0.006)

    paint("nose_wrinkle", (np.abs(y - 0.018) < 0.006) & (np.abs(x) < 0.016), bunny)
    crows = np.zeros(x.shape, np.float32)
    for side in (-1.0, 1.0):
        u, v = eye_local(p, side)
        du = u - L.EYE_OPEN_OUTER - 0.002
        box = _box((du > -0.004) & (du < 0.0125) & (np.abs(v) < 0.0125))
        if box is None:
            continue
        du, dv = du[box], v[box]
        for angle in (-0.45, 0.0, 0.45):
            along = du * np.cos(angle) + dv * np.sin(angle)
            across = -du * np.sin(angle) + dv * np.cos(angle)
            crows[box] += _line(across, 0.0005) * (along > 0) * (along < 0.012)
    crows_box = _box(crows > 0)
    if crows_box is not None:
        wrinkles["cheek_squint"][crows_box] = np.clip(0.4 * crows[crows_box] * front_of(crows_box), 0.0, 1.0)
    return wrinkles


_WRINKLE_NAMES = ("brow_raise", "smile_left", "smile_right", "brow_furrow", "nose_wrinkle", "cheek_squint")


def paint_atlas_strip(image: np.ndarray, rng: np.random.Generator) -> None:
    """Eyeballs, teeth and mouth interior in the bottom strip of ``image`` [S, S, 3] (in place)."""
    size = image.shape[0]
    first_row = int(np.floor(0.8 * size))
    image = image[first_row:]  # a view: writes land in the atlas
    v = (1.0 - (np.arange(first_row, size) + 0.5) / size)[:, None]
    u_all = (np.arange(size) + 0.5) / size

    def columns(lo: float, hi: float) -> tuple[slice, np.ndarray]:
        index = np.flatnonzero((u_all >= lo) & (u_all <= hi))
        return slice(index[0], index[-1] + 1), u_all[index][None, :]

    # eyeball disc
    disc_cols, u = columns(
        L.EYE_UV_CENTRE[0] - L.EYE_UV_RADIUS - 0.005, L.EYE_UV_CENTRE[0] + L.EYE_UV_RADIUS + 0.005
    )
    ru = u - L.EYE_UV_CENTRE[0]
    rv = v - L.EYE_UV_CENTRE[1]
    radius = np.sqrt(ru * ru + rv * rv)
    disc = (v < 0.2) & (radius < L.EYE_UV_RADIUS + 0.004)
    polar = L.eye_polar_from_uv_radius(np.minimum(radius, L.EYE_UV_RADIUS))
    azimuth = np.arctan2(rv, ru)
    sclera = np.array([0.93, 0.90, 0.87]) - 0.06 * _smoothstep(0.6, 1.4, polar)[..., None] * np.array(
        [0, 1, 1]
    )
    iris_base = np.array([0.32, 0.24, 0.16]) * (1.0 + 0.18 * rng.standard_normal())
    streaks = 1.0 + 0.25 * np.sin(azimuth * 37.0 + 3.0 * np.sin(azimuth * 5.0)) * np.sin(polar * 40.0)
    iris = iris_base * streaks[..., None] * (1.0 + 0.6 * _smoothstep(0.30, 0.16, polar))[..., None]
    iris_w = (1.0 - _smoothstep(0.47, 0.52, polar))[..., None]
    colour = sclera * (1 - iris_w) + iris * iris_w
    limbus = _line(polar - 0.49, 0.03)
    colour *= (1.0 - 0.6 * limbus)[..., None]
    pupil = (1.0 - _smoothstep(0.17, 0.20, polar))[..., None]
    colour = colour * (1 - pupil) + np.array([0.03, 0.03, 0.03]) * pupil
    highlight = np.exp(-(((ru - 0.012) ** 2 + (rv - 0.014) ** 2) / 0.00002))
    colour = np.clip(colour + 0.5 * highlight[..., None], 0, 1)
    image[:, disc_cols][disc] = colour[disc]
    # teeth
    tooth_noise = rng.standard_normal(image.shape[:2])
    teeth_cols, u = columns(0.21, 0.59)
    phase = (u - 0.22) / 0.36 * 14.0
    gaps = _line(phase - np.round(phase), 0.06)
    tooth = (
        np.array([0.93, 0.90, 0.80])
        * (1.0 - 0.35 * gaps)[..., None]
        * (1 + 0.02 * tooth_noise[:, teeth_cols])[..., None]
    )
    gum = ((v > 0.16) & (v < 0.2)) | (v < 0.02)
    tooth[np.broadcast_to(gum, tooth.shape[:2])] = np.array([0.75, 0.42, 0.42])
    image[:, teeth_cols] = tooth
    # mouth interior: dark cavity, tongue at the bottom (azimuth ~ 3/2 pi)
    interior_cols, u = columns(0.6, 1.0)
    bag_azimuth = (u - 0.62) / 0.36 * 2 * np.pi
    bag_polar = (v - 0.02) / 0.16 * np.pi
    tongue = _smoothstep(-0.2, -0.5, np.sin(bag_azimuth))[..., None]
    cavity = np.array([0.30, 0.08, 0.09]) * (1.0 - 0.5 * _smoothstep(0.6, 1.6, bag_polar))[..., None]
    image[:, interior_cols] = cavity * (1 - tongue) + np.array([0.70, 0.36, 0.38]) * tongue


def build_texture(
    geometry: HeadGeometry, seed: int, size: int = TEXTURE_SIZE
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(texture [size, size, 3] uint8, wrinkle_maps {name: [size, size] float32})``."""
    rng = np.random.default_rng([seed, 7])
    image = np.zeros((size, size, 3), np.float32)
    positions, rows = texel_positions(geometry, size)
    albedo, wrinkle_rows = paint_head(positions, rng)
    image[rows] = albedo
    paint_atlas_strip(image, rng)
    wrinkles = {}
    for name, value in wrinkle_rows.items():
        full = np.zeros((size, size), np.float32)
        full[rows] = value
        wrinkles[name] = full
    # sRGB-ish gamma is already baked into the chosen colours; quantize once
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8), wrinkles
