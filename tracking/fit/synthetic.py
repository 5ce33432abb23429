"""A small FLAME-format toy head and a synthetic tracking dataset with known parameters.

Used by the tracking and export tests (and as a fallback benchmark input) so they run in seconds
without the full synthetic capture + ingest pipeline: the toy head is an ellipsoid with a jaw, two
eyes, smooth shape/expression blend shapes and pose correctives; "MediaPipe" landmarks are 478
fixed surface points (face + barycentrics), of which the 68 iBUG ones (``MEDIAPIPE_TO_IBUG68``) are
also the model's own 68-point embedding. Landmarks are projected into known cameras with pixel
noise and written in the dataset layout of docs/interfaces.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gsbench.dataset import write_cameras_json, write_dataset_json
from gsbench.io import save_npz
from tracking.fit.model import posed_vertices
from tracking.head_model import HeadModel
from tracking.landmarks import MEDIAPIPE_TO_IBUG68, NUM_MEDIAPIPE_LANDMARKS


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def build_toy_head(
    seed: int = 0, num_shape: int = 8, num_expr: int = 12, rings: int = 28, segments: int = 36
):
    """Return ``(HeadModel, mediapipe_faces [478], mediapipe_bary [478, 3])`` for a toy head.

    Frame as FLAME's: metres, y up, +z out of the face. ~1000 vertices.
    """
    rng = np.random.default_rng(seed)
    radii = np.array([0.075, 0.10, 0.09])
    polar = np.linspace(0, np.pi, rings + 1)[1:-1]  # from +y down
    azimuth = np.linspace(-np.pi, np.pi, segments, endpoint=False)
    pp, aa = np.meshgrid(polar, azimuth, indexing="ij")
    unit = np.stack([np.sin(pp) * np.sin(aa), np.cos(pp), np.sin(pp) * np.cos(aa)], -1).reshape(-1, 3)
    vertices = np.concatenate([unit * radii, [[0, radii[1], 0], [0, -radii[1], 0]]])
    top, bottom = len(vertices) - 2, len(vertices) - 1
    faces = []
    for r in range(rings - 2):
        for s in range(segments):
            a, b = r * segments + s, r * segments + (s + 1) % segments
            c, d = a + segments, b + segments
            faces += [[a, c, b], [b, c, d]]
    last = (rings - 2) * segments
    for s in range(segments):
        faces.append([top, s, (s + 1) % segments])
        faces.append([bottom, last + (s + 1) % segments, last + s])
    faces = np.array(faces, np.int64)
    centroid = vertices[faces].mean(1)
    normal = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    inward = (normal * centroid).sum(1) < 0
    faces[inward] = faces[inward][:, ::-1]
    num_v = len(vertices)
    normals = vertices / radii**2
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)

    def ring_mean(y: float, width: float = 0.006) -> np.ndarray:
        row = np.abs(vertices[:, 1] - y) < width
        weights = row.astype(float)
        return weights / weights.sum()

    eye_centres = np.array([[0.03, 0.02, 0.0], [-0.03, 0.02, 0.0]])
    eye_centres[:, 2] = radii[2] * np.sqrt(
        np.clip(1 - (eye_centres[:, 0] / radii[0]) ** 2 - (eye_centres[:, 1] / radii[1]) ** 2, 0, 1)
    )
    eye_patch = [np.linalg.norm(vertices - centre, axis=1) < 0.014 for centre in eye_centres]
    regressor = np.zeros((5, num_v))
    regressor[0] = ring_mean(-0.085)
    regressor[1] = ring_mean(-0.05)
    regressor[2] = ring_mean(-0.01)
    for k in range(2):
        regressor[3 + k] = eye_patch[k] / eye_patch[k].sum()
    weights = np.zeros((num_v, 5))
    jaw = _sigmoid((-0.02 - vertices[:, 1]) / 0.006) * _sigmoid(vertices[:, 2] / 0.015)
    weights[:, 2] = jaw
    weights[:, 1] = (1 - jaw) * _sigmoid((vertices[:, 1] + 0.07) / 0.008)
    weights[:, 0] = 1 - weights[:, 1] - weights[:, 2]
    for k in range(2):
        weights[eye_patch[k]] = 0.0
        weights[eye_patch[k], 3 + k] = 1.0

    def bump_field(count: int, centre_filter, amplitude: float) -> np.ndarray:
        field = np.zeros((num_v, 3, count))
        for k in range(count):
            for _ in range(3):
                centre = vertices[rng.choice(np.flatnonzero(centre_filter))]
                sigma = rng.uniform(0.015, 0.03)
                bump = np.exp(-((vertices - centre) ** 2).sum(1) / (2 * sigma**2))
                field[:, :, k] += rng.normal(0, amplitude) * bump[:, None] * normals
        return field

    front = vertices[:, 2] > 0.3 * radii[2]
    shapedirs = bump_field(num_shape, np.ones(num_v, bool), 0.004)
    shapedirs[:, :, 0] = vertices * 0.03  # overall size
    exprdirs = bump_field(num_expr, front & (vertices[:, 1] < 0.04), 0.003)
    posedirs = rng.normal(0, 2e-4, (36, num_v * 3)) * np.repeat(jaw, 3)[None]
    # "MediaPipe" points on the front of the face, the 68 iBUG ones among them
    face_centres = vertices[faces].mean(1)
    frontal = np.flatnonzero(
        (face_centres[:, 2] > 0.55 * radii[2])
        & (np.abs(face_centres[:, 1]) < 0.085)
        & (np.abs(face_centres[:, 0]) < 0.06)
    )
    mp_faces = rng.choice(frontal, NUM_MEDIAPIPE_LANDMARKS, replace=True)
    mp_bary = rng.dirichlet(np.ones(3) * 3, NUM_MEDIAPIPE_LANDMARKS)
    model = HeadModel(
        v_template=vertices,
        faces=faces,
        shapedirs=shapedirs,
        exprdirs=exprdirs,
        posedirs=posedirs,
        J_regressor=regressor,
        parents=np.array([-1, 0, 1, 1, 1], np.int64),
        lbs_weights=weights,
        lmk_faces_idx=mp_faces[MEDIAPIPE_TO_IBUG68].copy(),
        lmk_bary_coords=mp_bary[MEDIAPIPE_TO_IBUG68].copy(),
        name="toy-head",
    ).validate()
    return model, mp_faces, mp_bary


def ring_cameras(
    num_cameras: int,
    image_size: int = 256,
    distance_m: float = 1.0,
    arc_deg: float = 100.0,
    focal_px: float | None = None,
) -> dict[str, dict]:
    """Cameras on a horizontal arc around the origin, looking at it (OpenCV convention)."""
    focal = focal_px if focal_px is not None else image_size * 2.4
    cameras = {}
    for index, angle in enumerate(np.deg2rad(np.linspace(-arc_deg / 2, arc_deg / 2, num_cameras))):
        height = 0.08 * np.cos(3 * angle)
        centre = np.array([distance_m * np.sin(angle), height, distance_m * np.cos(angle)])
        forward = -centre / np.linalg.norm(centre)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])  # rows: camera axes in world
        world_to_cam = np.eye(4)
        world_to_cam[:3, :3] = rotation
        world_to_cam[:3, 3] = -rotation @ centre
        intrinsics = np.array(
            [[focal, 0, image_size / 2 + 1.5], [0, focal * 1.01, image_size / 2 - 2.0], [0, 0, 1]]
        )
        cameras[f"cam{index:02d}"] = {
            "K": intrinsics.tolist(),
            "world_to_cam": world_to_cam.tolist(),
            "width": image_size,
            "height": image_size,
        }
    return cameras


def random_motion(
    rng: np.random.Generator, num_frames: int, num_expr: int, fps: float = 25.0
) -> dict[str, np.ndarray]:
    """Smooth per-frame FLAME parameters: head sway, speech-like jaw opening, expressions, eye saccades."""
    t = np.arange(num_frames) / fps

    def wave(amplitude: float, count: int = 1) -> np.ndarray:
        freq = rng.uniform(0.3, 1.2, count)
        phase = rng.uniform(0, 2 * np.pi, count)
        return amplitude * np.sin(2 * np.pi * freq[None] * t[:, None] + phase[None])

    jaw_open = (
        0.12
        + 0.1 * np.sin(2 * np.pi * rng.uniform(2.0, 3.5) * t + rng.uniform(0, 6))
        + 0.03 * np.sin(2 * np.pi * 5.3 * t)
    )
    return {
        "expr": wave(0.8, num_expr),
        "jaw_pose": np.stack([np.clip(jaw_open, 0.0, 0.35), wave(0.01)[:, 0], wave(0.01)[:, 0]], -1),
        "neck_pose": wave(0.03, 3),
        "eyes_pose": np.repeat(wave(0.08, 3)[:, [0, 1, 2]], 2, axis=1) * np.array([1, 1, 0, 1, 1, 0]),
        "rotation": wave(0.12, 3),
        "translation": wave(0.01, 3) + np.array([0.0, 0.0, 0.02]),
    }


@dataclass(frozen=True)
class SyntheticTracking:
    """What :func:`write_synthetic_dataset` wrote: the truth to compare a fit against."""

    root: Path
    head_model: HeadModel
    mediapipe_faces: np.ndarray  # [478]
    mediapipe_bary: np.ndarray  # [478, 3]
    params: dict[str, dict[str, np.ndarray]]  # sequence -> FLAME keys (+ "shape")


def write_synthetic_dataset(
    root: str | Path,
    *,
    head: tuple[HeadModel, np.ndarray, np.ndarray] | None = None,
    subjects: dict[str, list[str]] | None = None,
    num_frames: int = 16,
    num_cameras: int = 6,
    image_size: int = 256,
    noise_px: float = 0.5,
    outlier_fraction: float = 0.01,
    drop_fraction: float = 0.05,
    write_images: bool = False,
    seed: int = 0,
) -> SyntheticTracking:
    """Write dataset.json, cameras.json and per-sequence landmarks.npz (+ images/masks on request)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    model, mp_faces, mp_bary = head if head is not None else build_toy_head(seed)
    subjects = subjects or {"s01": ["s01_t00", "s01_t01"]}
    cameras = ring_cameras(num_cameras, image_size)
    camera_ids = sorted(cameras)
    fps = 25.0
    params: dict[str, dict[str, np.ndarray]] = {}
    sequences = {}
    splits = {}
    for subject, seqs in subjects.items():
        shape = rng.normal(0, 0.8, model.num_shape)
        for seq in seqs:
            frame_params = random_motion(rng, num_frames, model.num_expr, fps)
            frame_params["expr"] = frame_params["expr"]
            vertices = posed_vertices(model, {**frame_params, "shape": shape})
            corners = vertices[:, model.faces[mp_faces]]  # [T, 478, 3, 3]
            points = (corners * mp_bary[None, :, :, None]).sum(2)
            arrays = {}
            seq_dir = root / "sequences" / seq
            for cam in camera_ids:
                intrinsics = np.array(cameras[cam]["K"])
                world_to_cam = np.array(cameras[cam]["world_to_cam"])
                cam_points = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
                pixels = cam_points @ intrinsics.T
                pixels = pixels[..., :2] / pixels[..., 2:3]
                pixels = pixels + rng.normal(0, noise_px, pixels.shape)
                outliers = rng.random(pixels.shape[:2]) < outlier_fraction
                pixels[outliers] += rng.normal(0, 25.0, (int(outliers.sum()), 2))
                detected = rng.random(num_frames) >= drop_fraction
                pixels[~detected] = np.nan
                arrays[cam] = pixels.astype(np.float32)
                arrays[f"{cam}_detected"] = detected
                if write_images:
                    _write_frames(seq_dir, cam, vertices, model.faces, intrinsics, world_to_cam, image_size)
            save_npz(seq_dir / "landmarks.npz", **arrays)
            params[seq] = {**frame_params, "shape": shape}
            sequences[seq] = {"subject": subject, "num_frames": num_frames, "duration_s": num_frames / fps}
        ordered = list(seqs)
        splits[subject] = {
            "train": ordered[:-1] or ordered,
            "val": [],
            "test": ordered[-1:] if len(ordered) > 1 else [],
        }
    dataset = {
        "schema_version": 1,
        "name": root.name,
        "fps": fps,
        "image_size": [image_size, image_size],
        "frontal_camera": camera_ids[len(camera_ids) // 2],
        "cameras": camera_ids,
        "subjects": sorted(subjects),
        "sequences": sequences,
        "splits": splits,
        "split_seed": seed,
        "provenance": {
            "gsbench_version": "test",
            "source": "tracking.fit.synthetic",
            "inputs_sha256": {},
            "stages": {},
        },
    }
    write_dataset_json(root, dataset)
    write_cameras_json(root, cameras)
    return SyntheticTracking(root, model, mp_faces, mp_bary, params)


def _write_frames(
    seq_dir: Path,
    cam: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    intrinsics: np.ndarray,
    world_to_cam: np.ndarray,
    size: int,
) -> None:
    """Flat-shaded toy renders (painter's algorithm) and their masks, enough for overlays and export."""
    for t, frame_vertices in enumerate(vertices):
        cam_points = frame_vertices @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
        pixels = cam_points @ intrinsics.T
        pixels = pixels[:, :2] / pixels[:, 2:3]
        image = np.full((size, size, 3), 40, np.uint8)
        mask = np.zeros((size, size), np.uint8)
        tri = cam_points[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        facing = (normal * tri.mean(1)).sum(1) < 0
        order = np.argsort(-tri.mean(1)[:, 2])
        for face in order[facing[order]]:
            polygon = np.round(pixels[faces[face]] * 16).astype(np.int32)
            shade = int(90 + 150 * abs(normal[face, 2]) / (np.linalg.norm(normal[face]) + 1e-12))
            cv2.fillConvexPoly(image, polygon, (shade, int(shade * 0.8), int(shade * 0.7)), cv2.LINE_AA, 4)
            cv2.fillConvexPoly(mask, polygon, 255, cv2.LINE_8, 4)
        (seq_dir / "images" / cam).mkdir(parents=True, exist_ok=True)
        (seq_dir / "masks" / cam).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(seq_dir / "images" / cam / f"{t:05d}.jpg"), image[..., ::-1])
        cv2.imwrite(str(seq_dir / "masks" / cam / f"{t:05d}.png"), mask)


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())
