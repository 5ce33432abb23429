"""Ray-cast rendering of a FLAME-format head (open3d ``RaycastingScene``) into the rig's cameras.

Per frame, the head posed at each camera's own sample time is placed in one scene (the copies
are translated far apart and each camera's rays are translated with its copy), so one BVH build
and one ``cast_rays`` call serve every camera. Rays go through the centres of the raw, distorted
pixels (:meth:`SynthCamera.pixel_rays`), only inside the head's projected bounding box; the rest
of the frame is the camera's background plate.

Shading (linear RGB): albedo from the head's UV texture (darkened by the expression's wrinkle
maps, tinted per subject) times a studio light rig (key, fill, rim, sky ambient) with wrapped
Lambert diffuse and Blinn-Phong specular whose strength depends on the region (skin, lips, eyes,
teeth). Hits on back faces (seen through the open mouth) are shaded as the dark mouth cavity.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import open3d as o3d
import scipy.sparse

from capture_tools.synth.rig import SynthCamera
from capture_tools.synth.scene import remap_points
from tracking.head_model import REGIONS, HeadModel

_COPY_SPACING_M = 8.0

# (direction the light comes from (world), linear RGB intensity)
_LIGHTS = (
    (np.array([-0.45, 0.45, 0.77]), np.array([1.00, 0.97, 0.92])),  # key, upper left front
    (np.array([0.65, 0.1, 0.75]), np.array([0.42, 0.45, 0.5])),  # fill, right
    (np.array([0.0, 0.5, -0.85]), np.array([0.35, 0.35, 0.38])),  # rim, behind
)
_AMBIENT_SKY = np.array([0.16, 0.17, 0.19], np.float32)
_AMBIENT_GROUND = np.array([0.07, 0.06, 0.055], np.float32)

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


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalized face normals [F, 3] (length = twice the area)."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    return np.cross(v1 - v0, v2 - v0)


def vertex_face_incidence(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """[V, F] 0/1 matrix: vertex v is a corner of face f."""
    rows = faces.reshape(-1)
    cols = np.repeat(np.arange(len(faces)), 3)
    return scipy.sparse.csr_matrix(
        (np.ones(len(rows), np.float32), (rows, cols)), shape=(num_vertices, len(faces))
    )


class HeadRenderer:
    """Renders posed vertices of one head model into a set of camera views."""

    def __init__(self, head: HeadModel, views: list[CameraView], tint: np.ndarray | None = None):
        self.head = head
        self.views = views
        self.faces = np.ascontiguousarray(head.faces, np.int64)
        if head.texture is not None and head.uvs is not None and head.uv_faces is not None:
            texture = (head.texture.astype(np.float32) / 255.0) ** 2.2
            self.corner_uvs = head.uvs[head.uv_faces].astype(np.float32)  # [F, 3, 2]
        else:
            texture = np.full((4, 4, 3), 0.45, np.float32)
            self.corner_uvs = np.zeros((len(self.faces), 3, 2), np.float32)
        if tint is not None:
            texture = texture * np.asarray(tint, np.float32)[None, None]
        self.texture = np.ascontiguousarray(texture, np.float32)
        self.wrinkles = [
            (index, np.ascontiguousarray(head.wrinkle_maps[name], np.float32))
            for index, name in enumerate(head.expr_names)
            if name in head.wrinkle_maps
        ]
        region_of_face = np.zeros(len(self.faces), np.int64)
        if head.vertex_regions is not None:
            region_of_face = np.asarray(head.vertex_regions, np.int64)[self.faces].max(axis=1)
        self.incidence = vertex_face_incidence(self.faces, head.num_vertices)
        # Back-facing skin/hair triangles of the back half of the head (rest pose z < 0, behind the
        # ears) are never the first hit, whatever the camera: cull them per view to shrink the per-frame
        # BVH. The front half keeps both sides: rays entering the open mouth may meet the cheeks' insides.
        behind = head.v_template[self.faces].mean(axis=1)[:, 2] < 0.0
        self.cullable = behind & np.isin(region_of_face, [REGIONS["skin"], REGIONS["scalp_hair"]])
        codes = max(REGIONS.values()) + 1
        spec = np.zeros((codes, 2), np.float32)
        spec[:] = _SPECULAR["skin"]
        for name, code in REGIONS.items():
            spec[code] = _SPECULAR.get(name, _SPECULAR["skin"])
        self.face_specular = spec[region_of_face]  # [F, 2]

    def _sample_texture(self, uv: np.ndarray) -> np.ndarray:
        rows, cols = self.texture.shape[:2]
        map_x = (uv[:, 0] * cols - 0.5).astype(np.float32)
        map_y = ((1.0 - uv[:, 1]) * rows - 0.5).astype(np.float32)
        albedo = remap_points(self.texture, map_x, map_y)
        if self.wrinkles:
            return albedo, (map_x, map_y)
        return albedo, None

    def render(
        self, vertices: np.ndarray, expr: np.ndarray | None = None, nthreads: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Linear RGB images [C, H, W, 3] and head masks [C, H, W] for posed ``vertices`` [C, V, 3]
        (copy c seen by view c; ``expr`` [C, E] drives the wrinkle maps)."""
        num_views = len(self.views)
        scene = o3d.t.geometry.RaycastingScene()
        shifts = np.zeros((num_views, 3), np.float32)
        shifts[:, 0] = _COPY_SPACING_M * np.arange(num_views)
        ray_chunks, boxes, kept_faces, normals = [], [], [], []
        for c, view in enumerate(self.views):
            normals_f = face_normals(vertices[c], self.faces)
            towards = np.einsum("fd,fd->f", normals_f, view.origin[None] - vertices[c][self.faces[:, 0]])
            keep = np.nonzero(~self.cullable | (towards > 0))[0]
            kept_faces.append(keep)
            normals.append(normals_f)
            scene.add_triangles(
                o3d.core.Tensor(np.ascontiguousarray(vertices[c] + shifts[c], np.float32)),
                o3d.core.Tensor(self.faces[keep].astype(np.uint32)),
            )
            box = self._bbox(view.camera, vertices[c])
            boxes.append(box)
            x0, y0, x1, y1 = box
            dirs = view.directions[y0:y1, x0:x1].reshape(-1, 3)
            origins = np.broadcast_to((view.origin + shifts[c]).astype(np.float32), dirs.shape)
            ray_chunks.append(np.concatenate([origins, dirs], axis=1))
        rays = np.concatenate(ray_chunks, axis=0).astype(np.float32)
        result = scene.cast_rays(o3d.core.Tensor(rays), nthreads=nthreads)
        prim = result["primitive_ids"].numpy().astype(np.int64)
        bary = result["primitive_uvs"].numpy()
        hit = prim != o3d.t.geometry.RaycastingScene.INVALID_ID

        images = np.stack([view.plate for view in self.views]).copy()
        masks = np.zeros(images.shape[:3], bool)
        start = 0
        for c in range(num_views):
            x0, y0, x1, y1 = boxes[c]
            count = (y1 - y0) * (x1 - x0)
            sel = slice(start, start + count)
            start += count
            chunk_hit = hit[sel]
            if not np.any(chunk_hit):
                continue
            faces_hit = kept_faces[c][prim[sel][chunk_hit]]
            colour = self._shade(
                vertices[c],
                normals[c],
                faces_hit,
                bary[sel][chunk_hit],
                rays[sel][chunk_hit, 3:],
                None if expr is None else expr[c],
            )
            region = np.zeros(count, bool)
            region[chunk_hit] = True
            region = region.reshape(y1 - y0, x1 - x0)
            block = images[c, y0:y1, x0:x1]
            block[region] = colour
            masks[c, y0:y1, x0:x1] = region
        return images, masks

    def _bbox(self, camera: SynthCamera, vertices: np.ndarray) -> tuple[int, int, int, int]:
        """Pixel box (x0, y0, x1, y1) around the projected head (with distortion), padded."""
        # subsample the vertices: the box only needs to be conservative after padding
        pixels = camera.project(vertices[:: max(1, len(vertices) // 2000)])
        pad = 0.04 * max(camera.width, camera.height) + 2
        x0 = int(np.clip(np.floor(pixels[:, 0].min() - pad), 0, camera.width))
        x1 = int(np.clip(np.ceil(pixels[:, 0].max() + pad), 0, camera.width))
        y0 = int(np.clip(np.floor(pixels[:, 1].min() - pad), 0, camera.height))
        y1 = int(np.clip(np.ceil(pixels[:, 1].max() + pad), 0, camera.height))
        return x0, y0, max(x0, x1), max(y0, y1)

    def _shade(
        self,
        vertices: np.ndarray,
        normals_f: np.ndarray,
        faces_hit: np.ndarray,
        bary: np.ndarray,
        directions: np.ndarray,
        expr: np.ndarray | None,
    ) -> np.ndarray:
        weights = np.concatenate([1.0 - bary.sum(1, keepdims=True), bary], axis=1)  # (w0, w1, w2)
        corner_ids = self.faces[faces_hit]  # [N, 3]
        normals_v = self.incidence @ normals_f  # area-weighted vertex normals
        normals_v /= np.linalg.norm(normals_v, axis=1, keepdims=True) + 1e-12
        normal = np.einsum("nk,nkd->nd", weights, normals_v[corner_ids])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
        view_dir = -directions / (np.linalg.norm(directions, axis=1, keepdims=True) + 1e-12)
        uv = np.einsum("nk,nkd->nd", weights, self.corner_uvs[faces_hit])
        albedo, maps = self._sample_texture(uv)
        if maps is not None and expr is not None:
            darkening = np.zeros(len(uv), np.float32)
            for index, wrinkle in self.wrinkles:
                if index < len(expr) and expr[index] > 0:
                    sampled = remap_points(wrinkle, maps[0], maps[1])
                    darkening += float(expr[index]) * sampled
            albedo = albedo * (1.0 - np.clip(darkening, 0.0, 0.9))[:, None]
        back = np.einsum("nd,nd->n", normal, view_dir) < 0
        normal[back] = -normal[back]
        up = normal[:, 1:2]
        colour = albedo * (_AMBIENT_SKY * (0.5 + 0.5 * up) + _AMBIENT_GROUND * (0.5 - 0.5 * up))
        spec_strength, shininess = self.face_specular[faces_hit, 0:1], self.face_specular[faces_hit, 1:2]
        for light_dir, intensity in _LIGHTS:
            direction = (light_dir / np.linalg.norm(light_dir)).astype(np.float32)
            lambert = np.clip((normal @ direction + 0.25) / 1.25, 0.0, None)[:, None]  # wrapped diffuse
            half = direction[None] + view_dir
            half /= np.linalg.norm(half, axis=1, keepdims=True) + 1e-12
            specular = (
                spec_strength * np.clip(np.einsum("nd,nd->n", normal, half), 0, None)[:, None] ** shininess
            )
            colour += intensity.astype(np.float32) * (albedo * lambert + specular * (lambert > 0))
        colour[back] = 0.3 * albedo[back] * _AMBIENT_SKY / _AMBIENT_SKY.mean()  # inside: unlit
        return colour.astype(np.float32)


_LUT_SIZE = 4096
_LINEAR = (np.arange(_LUT_SIZE, dtype=np.float64) + 0.5) / _LUT_SIZE
_SRGB_LUT = 255.0 * np.where(_LINEAR <= 0.0031308, 12.92 * _LINEAR, 1.055 * _LINEAR ** (1 / 2.4) - 0.055)
_SRGB_LUT = _SRGB_LUT.astype(np.float32)
_SHOT_LUT = np.sqrt(_LINEAR * 0.0004).astype(np.float32) * 255.0 * np.gradient(_SRGB_LUT / 255.0, _LINEAR)


def camera_response(linear: np.ndarray, camera: SynthCamera, rng: np.random.Generator | None) -> np.ndarray:
    """Sensor + ISP: exposure, white balance, sRGB encoding (4096-entry table), shot noise (carried
    through the encoding's slope) and read noise, 8-bit [..., 3]. ``rng=None``: noise-free."""
    exposed = linear * (camera.exposure * camera.white_balance.astype(np.float32))
    index = np.clip((exposed * _LUT_SIZE).astype(np.int32), 0, _LUT_SIZE - 1)
    encoded = _SRGB_LUT[index]
    if rng is not None:
        sigma = np.sqrt(_SHOT_LUT[index] ** 2 + np.float32(camera.noise_std) ** 2)
        encoded += sigma * rng.standard_normal(encoded.shape, dtype=np.float32)
    return np.clip(encoded + 0.5, 0, 255).astype(np.uint8)
