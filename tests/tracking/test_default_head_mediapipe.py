"""MediaPipe FaceMesh finds gsbench-head in renders (what the synthetic capture and tracking rely on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracking.flame import FlameLayer
from tracking.head.preview import intrinsics, orbit_camera, render_head
from tracking.head_model import HeadModel
from tracking.landmarks import MEDIAPIPE_TO_IBUG68, load_mediapipe_embedding


def _render_and_detect(
    head: HeadModel, layer: FlameLayer, yaw: float, jaw: float, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Vertices, camera [4, 4] and FaceMesh's 478 points in pixels (None: no face) of a 256x256 render
    of ``head`` turned by ``yaw`` degrees with the jaw opened by ``jaw`` rad."""
    mediapipe = pytest.importorskip("mediapipe")
    with torch.no_grad():
        vertices = layer(jaw_pose=torch.tensor([[jaw, 0.0, 0.0]], dtype=torch.float64)).vertices[0].numpy()
    camera = orbit_camera(yaw, distance=0.6, target=(0.0, -0.005, 0.03))
    image = render_head(head, camera, K, 256, 256, vertices=vertices).image
    with mediapipe.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    ) as face_mesh:
        result = face_mesh.process(image)
    if not result.multi_face_landmarks:
        return vertices, camera, None
    return vertices, camera, np.array([[p.x, p.y] for p in result.multi_face_landmarks[0].landmark]) * 256


@pytest.mark.parametrize(("yaw", "jaw"), [(0.0, 0.0), (0.0, 0.3), (45.0, 0.0), (-45.0, 0.1)])
def test_facemesh_detects_render(default_head: HeadModel, yaw: float, jaw: float) -> None:
    K = intrinsics(256, 256, 24.0)
    vertices, camera, points = _render_and_detect(
        default_head, FlameLayer(default_head, torch.float64), yaw, jaw, K
    )
    assert points is not None, f"no face found at yaw {yaw}, jaw {jaw}"
    assert points.shape == (478, 2)
    # MediaPipe's nose tip (1) and our embedding's nose tip (30) agree within a few pixels (the face is
    # ~120 px tall; the two definitions of the tip differ by ~2 mm)
    lmk = np.einsum(
        "lk,lkc->lc", default_head.lmk_bary_coords, vertices[default_head.faces[default_head.lmk_faces_idx]]
    )
    cam = lmk @ camera[:3, :3].T + camera[:3, 3]
    ours = (cam @ K.T)[:, :2] / cam[:, 2:]
    assert np.linalg.norm(points[1] - ours[30]) < 12.0


def _project_embedded(
    head: HeadModel,
    vertices: np.ndarray,
    faces: np.ndarray,
    bary: np.ndarray,
    camera: np.ndarray,
    K: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels [L, 2] of embedded points and whether each faces the camera (cos >= 0.25)."""
    corners = vertices[head.faces[faces]]  # [L, 3, 3]
    points = np.einsum("lk,lkc->lc", bary, corners)
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    to_camera = -camera[:3, :3].T @ camera[:3, 3] - points
    cosine = (normal * to_camera).sum(1) / np.linalg.norm(normal, axis=1) / np.linalg.norm(to_camera, axis=1)
    cam = points @ camera[:3, :3].T + camera[:3, 3]
    return (cam @ K.T)[:, :2] / cam[:, 2:], cosine >= 0.25


def test_shipped_mediapipe_embedding_matches_facemesh(default_head: HeadModel) -> None:
    """The shipped fixed embedding (scripts/build_mediapipe_embedding.py) puts the 478 points where
    FaceMesh finds them on renders it was not built from, closer than the model's own iBUG-68 points."""
    faces_idx, bary = load_mediapipe_embedding(default_head)
    layer = FlameLayer(default_head, torch.float64)
    K = intrinsics(256, 256, 24.0)
    fixed, fixed68, model68 = [], [], []
    for yaw, jaw in ((0.0, 0.15), (30.0, 0.0), (-25.0, 0.05)):
        vertices, camera, detected = _render_and_detect(default_head, layer, yaw, jaw, K)
        assert detected is not None, f"no face found at yaw {yaw}, jaw {jaw}"
        pixels, facing = _project_embedded(default_head, vertices, faces_idx, bary, camera, K)
        error = np.linalg.norm(pixels - detected, axis=1)
        fixed.append(error[facing])
        visible68 = facing[MEDIAPIPE_TO_IBUG68]
        fixed68.append(error[MEDIAPIPE_TO_IBUG68][visible68])
        pixels68, _ = _project_embedded(
            default_head, vertices, default_head.lmk_faces_idx, default_head.lmk_bary_coords, camera, K
        )
        model68.append(np.linalg.norm(pixels68 - detected[MEDIAPIPE_TO_IBUG68], axis=1)[visible68])
    fixed, fixed68, model68 = (np.median(np.concatenate(e)) for e in (fixed, fixed68, model68))
    # measured (another renderer than the build's, static mode): 2.39 px; 68 points 2.31 vs 3.70 px
    assert fixed < 3.0, fixed
    assert fixed68 < 0.8 * model68, (fixed68, model68)
