"""Rendering of a FLAME-format head into the rig's cameras: first hit of each raw pixel's ray, then shading.

Every camera samples the animation at its own frame time, so each take frame poses the head once per
camera (``vertices [C, V, 3]``). The image of camera ``c`` is the first surface hit of the rays
through the centres of its raw, distorted pixels (:meth:`SynthCamera.pixel_rays`); pixels without a
hit show the camera's background plate. Two implementations of the first hit give the same
:class:`PixelHits`:

- :func:`raycast_hits`, the reference: open3d ``RaycastingScene`` over the C posed copies (translated
  far apart, each camera's rays with its copy). Its BVH build (~1 us per triangle, ~24k triangles per
  copy) dominates a frame, so it is only used to check the other one.
- :func:`rasterize_hits`, used for the session: a z-buffer over each camera's *image plane* (pinhole,
  undistorted coordinates x/z, y/z), sampled at exactly the rays' points. A triangle stays a
  triangle on that plane, and the ray through a pixel hits the triangle iff the pixel's plane
  point lies inside it, at the depth given by interpolating 1/z; candidate pixels come from the
  triangle's bounding box in raw (distorted) pixels. So it finds the same hits as the ray caster up
  to float rounding at shared edges, with barycentrics made perspective-correct (= the ray's).

Both hits and shading also exist as a compiled kernel (``csrc/synth_render.cpp``, built on first use by
:mod:`capture_tools.synth._kernel`) doing the same float32 operations pixel by pixel; the numpy code
here is its reference and the fallback without a C++ compiler (``HeadRenderer(backend=...)``).

Shading (linear RGB): albedo from the head's UV texture (darkened by the expression's wrinkle
maps, tinted per subject) times a studio light rig (key, fill, rim, sky ambient) with wrapped
Lambert diffuse and Blinn-Phong specular whose strength depends on the region (skin, lips, eyes,
teeth). Hits on back faces (seen through the open mouth) are shaded as the dark mouth cavity.
All cameras of a frame are shaded in one vectorized float32 pass.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import scipy.sparse

from capture_tools.synth._kernel import load_kernel, pointer
from capture_tools.synth.rig import SynthCamera
from capture_tools.synth.scene import remap_points
from tracking.head_model import REGIONS, HeadModel

_COPY_SPACING_M = 8.0
# distorted edges bow by < 0.01 px over a triangle's extent at this lens strength; the pad keeps
# every pixel whose ray can hit the triangle among its candidates
_BBOX_PAD_PX = 0.05
_LARGE_BOX_PX = 48

# (direction the light comes from (world), linear RGB intensity)
_LIGHTS = (
    (np.array([-0.45, 0.45, 0.77]), np.array([1.00, 0.97, 0.92])),  # key, upper left front
    (np.array([0.65, 0.1, 0.75]), np.array([0.42, 0.45, 0.5])),  # fill, right
    (np.array([0.0, 0.5, -0.85]), np.array([0.35, 0.35, 0.38])),  # rim, behind
)
_LIGHT_DIRECTIONS = np.stack([d / np.linalg.norm(d) for d, _ in _LIGHTS]).astype(np.float32)  # [3 lights, 3]
_LIGHT_INTENSITIES = np.stack([i for _, i in _LIGHTS]).astype(np.float32)  # [3 lights, RGB]
_AMBIENT_SKY = np.array([0.16, 0.17, 0.19], np.float32)
_AMBIENT_GROUND = np.array([0.07, 0.06, 0.055], np.float32)
# as HeadRenderer._shade computes them, for the kernel
_AMBIENT_BASE = 0.5 * (_AMBIENT_SKY + _AMBIENT_GROUND)
_AMBIENT_SLOPE = 0.5 * (_AMBIENT_SKY - _AMBIENT_GROUND)
_CAVITY_TINT = _AMBIENT_SKY / _AMBIENT_SKY.mean()

# region -> (specular strength, shininess)
_SPECULAR = {
    "skin": (0.05, 20.0),
    "lips": (0.12, 30.0),
    "mouth_interior": (0.05, 30.0),
    "teeth": (0.25, 40.0),
    "eyes": (0.6, 120.0),
    "eyebrows": (0.01, 8.0),
    "scalp_hair": (0.06, 12.0),
    "neck": (0.04, 16.0),
}


@dataclasses.dataclass
class CameraView:
    camera: SynthCamera
    origin: np.ndarray  # [3]
    directions: np.ndarray  # [H, W, 3] float32
    plate: np.ndarray  # [H, W, 3] float32 linear RGB (studio, before camera response)


@dataclasses.dataclass(frozen=True)
class PixelHits:
    """First surface hit of every pixel ray that hits the head, over C views of H x W pixels."""

    pixel: np.ndarray  # [N] int64 flat index into [C, H, W], increasing
    face: np.ndarray  # [N] int64 triangle index
    bary: np.ndarray  # [N, 2] float32 (u, v): hit = (1 - u - v) corner0 + u corner1 + v corner2


def face_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalized face normals [3, ..., F] (length = twice the area) of coordinate-major points
    [3, ..., V]."""
    v0, v1, v2 = (np.take(points, faces[:, k], axis=-1) for k in range(3))
    e1, e2 = v1 - v0, v2 - v0
    return np.stack(
        [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]]
    )


def vertex_face_incidence(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """[V, F] 0/1 matrix: vertex v is a corner of face f."""
    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return scipy.sparse.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(num_vertices, len(faces))
    )


def raycast_hits(
    views: list[CameraView],
    vertices: np.ndarray,  # [C, V, 3] world, copy c seen by view c
    faces: np.ndarray,  # [F, 3]
    face_subset: list[np.ndarray] | None = None,  # per view: the faces that can be hit (default all)
    nthreads: int = 0,
) -> PixelHits:
    """Reference first hits: open3d ``RaycastingScene.cast_rays`` of every pixel ray of every view."""
    import open3d as o3d

    num_views = len(views)
    height, width = views[0].directions.shape[:2]
    scene = o3d.t.geometry.RaycastingScene()
    rays = np.zeros((num_views, height * width, 6), np.float32)
    subsets = face_subset or [np.arange(len(faces))] * num_views
    for c, view in enumerate(views):
        shift = np.array([_COPY_SPACING_M * c, 0.0, 0.0], np.float32)
        scene.add_triangles(
            o3d.core.Tensor(np.ascontiguousarray(vertices[c] + shift, np.float32)),
            o3d.core.Tensor(np.ascontiguousarray(faces[subsets[c]], np.uint32)),
        )
        rays[c, :, :3] = view.origin + shift
        rays[c, :, 3:] = view.directions.reshape(-1, 3)
    result = scene.cast_rays(o3d.core.Tensor(rays.reshape(-1, 6)), nthreads=nthreads)
    geometry = result["geometry_ids"].numpy().astype(np.int64)
    primitive = result["primitive_ids"].numpy().astype(np.int64)
    pixel = np.flatnonzero(primitive != o3d.t.geometry.RaycastingScene.INVALID_ID)
    face = np.array([subsets[c][p] for c, p in zip(geometry[pixel], primitive[pixel], strict=True)], np.int64)
    return PixelHits(pixel, face.reshape(-1), result["primitive_uvs"].numpy()[pixel].astype(np.float32))


@dataclasses.dataclass(frozen=True)
class _RasterViews:
    """Per-view constants of :func:`rasterize_hits`, stacked over the C views (all H x W)."""

    rotation: np.ndarray  # [C, 3, 3] world_to_cam rotation
    translation: np.ndarray  # [C, 3]
    focal: np.ndarray  # [C, 2] fx, fy
    centre: np.ndarray  # [C, 2] cx, cy
    radial: np.ndarray  # [C, 2] k1, k2
    plane: np.ndarray  # [2, C*H*W] image-plane x/z, y/z of each raw pixel's ray
    height: int
    width: int

    @classmethod
    def build(cls, views: list[CameraView]) -> _RasterViews:
        cameras = [view.camera for view in views]
        height, width = views[0].directions.shape[:2]
        if any(view.directions.shape[:2] != (height, width) for view in views):
            raise ValueError("rasterize_hits needs views of one image size")
        if any(np.any(camera.dist[2:] != 0) or camera.K[0, 1] != 0 for camera in cameras):
            raise ValueError("rasterize_hits models radial (k1, k2) distortion and zero skew only")
        rotation = np.stack([camera.world_to_cam[:3, :3] for camera in cameras])
        directions = np.stack([view.directions.reshape(-1, 3) for view in views]).astype(np.float64)
        in_camera = np.einsum("cij,cnj->cni", rotation, directions)
        return cls(
            rotation=rotation.astype(np.float32),
            translation=np.stack([camera.world_to_cam[:3, 3] for camera in cameras]).astype(np.float32),
            focal=np.stack([camera.K[[0, 1], [0, 1]] for camera in cameras]).astype(np.float32),
            centre=np.stack([camera.K[[0, 1], [2, 2]] for camera in cameras]).astype(np.float32),
            radial=np.stack([camera.dist[:2] for camera in cameras]).astype(np.float32),
            plane=(in_camera[..., :2] / in_camera[..., 2:]).reshape(-1, 2).T.astype(np.float32).copy(),
            height=height,
            width=width,
        )


def rasterize_hits(
    raster: _RasterViews,
    points: np.ndarray,  # [3, C, V] world, coordinate-major; copy c seen by view c
    faces: np.ndarray,  # [F, 3]
    view_index: np.ndarray,  # [M] the (view, face) pairs to draw: view of each
    face_index: np.ndarray,  # [M] and its face
) -> PixelHits:
    """First hits of every pixel ray by z-buffering on each view's image plane (module docstring)."""
    num_views, num_vertices = points.shape[1:]
    height, width = raster.height, raster.width
    # camera-frame coordinates, image-plane coordinates and inverse depth; [C, V] each
    rotation, translation = raster.rotation, raster.translation
    in_camera = [
        rotation[:, i, 0:1] * points[0] + rotation[:, i, 1:2] * points[1] + rotation[:, i, 2:3] * points[2]
        + translation[:, i : i + 1]
        for i in range(3)
    ]  # fmt: skip
    inv_z = 1.0 / in_camera[2]
    plane_x, plane_y = in_camera[0] * inv_z, in_camera[1] * inv_z
    r2 = plane_x * plane_x + plane_y * plane_y
    lens = 1.0 + r2 * (raster.radial[:, :1] + r2 * raster.radial[:, 1:])
    pixel_u = (raster.focal[:, :1] * lens * plane_x + raster.centre[:, :1]).reshape(-1)
    pixel_v = (raster.focal[:, 1:] * lens * plane_y + raster.centre[:, 1:]).reshape(-1)
    plane_x, plane_y, inv_z = plane_x.reshape(-1), plane_y.reshape(-1), inv_z.reshape(-1)

    # candidate pixels: integer pixel centres inside the triangle's (padded) raw-pixel bounding box;
    # per-triangle arrays are [3 corners, M] so that each corner is a contiguous row
    corners = np.take(faces.T.astype(np.int32), face_index, axis=1)
    corners += (view_index * num_vertices).astype(np.int32)
    corner_u, corner_v = np.take(pixel_u, corners), np.take(pixel_v, corners)
    x0 = np.ceil(np.minimum(np.minimum(corner_u[0], corner_u[1]), corner_u[2]) - _BBOX_PAD_PX)
    x1 = np.floor(np.maximum(np.maximum(corner_u[0], corner_u[1]), corner_u[2]) + _BBOX_PAD_PX)
    y0 = np.ceil(np.minimum(np.minimum(corner_v[0], corner_v[1]), corner_v[2]) - _BBOX_PAD_PX)
    y1 = np.floor(np.maximum(np.maximum(corner_v[0], corner_v[1]), corner_v[2]) + _BBOX_PAD_PX)
    x0, y0 = np.maximum(x0, 0).astype(np.int32), np.maximum(y0, 0).astype(np.int32)
    size_x = np.maximum(np.minimum(x1, width - 1).astype(np.int32) - x0 + 1, 0)
    size_y = np.maximum(np.minimum(y1, height - 1).astype(np.int32) - y0 + 1, 0)
    drawn = np.flatnonzero((size_x > 0) & (size_y > 0)).astype(np.int32)
    # first pixel of each box, flat over [C, H, W]
    base = (np.take(view_index, drawn).astype(np.int32) * height + np.take(y0, drawn)) * width
    base += np.take(x0, drawn)
    # group triangles by box size so each group's candidates are one broadcast [box pixels, n]; within
    # a group, in pixel order (the per-pixel lookups then stay in cache). Two stable 16-bit sorts.
    large = _LARGE_BOX_PX
    box_key = np.minimum(np.take(size_x, drawn), large).astype(np.uint16) * (large + 1)
    box_key += np.minimum(np.take(size_y, drawn), large).astype(np.uint16)
    order = np.argsort(
        (base >> max(0, int(num_views * height * width - 1).bit_length() - 16)).astype(np.uint16),
        kind="stable",
    )
    order = np.take(order, np.argsort(np.take(box_key, order), kind="stable"))
    drawn, box_key, base = np.take(drawn, order), np.take(box_key, order), np.take(base, order)
    corners = np.take(corners, drawn, axis=1)
    size_x, size_y = np.take(size_x, drawn), np.take(size_y, drawn)
    corner_x, corner_y, corner_iz = (
        np.take(plane_x, corners),
        np.take(plane_y, corners),
        np.take(inv_z, corners),
    )
    e1x, e1y = corner_x[1] - corner_x[0], corner_y[1] - corner_y[0]
    e2x, e2y = corner_x[2] - corner_x[0], corner_y[2] - corner_y[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_det = 1.0 / (e1x * e2y - e1y * e2x)  # edge-on triangles (inf) cover no point
    # screen-space barycentrics (b1, b2) = A (q - p0), A = inverse of [e1 e2]; 1/z is affine in them
    p0x, p0y = corner_x[0], corner_y[0]
    a11, a12, a21, a22 = e2y * inv_det, -e2x * inv_det, -e1y * inv_det, e1x * inv_det

    # one broadcast [n, box pixels] per group of equal box size; boxes of >= _LARGE_BOX_PX (never for
    # a head at rig distance) one triangle at a time
    groups = []
    bounds = np.flatnonzero(np.diff(box_key.astype(np.int32), prepend=-1, append=-1))
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        if size_x[start] >= large or size_y[start] >= large:
            groups += [(i, i + 1) for i in range(start, stop)]
        else:
            groups.append((start, stop))
    frag_tri, frag_pixel, frag_b1, frag_b2 = [], [], [], []
    for lo, hi in groups:
        box_x, box_y = int(size_x[lo]), int(size_y[lo])
        # [box pixel, triangle]: the triangle axis is the long, inner one
        offsets = np.arange(box_y, dtype=np.int32)[:, None] * width + np.arange(box_x, dtype=np.int32)
        pixel = (offsets.reshape(-1, 1) + base[None, lo:hi]).ravel()
        plane = np.take(raster.plane, pixel, axis=1).reshape(2, offsets.size, hi - lo)
        dx = plane[0] - p0x[lo:hi]
        dy = plane[1] - p0y[lo:hi]
        with np.errstate(invalid="ignore"):  # edge-on triangles (inf coefficients): NaN, never inside
            b1 = a11[lo:hi] * dx + a12[lo:hi] * dy
            b2 = a21[lo:hi] * dx + a22[lo:hi] * dy
            inside = np.flatnonzero((np.minimum(b1, b2) >= 0) & (b1 + b2 <= 1))
        frag_tri.append((inside % (hi - lo) + lo).astype(np.int32))
        frag_pixel.append(np.take(pixel, inside))
        frag_b1.append(np.take(b1, inside))
        frag_b2.append(np.take(b2, inside))
    tri = np.concatenate(frag_tri)
    pixel = np.concatenate(frag_pixel)
    b1, b2 = np.concatenate(frag_b1), np.concatenate(frag_b2)
    iz = np.take(corner_iz, tri, axis=1)  # [3, fragments]
    depth = iz[0] + b1 * (iz[1] - iz[0]) + b2 * (iz[2] - iz[0])  # 1/z at the point: larger is nearer

    # z-buffer: scatter (a duplicate index keeps its last write), then rewrite the fragments nearer
    # than what their pixel holds until none is; the buffer then holds each pixel's max 1/z
    zbuffer = np.zeros(num_views * height * width, np.float32)
    zbuffer[pixel] = depth
    pending = np.flatnonzero(depth > np.take(zbuffer, pixel))
    while len(pending):
        zbuffer[np.take(pixel, pending)] = np.take(depth, pending)
        pending = pending[np.take(depth, pending) > np.take(zbuffer, np.take(pixel, pending))]
    winners = np.flatnonzero(depth == np.take(zbuffer, pixel))
    owner = np.full(len(zbuffer), -1, np.int32)
    owner[np.take(pixel, winners)] = winners
    hit_pixel = np.flatnonzero(owner >= 0)
    fragment = np.take(owner, hit_pixel)
    # perspective-correct barycentrics: b_i / z_i renormalized (sum b_i / z_i = 1/z at the hit)
    iz_hit = np.take(zbuffer, hit_pixel)
    iz = np.take(iz, fragment, axis=1)
    u = np.take(b1, fragment) * iz[1] / iz_hit
    v = np.take(b2, fragment) * iz[2] / iz_hit
    face = np.take(face_index, np.take(drawn, np.take(tri, fragment))).astype(np.int64)
    return PixelHits(hit_pixel, face, np.stack([u, v], axis=1).astype(np.float32))


def _select_kernel(backend: str):
    """The compiled kernel for ``backend`` "auto" (if it builds) or "compiled" (required); None: numpy."""
    if backend not in ("auto", "compiled", "numpy"):
        raise ValueError(f"unknown synth render backend {backend!r} (auto, compiled or numpy)")
    kernel = None if backend == "numpy" else load_kernel()
    if kernel is None and backend == "compiled":
        raise RuntimeError("the synth C++ kernel could not be built (see the log)")
    return kernel


class HeadRenderer:
    """Renders posed vertices of one head model into a set of camera views (all of one image size).

    ``backend``: "auto" (the compiled kernel when it builds, else numpy), "compiled" or "numpy"."""

    def __init__(
        self,
        head: HeadModel,
        views: list[CameraView],
        tint: np.ndarray | None = None,
        backend: str = "auto",
    ):
        self.kernel = _select_kernel(backend)
        self._scratch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.head = head
        self.views = views
        self.faces = np.ascontiguousarray(head.faces, np.int64)
        height, width = views[0].directions.shape[:2]
        if head.texture is not None and head.uvs is not None and head.uv_faces is not None:
            texture = (head.texture.astype(np.float32) / 255.0) ** 2.2
            corner_uvs = head.uvs[head.uv_faces].astype(np.float32)  # [F, 3, 2]
        else:
            texture = np.full((4, 4, 3), 0.45, np.float32)
            corner_uvs = np.zeros((len(self.faces), 3, 2), np.float32)
        if tint is not None:
            texture = texture * np.asarray(tint, np.float32)[None, None]
        self.wrinkle_expr = [index for index, name in enumerate(head.expr_names) if name in head.wrinkle_maps]
        wrinkles = [np.asarray(head.wrinkle_maps[head.expr_names[i]], np.float32) for i in self.wrinkle_expr]
        # albedo and wrinkle maps, area-averaged down to ~2 texels per image pixel across the head (a
        # pixel covers several texels of the full map: point-sampling it would alias and miss the
        # cache), stored 8-bit (albedo sRGB-encoded, decoded after the lookup) in images of <= 4
        # channels, cv2.remap's fast path
        stack = np.concatenate([texture] + [wrinkle[..., None] for wrinkle in wrinkles], axis=2)
        scale = min(1.0, 2.0 * max(height, width) / max(stack.shape[:2]))
        size = (max(1, round(stack.shape[1] * scale)), max(1, round(stack.shape[0] * scale)))
        chunks = [stack[..., i : i + 4] for i in range(0, stack.shape[2], 4)]
        if scale < 1.0:
            chunks = [cv2.resize(chunk, size, interpolation=cv2.INTER_AREA) for chunk in chunks]
        stack = np.concatenate([chunk.reshape(size[1], size[0], -1) for chunk in chunks], axis=2)
        stack[..., :3] = np.clip(stack[..., :3], 0.0, 1.0) ** (1 / 2.2)
        stack = np.round(255.0 * np.clip(stack, 0.0, 1.0)).astype(np.uint8)
        self.texture_stack = np.ascontiguousarray(stack)  # [rows, cols, 3 + wrinkles] for the kernel
        self.texture = [np.ascontiguousarray(stack[..., i : i + 4]) for i in range(0, stack.shape[2], 4)]
        self.decode_albedo = ((np.arange(256) / 255.0) ** 2.2).astype(np.float32)
        rows, cols = size[1], size[0]
        # texture-pixel coordinates (cv2.remap convention, v up) of each face's corners [F, 3, 2]
        texels = np.stack([corner_uvs[..., 0] * cols - 0.5, (1.0 - corner_uvs[..., 1]) * rows - 0.5], axis=-1)
        region_of_face = np.zeros(len(self.faces), np.int64)
        if head.vertex_regions is not None:
            region_of_face = np.asarray(head.vertex_regions, np.int64)[self.faces].max(axis=1)
        self.incidence = vertex_face_incidence(self.faces, head.num_vertices)
        # Back-facing skin/hair triangles of the back half of the head (rest pose z < 0, behind the
        # ears) are never the first hit, whatever the camera: skip them per view. The front half keeps
        # both sides: rays entering the open mouth may meet the cheeks' insides.
        behind = head.v_template[self.faces].mean(axis=1)[:, 2] < 0.0
        self.cullable = behind & np.isin(region_of_face, [REGIONS["skin"], REGIONS["scalp_hair"]])
        self.cullable_u8 = self.cullable.astype(np.uint8)
        codes = max(REGIONS.values()) + 1
        spec = np.zeros((codes, 2), np.float32)
        spec[:] = _SPECULAR["skin"]
        for name, code in REGIONS.items():
            spec[code] = _SPECULAR.get(name, _SPECULAR["skin"])
        # per face, [8, F]: corner 0's texel, corner 1's and 2's texel minus corner 0's (the texel is
        # affine in the hit's barycentrics), specular strength and shininess
        self.face_table = np.ascontiguousarray(
            np.concatenate(
                [texels[:, 0].T, (texels[:, 1] - texels[:, 0]).T, (texels[:, 2] - texels[:, 0]).T,
                 spec[region_of_face].T]), np.float32)  # fmt: skip
        self.faces_t = np.ascontiguousarray(self.faces.T, np.int32)  # [3, F]
        self.raster = _RasterViews.build(views)
        # world directions from the pixels towards their camera, [3, C*H*W]
        self.to_camera = np.ascontiguousarray(
            -np.concatenate([view.directions.reshape(-1, 3) for view in views]).T, np.float32
        )
        self.plates = np.stack([view.plate for view in views]).astype(np.float32)
        self.origins = np.stack([view.origin for view in views]).astype(np.float32)  # [C, 3]

    def _drawn_faces(self, points: np.ndarray, normals_f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(view [M], face [M]) pairs that can be a first hit: all but the culled back-half back faces."""
        corner0 = np.take(points, self.faces[:, 0], axis=-1)  # [3, C, F]
        towards = sum(normals_f[d] * (self.origins[:, d : d + 1] - corner0[d]) for d in range(3))
        return np.nonzero(~self.cullable[None] | (towards > 0))

    def hits(self, vertices: np.ndarray, method: str = "raster") -> PixelHits:
        """First hits of every view's pixel rays on posed ``vertices`` [C, V, 3]; ``method`` "raster"
        (:func:`rasterize_hits` or the compiled kernel) or the reference "raycast" (:func:`raycast_hits`)."""
        points = np.ascontiguousarray(np.asarray(vertices, np.float32).transpose(2, 0, 1))
        if method == "raster" and self.kernel is not None:
            _, pixel_face, pixel_bary = self._kernel_hits(points)
            pixel = np.flatnonzero(pixel_face >= 0)
            return PixelHits(pixel, pixel_face[pixel].astype(np.int64), pixel_bary[pixel])
        return self._hits(points, face_normals(points, self.faces), method)

    def _kernel_hits(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Compiled :func:`rasterize_hits` of coordinate-major ``points`` [3, C, V]: face normals
        [3, C, F], each pixel's hit face [C*H*W] (-1: none) and its barycentrics [C*H*W, 2]."""
        raster = self.raster
        num_views, num_vertices = points.shape[1:]
        normals_f, pixel_face, pixel_bary = self._scratch_for(num_views)
        f32 = np.float32
        self.kernel.gs_rasterize(
            num_views, num_vertices, len(self.faces), raster.height, raster.width,
            pointer(points, f32), pointer(self.faces_t, np.int32), pointer(self.cullable_u8, np.uint8),
            pointer(self.origins, f32), pointer(raster.rotation, f32), pointer(raster.translation, f32),
            pointer(raster.focal, f32), pointer(raster.centre, f32), pointer(raster.radial, f32),
            pointer(raster.plane, f32), pointer(normals_f, f32, True), pointer(pixel_face, np.int32, True),
            pointer(pixel_bary, f32, True),
        )  # fmt: skip
        return normals_f, pixel_face, pixel_bary

    def _scratch_for(self, num_views: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(normals_f [3, C, F], pixel_face [C*H*W], pixel_bary [C*H*W, 2]) reused from frame to frame
        (fresh arrays this large cost page faults every frame)."""
        if self._scratch is None or self._scratch[0].shape[1] != num_views:
            num_pixels = num_views * self.raster.height * self.raster.width
            self._scratch = (
                np.empty((3, num_views, len(self.faces)), np.float32),
                np.empty(num_pixels, np.int32),
                np.empty((num_pixels, 2), np.float32),
            )
        return self._scratch

    def _wrinkle_weights(self, expr: np.ndarray | None) -> np.ndarray | None:
        """[C, wrinkles] clipped expression coefficients / 255 as :meth:`_shade` weighs the wrinkle maps."""
        if not self.wrinkle_expr or expr is None:
            return None
        coefficients = np.clip(np.asarray(expr, np.float32)[:, self.wrinkle_expr], 0.0, None)
        return np.ascontiguousarray(coefficients / 255.0)

    def _kernel_shade(
        self,
        normals_f: np.ndarray,  # [3, C, F]
        pixel_face: np.ndarray,  # [C*H*W]
        pixel_bary: np.ndarray,  # [C*H*W, 2]
        expr: np.ndarray | None,  # [C, E]
        images: np.ndarray,  # [C, H, W, 3] float32, shaded in place where pixel_face >= 0
    ) -> None:
        """Compiled :meth:`_shade`, writing the hit pixels' colours into ``images``."""
        num_views, num_faces = normals_f.shape[1:]
        raster, rows, cols, channels = self.raster, *self.texture_stack.shape
        weights = self._wrinkle_weights(expr)
        f32 = np.float32
        self.kernel.gs_shade(
            num_views, self.incidence.shape[0], num_faces, raster.height, raster.width,
            pointer(normals_f, f32), pointer(self.faces_t, np.int32), pointer(pixel_face, np.int32),
            pointer(pixel_bary, f32), pointer(self.to_camera, f32), pointer(self.face_table, f32),
            pointer(self.texture_stack, np.uint8), rows, cols, channels,
            pointer(self.decode_albedo, f32), pointer(weights, f32), len(_LIGHT_DIRECTIONS),
            pointer(_LIGHT_DIRECTIONS, f32), pointer(_LIGHT_INTENSITIES, f32), pointer(_AMBIENT_BASE, f32),
            pointer(_AMBIENT_SLOPE, f32), pointer(_CAVITY_TINT, f32), pointer(images, f32, True),
        )  # fmt: skip

    def _hits(self, points: np.ndarray, normals_f: np.ndarray, method: str) -> PixelHits:
        view_index, face_index = self._drawn_faces(points, normals_f)
        if method == "raycast":
            subsets = [face_index[view_index == c] for c in range(len(self.views))]
            return raycast_hits(self.views, points.transpose(1, 2, 0), self.faces, subsets)
        if method != "raster":
            raise ValueError(f"unknown hit method {method!r} (raster or raycast)")
        return rasterize_hits(self.raster, points, self.faces, view_index, face_index)

    def render(
        self,
        vertices: np.ndarray,
        expr: np.ndarray | None = None,
        method: str = "raster",
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Linear RGB images [C, H, W, 3] and head masks [C, H, W] for posed ``vertices`` [C, V, 3]
        (copy c seen by view c; ``expr`` [C, E] drives the wrinkle maps). ``out``: a float32
        [C, H, W, 3] array to write the images into (returned as the images)."""
        points = np.ascontiguousarray(np.asarray(vertices, np.float32).transpose(2, 0, 1))  # [3, C, V]
        if out is None:
            images = self.plates.copy()
        else:
            images = out
            np.copyto(images, self.plates)
        if method == "raster" and self.kernel is not None:
            normals_f, pixel_face, pixel_bary = self._kernel_hits(points)
            self._kernel_shade(normals_f, pixel_face, pixel_bary, expr, images)
            return images, (pixel_face >= 0).reshape(images.shape[:3])
        normals_f = face_normals(points, self.faces)  # [3, C, F]
        hits = self._hits(points, normals_f, method)
        masks = np.zeros(images.shape[:3], bool)
        if len(hits.pixel):
            images.reshape(-1, 3)[hits.pixel] = self._shade(normals_f, hits, expr).T
            masks.reshape(-1)[hits.pixel] = True
        return images, masks

    def _shade(self, normals_f: np.ndarray, hits: PixelHits, expr: np.ndarray | None) -> np.ndarray:
        """Linear RGB [3, N] of the hits, given the views' face normals [3, C, F] (coordinate-major
        throughout: per-component rows keep numpy's loops long)."""
        num_views, num_faces = normals_f.shape[1:]
        num_vertices = self.incidence.shape[0]
        view = (hits.pixel // (self.raster.height * self.raster.width)).astype(np.int32)
        u, v = hits.bary.T
        weights = (1.0 - u - v, u, v)
        # area-weighted vertex normals of every view at once: rows (component, view), columns vertices
        normals_v = np.asarray(self.incidence @ normals_f.reshape(3 * num_views, num_faces).T).T
        normals_v = normals_v.reshape(3, num_views * num_vertices)
        normals_v /= np.sqrt(normals_v[0] ** 2 + normals_v[1] ** 2 + normals_v[2] ** 2) + 1e-12
        corners = np.take(self.faces_t, hits.face, axis=1) + view * num_vertices  # [3, N]
        normal = sum(
            w * np.take(normals_v, corner, axis=1) for w, corner in zip(weights, corners, strict=True)
        )
        normal /= np.sqrt(normal[0] ** 2 + normal[1] ** 2 + normal[2] ** 2) + 1e-12
        to_camera = np.take(self.to_camera, hits.pixel, axis=1)  # [3, N] unit
        face_table = np.take(self.face_table, hits.face, axis=1)  # [8, N]
        texel = face_table[0:2] + u * face_table[2:4] + v * face_table[4:6]  # [2, N]
        sampled = np.concatenate(
            [remap_points(image, texel[0], texel[1]).reshape(len(u), -1) for image in self.texture], axis=1
        ).T  # [3 + wrinkles, N] uint8
        albedo = np.take(self.decode_albedo, sampled[:3])
        if self.wrinkle_expr and expr is not None:
            coefficients = np.clip(np.asarray(expr, np.float32)[:, self.wrinkle_expr], 0.0, None)  # [C, W]
            darkening = (sampled[3:] * np.take(coefficients.T / 255.0, view, axis=1)).sum(0)
            albedo = albedo * (1.0 - np.clip(darkening, 0.0, 0.9))
        facing = normal[0] * to_camera[0] + normal[1] * to_camera[1] + normal[2] * to_camera[2]
        light = _AMBIENT_BASE[:, None] + _AMBIENT_SLOPE[:, None] * normal[1]  # [3, N] sky/ground ambient
        specular = np.zeros_like(albedo)
        strength, shininess = face_table[6], face_table[7]
        for direction, intensity in zip(_LIGHT_DIRECTIONS, _LIGHT_INTENSITIES, strict=True):
            n_dot_l = direction[0] * normal[0] + direction[1] * normal[1] + direction[2] * normal[2]
            lambert = np.maximum((n_dot_l + 0.25) / 1.25, 0.0)  # wrapped diffuse
            # Blinn-Phong: n.h = (n.l + n.e) / |l + e| for unit l, e
            l_dot_e = direction[0] * to_camera[0] + direction[1] * to_camera[1] + direction[2] * to_camera[2]
            n_dot_h = np.maximum((n_dot_l + facing) / np.sqrt(np.maximum(2.0 + 2.0 * l_dot_e, 1e-12)), 1e-12)
            highlight = np.where(lambert > 0, strength * np.exp(shininess * np.log(n_dot_h)), 0.0)
            light += intensity[:, None] * lambert
            specular += intensity[:, None] * highlight
        colour = albedo * light + specular
        back = facing < 0
        colour[:, back] = 0.3 * albedo[:, back] * _CAVITY_TINT[:, None]  # inside: unlit
        return colour.astype(np.float32)


_LUT_SIZE = 4096
_LINEAR = (np.arange(_LUT_SIZE, dtype=np.float64) + 0.5) / _LUT_SIZE
_SRGB_LUT = 255.0 * np.where(_LINEAR <= 0.0031308, 12.92 * _LINEAR, 1.055 * _LINEAR ** (1 / 2.4) - 0.055)
_SRGB_LUT = _SRGB_LUT.astype(np.float32)
_SHOT_LUT = np.sqrt(_LINEAR * 0.0004).astype(np.float32) * 255.0 * np.gradient(_SRGB_LUT / 255.0, _LINEAR)


class SensorNoise:
    """Standard-normal noise images for one camera's frames: windows, at a random offset per frame, of a
    bank of ``bank_frames`` images' worth of draws. Fresh draws would cost more than the rest of the
    camera response; a window shifts the bank by a random number of samples (not a whole row or
    image), so consecutive frames' noise is not visibly the same pattern."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...], bank_frames: int = 4):
        self.rng = rng
        self.shape = shape
        self.size = int(np.prod(shape))
        self.bank = rng.standard_normal(bank_frames * self.size, dtype=np.float32)

    def draw(self) -> np.ndarray:
        offset = int(self.rng.integers(0, len(self.bank) - self.size + 1))
        return self.bank[offset : offset + self.size].reshape(self.shape)


def camera_response(
    linear: np.ndarray, camera: SynthCamera, noise: np.ndarray | None, backend: str = "auto"
) -> np.ndarray:
    """Sensor + ISP: exposure, white balance, sRGB encoding (4096-entry table), shot noise (carried
    through the encoding's slope) and read noise, 8-bit [..., 3]. ``noise``: standard-normal draws of
    the image's shape (:class:`SensorNoise`); None: noise-free. ``backend`` as :class:`HeadRenderer`'s
    (the compiled kernel takes float32 input; other dtypes use numpy)."""
    gain = (camera.exposure * camera.white_balance * _LUT_SIZE).astype(np.float32)
    sigma = None if noise is None else np.sqrt(_SHOT_LUT**2 + np.float32(camera.noise_std) ** 2)
    kernel = _select_kernel(backend) if linear.dtype == np.float32 else None
    if kernel is not None:
        linear = np.ascontiguousarray(linear)
        if noise is not None:
            noise = np.ascontiguousarray(noise, np.float32)
            if noise.shape != linear.shape:
                raise ValueError(f"noise {noise.shape} and image {linear.shape} differ in shape")
        out = np.empty(linear.shape, np.uint8)
        kernel.gs_camera_response(
            linear.size // 3, pointer(linear, np.float32), pointer(gain, np.float32),
            pointer(_SRGB_LUT, np.float32), pointer(sigma, np.float32), pointer(noise, np.float32),
            _LUT_SIZE, pointer(out, np.uint8, True),
        )  # fmt: skip
        return out
    index = np.clip(linear * gain, 0, _LUT_SIZE - 1).astype(np.int32)
    encoded = np.take(_SRGB_LUT, index)
    if noise is not None:
        encoded += np.take(sigma, index) * noise
    encoded += 0.5
    return np.clip(encoded, 0, 255, out=encoded).astype(np.uint8)
