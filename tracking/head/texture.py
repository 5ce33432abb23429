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
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from tracking.head import layout as L
from tracking.head.geometry import HeadGeometry, eye_fissure, eye_local

TEXTURE_SIZE = 1024


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma: float | tuple[float, float]
) -> np.ndarray:
    """Gaussian-filtered white noise normalised to unit standard deviation.

    Smooth fields (sigma >= 4 texels) are drawn at a quarter of the resolution and upsampled.
    """
    sigmas = np.broadcast_to(np.asarray(sigma, np.float64), (2,))
    if sigmas.min() >= 4.0 and len(shape) == 2:
        small = (shape[0] // 4 + 2, shape[1] // 4 + 2)
        field = scipy.ndimage.gaussian_filter(rng.standard_normal(small), sigmas / 4.0, mode="wrap")
        field = scipy.ndimage.zoom(field, 4.0, order=1)[: shape[0], : shape[1]]
    else:
        field = scipy.ndimage.gaussian_filter(rng.standard_normal(shape), sigmas[: len(shape)], mode="wrap")
    return (field / max(field.std(), 1e-12)).astype(np.float32)


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
    ii, jj = np.meshgrid(grid_i, grid_j, indexing="ij")
    positions = np.stack(
        [scipy.ndimage.map_coordinates(grid[..., k], [ii, jj], order=1, mode="nearest") for k in range(3)],
        axis=-1,
    )
    return positions.astype(np.float32), slice(top, bottom)


def _hairline(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hair coverage in [0, 1] from template positions (front hairline, temples, above ears, nape)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    line = np.interp(
        -z,
        [-0.09, -0.06, -0.035, -0.015, 0.01, 0.035, 0.06, 0.09, 0.13],
        [L.HAIRLINE_Y + 0.006, L.HAIRLINE_Y - 0.002, 0.062, 0.048, 0.038, 0.005, -0.045, -0.07, -0.075],
    )
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


def _brow_mask(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    out = np.zeros(x.shape)
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
    strands = 0.65 + 0.35 * _noise(rng, x.shape, (0.6, 2.5))
    return np.clip(out * strands, 0.0, 1.0) * _smoothstep(0.03, 0.06, z)


def _line(d: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-((d / width) ** 2))


def paint_head(p: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Albedo [h, w, 3] in [0, 1] and wrinkle maps for head texels with template positions ``p``."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    shape = x.shape
    front = _smoothstep(0.03, 0.07, z)
    skin = np.array([0.86, 0.66, 0.54]) * (1.0 + 0.02 * rng.standard_normal(3))
    colour = np.broadcast_to(skin, shape + (3,)).copy()
    low = _noise(rng, shape, 18.0)
    mid = _noise(rng, shape, 4.0)
    pores = _noise(rng, shape, 0.7)
    colour *= (1.0 + 0.035 * low + 0.02 * mid + 0.025 * pores)[..., None]
    redness = (
        sum(np.exp(-(((x - s * 0.042) / 0.018) ** 2 + ((y + 0.018) / 0.016) ** 2)) for s in (-1.0, 1.0))
        * front
        + 0.8 * np.exp(-((x / 0.012) ** 2 + ((y - L.NOSE_TIP_Y) / 0.012) ** 2)) * front
        + 0.6 * np.exp(-(((np.abs(x) - 0.075) / 0.012) ** 2 + ((y - 0.004) / 0.025) ** 2))
    )
    colour += (0.05 * redness)[..., None] * np.array([1.0, -0.5, -0.4])
    hair = _hairline(p, rng)
    strands = 1.0 + 0.25 * _noise(rng, shape, (0.5, 3.0)) + 0.1 * low
    face_rows, face_cols = _face_window(p)
    face_colour, face_hair = colour[face_rows, face_cols], hair[face_rows, face_cols]
    face_wrinkles = _paint_face(
        p[face_rows, face_cols], face_colour, face_hair, mid[face_rows, face_cols], rng
    )
    colour[face_rows, face_cols] = face_colour
    hair_colour = np.array([0.20, 0.13, 0.09])[None, None, :] * strands[..., None]
    colour = colour * (1.0 - hair[..., None]) + hair_colour * hair[..., None]
    wrinkles = {}
    for name, value in face_wrinkles.items():
        full = np.zeros(shape, np.float32)
        full[face_rows, face_cols] = value
        wrinkles[name] = full
    return np.clip(colour, 0.0, 1.0), wrinkles


def _face_window(p: np.ndarray) -> tuple[slice, slice]:
    """Bounding rows/columns of the texels on the front of the face (where features are painted)."""
    front = (p[..., 2] > 0.03) & (np.abs(p[..., 0]) < 0.065) & (p[..., 1] > -0.075) & (p[..., 1] < 0.075)
    rows = np.nonzero(front.any(axis=1))[0]
    cols = np.nonzero(front.any(axis=0))[0]
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _paint_face(
    p: np.ndarray, colour: np.ndarray, hair: np.ndarray, mid: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Paint eyes, nose, lips and brows into ``colour`` (in place); return the wrinkle maps."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    shape = x.shape
    front = _smoothstep(0.03, 0.07, z)
    # shading hints that survive any lighting: lid creases, under-eye, nostrils, mouth line
    for side in (-1.0, 1.0):
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
        colour[tucked & (front > 0.5)] *= np.array([0.92, 0.82, 0.8])
        under = _line(v - lower + 0.005, 0.003) * (np.abs(u) < 0.014)
        colour *= (1.0 - 0.08 * under * front)[..., None]
        nostril = ((x - side * 0.0058) / 0.0032) ** 2 + ((y - (L.SUBNASALE_Y + 0.0028)) / 0.0019) ** 2
        colour *= (1.0 - 0.75 * (1.0 - _smoothstep(0.6, 1.0, nostril)) * (z > 0.09))[..., None]
    lips = _lip_mask(p)
    lip_colour = np.array([0.74, 0.38, 0.38]) * (1.0 + 0.04 * mid)[..., None]
    colour[:] = colour * (1.0 - lips[..., None]) + lip_colour * lips[..., None]
    mouth_line = _line(
        y - np.interp(x, [-L.MOUTH_HALF_WIDTH, 0.0, L.MOUTH_HALF_WIDTH], [L.MOUTH_Y, L.MOUTH_Y, L.MOUTH_Y]),
        0.0007,
    ) * (np.abs(x) < L.MOUTH_HALF_WIDTH)
    colour *= (1.0 - 0.55 * mouth_line * front)[..., None]
    brows = _brow_mask(p, rng)
    colour[:] = colour * (1.0 - 0.88 * brows[..., None]) + 0.88 * brows[..., None] * np.array(
        [0.22, 0.15, 0.11]
    )

    wrinkles: dict[str, np.ndarray] = {}
    forehead = np.zeros(shape)
    for k in range(4):
        centre = L.BROW_Y + 0.014 + 0.0085 * k + 0.005 * (x / 0.05) ** 2
        forehead += (
            _line(y - centre, 0.0008) * (1.0 - _smoothstep(0.03, 0.05, np.abs(x))) * (0.8 + 0.2 * (k % 2))
        )
    wrinkles["brow_raise"] = 0.4 * forehead * front * (1.0 - hair)
    for name, side in (("smile_left", 1.0), ("smile_right", -1.0)):
        # nasolabial fold: from above the ala, around the mouth corner
        t = np.clip((L.SUBNASALE_Y + 0.006 - y) / 0.04, 0.0, 1.0)
        fold_x = side * (0.0175 + 0.0145 * np.sin(t * np.pi * 0.62))
        on_fold = (y < L.SUBNASALE_Y + 0.008) & (y > L.MOUTH_Y - 0.014)
        wrinkles[name] = 0.35 * _line(x - fold_x, 0.0016) * on_fold * front
    glabella = sum(_line(x - s * 0.0045, 0.0005) for s in (-1.0, 1.0)) * (np.abs(y - 0.037) < 0.008)
    wrinkles["brow_furrow"] = 0.5 * glabella * front
    bunny = sum(_line((x - s * 0.009) - s * 0.4 * (y - 0.02), 0.0006) for s in (-1.0, 1.0))
    wrinkles["nose_wrinkle"] = 0.4 * bunny * (np.abs(y - 0.018) < 0.006) * front
    crows = np.zeros(shape)
    for side in (-1.0, 1.0):
        u, v = eye_local(p, side)
        for angle in (-0.45, 0.0, 0.45):
            direction = np.array([np.cos(angle), np.sin(angle)])
            du, dv = u - L.EYE_OPEN_OUTER - 0.002, v
            along = du * direction[0] + dv * direction[1]
            across = -du * direction[1] + dv * direction[0]
            crows += _line(across, 0.0005) * (along > 0) * (along < 0.012)
    wrinkles["cheek_squint"] = 0.4 * crows * front
    return {name: np.clip(value, 0.0, 1.0).astype(np.float32) for name, value in wrinkles.items()}


def paint_atlas_strip(image: np.ndarray, rng: np.random.Generator) -> None:
    """Eyeballs, teeth and mouth interior in the bottom strip of ``image`` [S, S, 3] (in place)."""
    size = image.shape[0]
    first_row = int(np.floor(0.8 * size))
    image = image[first_row:]  # a view: writes land in the atlas
    py, px = np.mgrid[first_row:size, 0:size] + 0.5
    u, v = px / size, 1.0 - py / size
    strip = v < 0.2
    # eyeball disc
    ru = u - L.EYE_UV_CENTRE[0]
    rv = v - L.EYE_UV_CENTRE[1]
    radius = np.sqrt(ru * ru + rv * rv)
    disc = strip & (radius < L.EYE_UV_RADIUS + 0.004)
    polar = L.eye_polar_from_uv_radius(np.minimum(radius, L.EYE_UV_RADIUS))
    azimuth = np.arctan2(rv, ru)
    sclera = np.array([0.93, 0.90, 0.87]) - 0.06 * _smoothstep(0.6, 1.4, polar)[..., None] * np.array(
        [0, 1, 1]
    )
    iris_base = np.array([0.32, 0.24, 0.16]) * (1.0 + 0.18 * rng.standard_normal())
    streaks = 1.0 + 0.25 * np.sin(azimuth * 37.0 + 3.0 * np.sin(azimuth * 5.0)) * np.sin(polar * 40.0)
    iris = iris_base * streaks[..., None] * (1.0 + 0.6 * _smoothstep(0.30, 0.16, polar))[..., None]
    colour = sclera * np.ones_like(image)
    iris_w = 1.0 - _smoothstep(0.47, 0.52, polar)
    colour = colour * (1 - iris_w[..., None]) + iris * iris_w[..., None]
    limbus = _line(polar - 0.49, 0.03)
    colour *= (1.0 - 0.6 * limbus)[..., None]
    pupil = 1.0 - _smoothstep(0.17, 0.20, polar)
    colour = colour * (1 - pupil[..., None]) + np.array([0.03, 0.03, 0.03]) * pupil[..., None]
    highlight = np.exp(-(((ru - 0.012) ** 2 + (rv - 0.014) ** 2) / 0.00002))
    colour = np.clip(colour + 0.5 * highlight[..., None], 0, 1)
    image[disc] = colour[disc]
    # teeth
    teeth = strip & (u >= 0.21) & (u <= 0.59)
    phase = (u - 0.22) / 0.36 * 14.0
    gaps = _line(phase - np.round(phase), 0.06)
    tooth = (
        np.array([0.93, 0.90, 0.80])
        * (1.0 - 0.35 * gaps)[..., None]
        * (1 + 0.02 * rng.standard_normal(u.shape))[..., None]
    )
    gum_upper = (v > 0.16) & (v < 0.2)
    gum_lower = v < 0.02
    tooth[gum_upper | gum_lower] = np.array([0.75, 0.42, 0.42])
    image[teeth] = tooth[teeth]
    # mouth interior: dark cavity, tongue at the bottom (azimuth ~ 3/2 pi)
    interior = strip & (u >= 0.6)
    bag_azimuth = (u - 0.62) / 0.36 * 2 * np.pi
    bag_polar = (v - 0.02) / 0.16 * np.pi
    tongue = _smoothstep(-0.2, -0.5, np.sin(bag_azimuth))
    cavity = np.array([0.30, 0.08, 0.09]) * (1.0 - 0.5 * _smoothstep(0.6, 1.6, bag_polar))[..., None]
    tongue_colour = np.array([0.70, 0.36, 0.38])
    mouth = cavity * (1 - tongue[..., None]) + tongue_colour * tongue[..., None]
    image[interior] = mouth[interior]


def build_texture(
    geometry: HeadGeometry, seed: int, size: int = TEXTURE_SIZE
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(texture [size, size, 3] uint8, wrinkle_maps {name: [size, size] float32})``."""
    rng = np.random.default_rng([seed, 7])
    image = np.zeros((size, size, 3))
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
