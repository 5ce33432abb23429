"""Tracking figures: landmark/mesh overlays on frames of several cameras, and error over time."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gsbench.io import atomic_path
from tracking.fit.geometry import project_np
from tracking.fit.model import posed_vertices
from tracking.head_model import HeadModel


def _load_frame(path: Path, width: int, height: int) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        image = np.full((height, width, 3), 60, np.uint8)
        cv2.putText(image, "no image", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1)
    return image


def write_overlay(
    path: Path,
    sequence_dir: Path,
    head_model: HeadModel,
    params: dict[str, np.ndarray],  # one sequence: FRAME_KEYS [T, ...] + shape
    detections: np.ndarray,  # [C, T, 478, 2]
    embedding_faces: np.ndarray,
    embedding_bary: np.ndarray,
    camera_ids: list[str],
    intrinsics: np.ndarray,
    world_to_cam: np.ndarray,
    image_sizes: np.ndarray,
    max_cameras: int = 4,
    num_frames: int = 3,
) -> None:
    """Grid (cameras x frames): mesh vertices (blue), detected (green) and tracked (red) landmarks."""
    total = detections.shape[1]
    frames = np.unique(np.linspace(0, total - 1, min(num_frames, total)).round().astype(int))
    usable = [c for c in range(len(camera_ids)) if np.isfinite(detections[c, :, 0, 0]).any()]
    cams = [
        usable[i]
        for i in np.unique(np.linspace(0, len(usable) - 1, min(max_cameras, len(usable))).round().astype(int))
    ]
    frame_params = {key: value[frames] for key, value in params.items() if key != "shape"}
    vertices = posed_vertices(head_model, {"shape": params["shape"], **frame_params})  # [F, V, 3]
    corners = vertices[:, head_model.faces[embedding_faces]]  # [F, 478, 3, 3]
    tracked = (corners * embedding_bary[None, :, :, None]).sum(2)
    tile = 256
    rows = []
    for c in cams:
        width, height = (int(v) for v in image_sizes[c])
        row = []
        for col, t in enumerate(frames):
            image = _load_frame(sequence_dir / "images" / camera_ids[c] / f"{t:05d}.jpg", width, height)
            scale = tile / max(width, height)
            image = cv2.resize(
                image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
            mesh_px = (
                project_np(
                    vertices[col, :: max(1, head_model.num_vertices // 1500)], intrinsics[c], world_to_cam[c]
                )
                * scale
            )
            for x, y in mesh_px:
                if 0 <= x < image.shape[1] and 0 <= y < image.shape[0]:
                    image[int(y), int(x)] = (255, 170, 60)
            for points, colour in (
                (detections[c, t], (60, 220, 60)),
                (project_np(tracked[col], intrinsics[c], world_to_cam[c]), (40, 40, 255)),
            ):
                for x, y in points * scale:
                    if np.isfinite(x) and np.isfinite(y):
                        cv2.circle(image, (int(round(x)), int(round(y))), 1, colour, -1, cv2.LINE_AA)
            cv2.putText(
                image, f"{camera_ids[c]} t={t}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1
            )
            canvas = np.zeros((tile, tile, 3), np.uint8)
            canvas[: image.shape[0], : image.shape[1]] = image
            row.append(canvas)
        rows.append(np.concatenate(row, axis=1))
    grid = np.concatenate(rows, axis=0)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise OSError(f"cannot write {path}")


def write_error_plot(
    path: Path, sequence: str, per_frame_px: np.ndarray, jaw_deg: np.ndarray, fps: float
) -> None:
    """Median reprojection error and jaw opening over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    time_s = np.arange(len(per_frame_px)) / fps
    figure, axes = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    axes[0].plot(time_s, per_frame_px, lw=1.2)
    axes[0].set_ylabel("median reproj. error [px]")
    axes[0].set_title(f"tracking: {sequence}")
    axes[0].grid(alpha=0.3)
    axes[1].plot(time_s, jaw_deg, lw=1.2, color="tab:red")
    axes[1].set_ylabel("jaw opening [deg]")
    axes[1].set_xlabel("time [s]")
    axes[1].grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=90)
    plt.close(figure)
