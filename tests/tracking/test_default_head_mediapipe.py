"""MediaPipe FaceMesh finds gsbench-head in renders (what the synthetic capture and tracking rely on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracking.flame import FlameLayer
from tracking.head.preview import intrinsics, orbit_camera, render_head
from tracking.head_model import HeadModel


@pytest.mark.parametrize(("yaw", "jaw"), [(0.0, 0.0), (0.0, 0.3), (45.0, 0.0), (-45.0, 0.1)])
def test_facemesh_detects_render(default_head: HeadModel, yaw: float, jaw: float) -> None:
    mediapipe = pytest.importorskip("mediapipe")
    layer = FlameLayer(default_head, torch.float64)
    with torch.no_grad():
        vertices = layer(jaw_pose=torch.tensor([[jaw, 0.0, 0.0]], dtype=torch.float64)).vertices[0].numpy()
    K = intrinsics(256, 256, 24.0)
    camera = orbit_camera(yaw, distance=0.6, target=(0.0, -0.005, 0.03))
    image = render_head(default_head, camera, K, 256, 256, vertices=vertices).image
    with mediapipe.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    ) as face_mesh:
        result = face_mesh.process(image)
    assert result.multi_face_landmarks, f"no face found at yaw {yaw}, jaw {jaw}"
    points = np.array([[p.x, p.y] for p in result.multi_face_landmarks[0].landmark]) * 256
    assert points.shape == (478, 2)
    # MediaPipe's nose tip (1) and our embedding's nose tip (30) agree within a few pixels (the face is
    # ~120 px tall; the two definitions of the tip differ by ~2 mm)
    lmk = np.einsum(
        "lk,lkc->lc", default_head.lmk_bary_coords, vertices[default_head.faces[default_head.lmk_faces_idx]]
    )
    cam = lmk @ camera[:3, :3].T + camera[:3, 3]
    ours = (cam @ K.T)[:, :2] / cam[:, 2:]
    assert np.linalg.norm(points[1] - ours[30]) < 12.0
