"""A small textured ray-casting renderer (open3d ``RaycastingScene``) for previews and checks.

Cameras follow the project convention (OpenCV: x right, y down, z forward; ``K`` in pixels,
``world_to_cam`` 4x4). Shading is Lambertian with smooth (interpolated) vertex normals, two-sided,
plus an ambient term; the albedo comes from a UV texture or per-vertex colours. Anti-aliasing by
``supersample`` x ``supersample`` rays per pixel. Usable by any stage that needs a quick, exact
(occlusion-correct) image of a mesh, e.g. the synthetic capture generator.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gsbench.errors import DependencyError


@dataclasses.dataclass(frozen=True)
class RenderResult:
    image: np.ndarray  # [H, W, 3] uint8
    mask: np.ndarray  # [H, W] float32 coverage in [0, 1]
    depth: np.ndarray  # [H, W] float32 camera z (inf where empty), centre sample of each pixel
    face_ids: np.ndarray  # [H, W] int64 (-1 where empty), centre sample


def look_at(
    eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 1.0, 0.0)
) -> np.ndarray:
    """OpenCV ``world_to_cam`` [4,4] of a camera at ``eye`` looking at ``target`` (image up ~ ``up``)."""
    eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    world_to_cam = np.eye(4)
    world_to_cam[:3, :3] = rotation
    world_to_cam[:3, 3] = -rotation @ eye
    return world_to_cam


def intrinsics(width: int, height: int, fov_y_deg: float) -> np.ndarray:
    """Pinhole ``K`` [3,3] with the principal point at the image centre."""
    focal = 0.5 * height / np.tan(0.5 * np.deg2rad(fov_y_deg))
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def orbit_camera(
    yaw_deg: float,
    pitch_deg: float = 0.0,
    distance: float = 0.6,
    target: tuple[float, float, float] = (0.0, 0.0, 0.02),
) -> np.ndarray:
    """``world_to_cam`` of a camera on a sphere around ``target``.

    Yaw 0 is in front of the face (+z); positive yaw moves toward the subject's left (+x).
    """
    yaw, pitch = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    offset = distance * np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    return look_at(np.asarray(target) + offset, np.asarray(target))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals [V,3]."""
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup; ``texture [H,W,C]`` float, ``uv [N,2]`` with v up (row 0 = v 1). Returns [N,C]."""
    height, width = texture.shape[:2]
    x = np.clip(uv[:, 0] * width - 0.5, 0, width - 1)
    y = np.clip((1.0 - uv[:, 1]) * height - 0.5, 0, height - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    top = texture[y0, x0] * (1 - fx) + texture[y0, x1] * fx
    bottom = texture[y1, x0] * (1 - fx) + texture[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def render_mesh(
    vertices: np.ndarray,  # [V, 3] world
    faces: np.ndarray,  # [F, 3]
    K: np.ndarray,  # [3, 3]
    world_to_cam: np.ndarray,  # [4, 4]
    width: int,
    height: int,
    *,
    uvs: np.ndarray | None = None,  # [Vt, 2]
    uv_faces: np.ndarray | None = None,  # [F, 3]
    texture: np.ndarray | None = None,  # [H, W, 3] uint8 or float in [0, 1]
    vertex_colors: np.ndarray | None = None,  # [V, 3] float in [0, 1]
    background: tuple[float, float, float] = (0.55, 0.58, 0.62),
    light_dir_cam: tuple[float, float, float] = (0.3, 0.45, 1.0),
    ambient: float = 0.38,
    supersample: int = 2,
) -> RenderResult:
    """Ray-cast a triangle mesh through a pinhole camera. Returns image, coverage, depth, face ids."""
    try:
        import open3d as o3d
    except ImportError as error:  # open3d needs the system library libusb-1.0
        raise DependencyError(
            f"open3d does not import ({error})",
            fix="apt-get install libusb-1.0-0 (Debian/Ubuntu); see gsbench doctor",
        ) from None
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    rotation, translation = world_to_cam[:3, :3], world_to_cam[:3, 3]
    cam_vertices = vertices @ rotation.T + translation

    s = max(1, int(supersample))
    xs = (np.arange(width * s) + 0.5) / s
    ys = (np.arange(height * s) + 0.5) / s
    px, py = np.meshgrid(xs, ys)
    directions = np.stack([(px - K[0, 2]) / K[0, 0], (py - K[1, 2]) / K[1, 1], np.ones_like(px)], axis=-1)
    rays = np.concatenate([np.zeros_like(directions), directions], axis=-1).astype(np.float32)

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(cam_vertices.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32))
    )
    hits = scene.cast_rays(o3d.core.Tensor(rays))
    t_hit = hits["t_hit"].numpy()
    prim = hits["primitive_ids"].numpy().astype(np.int64)
    bary_uv = hits["primitive_uvs"].numpy()
    hit = np.isfinite(t_hit)
    prim[~hit] = -1

    colour = np.empty(hit.shape + (3,), np.float64)
    colour[:] = background
    if hit.any():
        face = prim[hit]
        b1, b2 = bary_uv[hit, 0], bary_uv[hit, 1]
        bary = np.stack([1.0 - b1 - b2, b1, b2], axis=-1)
        if texture is not None and uvs is not None and uv_faces is not None:
            tex = texture.astype(np.float64)
            if texture.dtype == np.uint8:
                tex = tex / 255.0
            uv = np.einsum("nk,nkc->nc", bary, uvs[uv_faces[face]])
            albedo = sample_texture(tex, uv)
        elif vertex_colors is not None:
            albedo = np.einsum("nk,nkc->nc", bary, vertex_colors[faces[face]])
        else:
            albedo = np.full((len(face), 3), 0.75)
        normals_cam = vertex_normals(cam_vertices, faces)
        normal = np.einsum("nk,nkc->nc", bary, normals_cam[faces[face]])
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
        view = directions[hit] / np.linalg.norm(directions[hit], axis=1, keepdims=True)
        # two-sided: flip normals that face away from the camera
        normal *= np.where(np.einsum("nc,nc->n", normal, view) > 0, -1.0, 1.0)[:, None]
        light = -np.asarray(light_dir_cam, np.float64)  # direction toward the light
        light /= np.linalg.norm(light)
        diffuse = np.clip(normal @ light, 0.0, 1.0)
        colour[hit] = albedo * (ambient + (1.0 - ambient) * diffuse)[:, None]

    image = colour.reshape(height, s, width, s, 3).mean(axis=(1, 3))
    coverage = hit.reshape(height, s, width, s).mean(axis=(1, 3)).astype(np.float32)
    centre = s // 2
    depth_rays = t_hit * directions[..., 2]
    depth = np.where(hit, depth_rays, np.inf)[centre::s, centre::s].astype(np.float32)
    return RenderResult(
        image=np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8),
        mask=coverage,
        depth=depth,
        face_ids=prim[centre::s, centre::s],
    )


def render_head(
    head_model,  # tracking.head_model.HeadModel
    world_to_cam: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    *,
    vertices: np.ndarray | None = None,  # [V, 3] posed vertices; default: the template
    expr: np.ndarray | None = None,  # for the wrinkle maps
    **kwargs,
) -> RenderResult:
    """Render a :class:`HeadModel` with its texture (wrinkles from ``expr`` when given)."""
    from tracking.head_model import expression_albedo

    texture = head_model.texture
    if texture is not None and expr is not None and head_model.wrinkle_maps:
        texture = expression_albedo(head_model, expr)
    return render_mesh(
        head_model.v_template if vertices is None else vertices,
        head_model.faces,
        K,
        world_to_cam,
        width,
        height,
        uvs=head_model.uvs,
        uv_faces=head_model.uv_faces,
        texture=texture,
        **kwargs,
    )
