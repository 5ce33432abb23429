"""Write a :class:`HeadModel` as OBJ (+MTL + texture PNG) or PLY, plus a contact sheet of renders."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from gsbench.errors import InputError
from gsbench.io import atomic_path, write_text
from tracking.flame import FlameLayer
from tracking.head.preview import intrinsics, orbit_camera, render_head, sample_texture
from tracking.head_model import HeadModel

# (label, expression coefficients by name, jaw opening in rad, eye rotation (pitch, yaw) in rad)
CONTACT_EXPRESSIONS: tuple[tuple[str, dict[str, float], float, tuple[float, float]], ...] = (
    ("neutral", {}, 0.0, (0.0, 0.0)),
    ("jaw open", {}, 0.3, (0.0, 0.0)),
    ("smile", {"smile_left": 1.0, "smile_right": 1.0, "cheek_squint": 0.5}, 0.05, (0.0, 0.0)),
    ("brows up, look left", {"brow_raise": 1.2}, 0.0, (0.0, 0.35)),
    ("pucker, blink L", {"lip_pucker": 1.0, "blink_left": 1.0}, 0.0, (0.0, 0.0)),
)
CONTACT_YAWS = (-60.0, -30.0, 0.0, 30.0, 60.0, 90.0)


def _imwrite(path: Path, image_rgb: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR)):
            raise InputError("could not write image", path=path, fix="check the folder is writable")


def write_obj(model: HeadModel, out_dir: Path, stem: str, vertices: np.ndarray | None = None) -> list[Path]:
    """OBJ with UVs, its MTL and the albedo PNG. Returns the written paths."""
    if model.uvs is None or model.uv_faces is None or model.texture is None:
        raise InputError("OBJ export needs a UV-textured model", path=model.name, fix="use --format ply")
    vertices = model.v_template if vertices is None else vertices
    obj, mtl, png = out_dir / f"{stem}.obj", out_dir / f"{stem}.mtl", out_dir / f"{stem}_albedo.png"
    lines = [
        f"# {model.name}: {len(vertices)} vertices, {len(model.faces)} faces, metres, y up, +z forward",
        f"mtllib {mtl.name}",
    ]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in model.uvs]
    lines.append("usemtl head")
    faces = model.faces + 1
    uv_faces = model.uv_faces + 1
    lines += [
        f"f {a}/{ta} {b}/{tb} {c}/{tc}" for (a, b, c), (ta, tb, tc) in zip(faces, uv_faces, strict=True)
    ]
    write_text(obj, "\n".join(lines) + "\n")
    write_text(mtl, f"newmtl head\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nmap_Kd {png.name}\n")
    _imwrite(png, model.texture)
    return [obj, mtl, png]


def write_ply(model: HeadModel, out_dir: Path, stem: str, vertices: np.ndarray | None = None) -> list[Path]:
    """Binary PLY with per-vertex colours sampled from the texture (and the texture PNG beside it)."""
    vertices = model.v_template if vertices is None else vertices
    colours = np.full((len(vertices), 3), 200, np.uint8)
    paths = []
    if model.uvs is not None and model.uv_faces is not None and model.texture is not None:
        vertex_uv = np.zeros((len(vertices), 2))
        vertex_uv[model.faces.reshape(-1)] = model.uvs[model.uv_faces.reshape(-1)]
        sampled = sample_texture(model.texture.astype(np.float64), vertex_uv)
        colours = np.clip(sampled + 0.5, 0, 255).astype(np.uint8)
        png = out_dir / f"{stem}_albedo.png"
        _imwrite(png, model.texture)
        paths.append(png)
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment {model.name}: metres, y up, +z forward\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(model.faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    vertex_dtype = np.dtype([("p", "<f4", 3), ("c", "u1", 3)])
    vertex_block = np.empty(len(vertices), vertex_dtype)
    vertex_block["p"], vertex_block["c"] = vertices, colours
    face_dtype = np.dtype([("n", "u1"), ("i", "<i4", 3)])
    face_block = np.empty(len(model.faces), face_dtype)
    face_block["n"], face_block["i"] = 3, model.faces
    ply = out_dir / f"{stem}.ply"
    with atomic_path(ply) as tmp:
        tmp.write_bytes(header.encode("ascii") + vertex_block.tobytes() + face_block.tobytes())
    return [ply, *paths]


def _put_label(image: np.ndarray, text: str) -> None:
    cv2.putText(image, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2, cv2.LINE_AA)
    cv2.putText(image, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (20, 20, 20), 1, cv2.LINE_AA)


def contact_sheet(model: HeadModel, tile: int = 256) -> np.ndarray:
    """Rows: expressions of :data:`CONTACT_EXPRESSIONS`; columns: yaw angles. Returns [H, W, 3] uint8."""
    layer = FlameLayer(model, dtype=torch.float64)
    K = intrinsics(tile, tile, 26.0)
    rows = []
    for label, coefficients, jaw, (eye_pitch, eye_yaw) in CONTACT_EXPRESSIONS:
        expr = np.zeros(model.num_expr)
        for name, value in coefficients.items():
            if name in model.expr_names:
                expr[model.expr_names.index(name)] = value
        with torch.no_grad():
            output = layer(
                expr=torch.as_tensor(expr)[None],
                jaw_pose=torch.tensor([[jaw, 0.0, 0.0]], dtype=torch.float64),
                eyes_pose=torch.tensor(
                    [[eye_pitch, eye_yaw, 0.0, eye_pitch, eye_yaw, 0.0]], dtype=torch.float64
                ),
            )
        vertices = output.vertices[0].numpy()
        tiles = []
        for yaw in CONTACT_YAWS:
            image = render_head(
                model,
                orbit_camera(yaw, distance=0.62, target=(0.0, -0.005, 0.02)),
                K,
                tile,
                tile,
                vertices=vertices,
                expr=expr,
            ).image.copy()
            _put_label(image, f"{label}, yaw {yaw:+.0f}" if yaw == CONTACT_YAWS[0] else f"yaw {yaw:+.0f}")
            tiles.append(image)
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def export_head(model: HeadModel, out_dir: str | Path, fmt: str = "obj", sheet: bool = True) -> list[Path]:
    """Write the mesh (``fmt`` obj|ply), the model ``.npz`` and a contact sheet into ``out_dir``."""
    if fmt not in ("obj", "ply"):
        raise InputError(f"unknown mesh format {fmt!r}", fix="use obj or ply")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("output path exists and is not a folder", path=out_dir, fix="pass a folder path")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = model.name
    paths = write_obj(model, out_dir, stem) if fmt == "obj" else write_ply(model, out_dir, stem)
    npz = out_dir / f"{stem}.npz"
    model.save(npz)
    paths.append(npz)
    if sheet:
        png = out_dir / f"{stem}_contact_sheet.png"
        _imwrite(png, contact_sheet(model))
        paths.append(png)
    return paths
