"""gsbench-head: format, rig behaviour, bases, landmark embedding, regions, determinism, MediaPipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tracking.flame import FlameLayer
from tracking.head import build_default_head
from tracking.head.preview import intrinsics, orbit_camera, render_head
from tracking.head_model import REGIONS, HeadModel


def part(model: HeadModel, code: str) -> np.ndarray:
    return model.vertex_regions == REGIONS[code]


def pose(model: HeadModel, **kwargs: list[float]) -> np.ndarray:
    layer = FlameLayer(model, torch.float64)
    with torch.no_grad():
        out = layer(**{k: torch.tensor([v], dtype=torch.float64) for k, v in kwargs.items()})
    return out.vertices[0].numpy()


def test_format_scale_and_counts(default_head: HeadModel) -> None:
    m = default_head
    assert m.name == "gsbench-head"
    assert 5000 <= m.num_vertices <= 20000
    assert m.num_joints == 5 and list(m.parents) == [-1, 0, 1, 1, 1]
    assert m.num_shape >= 20 and m.num_expr >= 12
    assert len(m.shape_names) == m.num_shape and len(m.expr_names) == m.num_expr
    for name in (
        "lip_pucker",
        "smile_left",
        "smile_right",
        "lip_press",
        "upper_lip_raise",
        "lower_lip_depress",
        "cheek_puff",
        "brow_raise",
        "brow_furrow",
        "blink_left",
        "blink_right",
        "nose_wrinkle",
    ):
        assert name in m.expr_names
    face_width = np.ptp(m.v_template[part(m, "skin"), 0])
    assert 0.14 < face_width < 0.2
    np.testing.assert_allclose(m.lbs_weights.sum(axis=1), 1.0, atol=1e-9)
    assert m.lbs_weights.min() >= 0
    np.testing.assert_allclose(m.J_regressor.sum(axis=1), 1.0, atol=1e-9)
    assert m.texture.shape[2] == 3 and m.texture.dtype == np.uint8
    assert {"brow_raise", "smile_left", "smile_right"} <= set(m.wrinkle_maps)
    assert set(np.unique(m.vertex_regions)) == set(REGIONS.values())
    # eyes at the front, in FLAME's frame: +z out of the face, left eye at +x
    joints = m.J_regressor @ m.v_template
    assert joints[3, 0] > 0.02 and joints[4, 0] < -0.02 and joints[3, 2] > 0.04


def test_same_seed_same_arrays(default_head: HeadModel) -> None:
    again = build_default_head(seed=0)
    for key in (
        "v_template",
        "faces",
        "shapedirs",
        "exprdirs",
        "posedirs",
        "J_regressor",
        "lbs_weights",
        "lmk_faces_idx",
        "lmk_bary_coords",
        "uvs",
        "uv_faces",
        "texture",
        "vertex_regions",
    ):
        np.testing.assert_array_equal(getattr(again, key), getattr(default_head, key), err_msg=key)
    for key, value in default_head.wrinkle_maps.items():
        np.testing.assert_array_equal(again.wrinkle_maps[key], value)


def test_jaw_opens_lower_lip_and_teeth_only(default_head: HeadModel) -> None:
    m = default_head
    moved = np.linalg.norm(pose(m, jaw_pose=[0.3, 0.0, 0.0]) - m.v_template, axis=1)
    teeth = np.nonzero(part(m, "teeth"))[0]
    upper_teeth = teeth[m.v_template[teeth, 1] > m.v_template[teeth, 1].mean()]
    lower_teeth = teeth[m.v_template[teeth, 1] < m.v_template[teeth, 1].mean()]
    assert moved[upper_teeth].max() < 1e-12
    assert moved[lower_teeth].min() > 0.01
    # the slit: 16 upper/lower lip pairs that coincide at rest
    lips = np.nonzero(part(m, "lips"))[0]
    lip_pos = m.v_template[lips]
    pairs = [
        (i, j)
        for a, i in enumerate(lips)
        for j in lips[a + 1 :][np.all(lip_pos[a + 1 :] == lip_pos[a], axis=1)]
    ]
    assert len(pairs) >= 8
    opened = pose(m, jaw_pose=[0.3, 0.0, 0.0])
    for i, j in pairs:
        gap = opened[i, 1] - opened[j, 1]
        assert abs(gap) > 0.005  # one of the pair went down with the jaw
        upper = i if gap > 0 else j
        assert moved[upper] < 1e-3  # ...the other stayed with the head
    # the forehead and nose stay
    assert moved[m.v_template[:, 1] > 0.0].max() < 1e-12


def test_eye_rotation_moves_only_that_eyeball(default_head: HeadModel) -> None:
    m = default_head
    moved = np.linalg.norm(pose(m, eyes_pose=[0.0, 0.4, 0.0, 0.0, 0.0, 0.0]) - m.v_template, axis=1)
    left_eye = m.lbs_weights[:, 3] == 1.0
    assert left_eye.sum() > 100 and np.all(part(m, "eyes")[left_eye])
    assert moved[~left_eye].max() < 1e-12
    assert moved[left_eye].max() > 0.003
    # the eyeball rotates about its centre: distances to the eye joint are kept
    centre = (m.J_regressor @ m.v_template)[3]
    posed = pose(m, eyes_pose=[0.2, 0.4, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(
        np.linalg.norm(posed[left_eye] - centre, axis=1),
        np.linalg.norm(m.v_template[left_eye] - centre, axis=1),
        atol=1e-12,
    )


@pytest.mark.parametrize("basis", ["shapedirs", "exprdirs"])
def test_bases_orthogonal(default_head: HeadModel, basis: str) -> None:
    m = default_head
    dirs = getattr(m, basis)
    flat = dirs.reshape(-1, dirs.shape[2])
    gram = flat.T @ flat
    norms = np.sqrt(np.diag(gram))
    assert np.all(norms > 1e-4)
    cosine = gram / np.outer(norms, norms)
    np.testing.assert_allclose(cosine, np.eye(len(norms)), atol=1e-9)


def test_shape_basis_smooth(default_head: HeadModel) -> None:
    """No shape component changes faster than over ~4 mm of skin (no steps, no creases)."""
    m = default_head
    skin = part(m, "skin") | part(m, "scalp_hair") | part(m, "neck")
    faces = m.faces[np.all(skin[m.faces], axis=1)]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    length = np.linalg.norm(m.v_template[edges[:, 0]] - m.v_template[edges[:, 1]], axis=1)
    for k, name in enumerate(m.shape_names):
        step = np.linalg.norm(m.shapedirs[edges[:, 0], :, k] - m.shapedirs[edges[:, 1], :, k], axis=1)
        largest = np.linalg.norm(m.shapedirs[:, :, k], axis=1).max()
        assert (step / length).max() < largest / 0.004, name


def test_expressions_are_localized(default_head: HeadModel) -> None:
    m = default_head
    index = {name: k for k, name in enumerate(m.expr_names)}
    magnitude = np.linalg.norm(m.exprdirs, axis=1)  # [V, E]
    y = m.v_template[:, 1]
    brow = magnitude[:, index["brow_raise"]]
    assert y[brow > 0.5 * brow.max()].min() > 0.02  # the forehead, not the mouth
    for name in ("smile_left", "lip_pucker", "lower_lip_depress"):
        mouth = magnitude[:, index[name]]
        assert y[mouth > 0.5 * mouth.max()].max() < -0.02, name
    smile_left = magnitude[:, index["smile_left"]]
    assert np.all(m.v_template[smile_left > 0.5 * smile_left.max(), 0] > 0)  # left = +x
    blink = magnitude[:, index["blink_right"]]
    assert np.all(m.v_template[blink > 0.2 * blink.max(), 0] < 0)


def test_landmarks_on_surface_with_ibug_layout(default_head: HeadModel) -> None:
    m = default_head
    lmk = np.einsum("lk,lkc->lc", m.lmk_bary_coords, m.v_template[m.faces[m.lmk_faces_idx]])
    assert np.all(m.lmk_bary_coords >= 0)
    # every landmark face belongs to the head surface (skin/lips/brows), never eyes, teeth or interior
    face_regions = m.vertex_regions[m.faces[m.lmk_faces_idx]]
    assert not np.isin(face_regions, [REGIONS["eyes"], REGIONS["teeth"], REGIONS["mouth_interior"]]).any()
    x, y, z = lmk.T
    assert np.all(np.diff(x[0:9]) > 0) and np.all(np.diff(x[8:17]) > 0)  # jaw line right -> left
    assert y[8] < y[:17].min() + 0.002 and y[8] < y[4] - 0.02  # chin at the bottom
    assert np.argmax(z) == 30  # nose tip in front of everything
    assert np.all(x[36:42] < 0) and np.all(x[42:48] > 0)  # right eye at -x, left at +x
    assert np.all(y[17:27] > y[36:48].max())  # brows above the eyes
    assert y[51] > y[62] >= y[66] > y[57]  # outer top > inner top >= inner bottom > outer bottom
    assert x[48] < x[60] < x[64] < x[54]
    # visible in a frontal render (not tucked inside an eyeball): depth of the render matches
    K = intrinsics(512, 512, 25.0)
    camera = orbit_camera(0.0, distance=0.6)
    render = render_head(m, camera, K, 512, 512, supersample=1)
    cam = lmk @ camera[:3, :3].T + camera[:3, 3]
    pixels = (cam @ K.T)[:, :2] / cam[:, 2:]
    depth = render.depth[pixels[:, 1].astype(int), pixels[:, 0].astype(int)]
    visible = np.arange(17, 68)
    assert np.all(np.abs(depth[visible] - cam[visible, 2]) < 0.004)
    # opening the jaw separates the inner lips: 66 goes down, 62 stays
    opened = pose(m, jaw_pose=[0.25, 0.0, 0.0])
    lmk_open = np.einsum("lk,lkc->lc", m.lmk_bary_coords, opened[m.faces[m.lmk_faces_idx]])
    assert lmk_open[66, 1] < y[66] - 0.01 and abs(lmk_open[62, 1] - y[62]) < 0.002


def test_wrinkles_follow_expressions(default_head: HeadModel) -> None:
    from tracking.head_model import expression_albedo

    m = default_head
    neutral = expression_albedo(m, np.zeros(m.num_expr))
    np.testing.assert_allclose(neutral, m.texture / 255.0, atol=1e-6)
    raised = np.zeros(m.num_expr)
    raised[m.expr_names.index("brow_raise")] = 1.0
    darker = neutral - expression_albedo(m, raised)
    assert darker.max() > 0.05
    assert np.all(darker[m.wrinkle_maps["brow_raise"] == 0] == 0)


@pytest.mark.slow
def test_different_seed_changes_texture_not_template(default_head: HeadModel) -> None:
    other = build_default_head(seed=1)
    np.testing.assert_array_equal(other.v_template, default_head.v_template)
    assert np.abs(other.texture.astype(int) - default_head.texture.astype(int)).mean() > 1.0
    assert not np.allclose(other.shapedirs, default_head.shapedirs)


def test_open_jaw_does_not_fold_chin_or_throat(default_head: HeadModel) -> None:
    """Jaw weights blend over a wide band under the chin: no lower-face skin triangle turns over."""
    m = default_head
    surface = part(m, "skin") | part(m, "neck") | part(m, "lips")
    faces = m.faces[np.all(surface[m.faces], axis=1)]
    faces = faces[m.v_template[faces].mean(axis=1)[:, 1] < -0.06]  # chin, jaw line, throat

    def normals(vertices: np.ndarray) -> np.ndarray:
        tri = vertices[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        return normal / np.linalg.norm(normal, axis=1, keepdims=True)

    opened = pose(m, jaw_pose=[0.2, 0.0, 0.0])
    cosine = np.sum(normals(opened) * normals(m.v_template), axis=1)
    assert cosine.min() > 0.5  # no face tilts by more than 60 degrees (a fold turns faces over)
