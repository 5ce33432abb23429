"""FLAME forward pass: equals a direct numpy LBS, batches, differentiates, float32/float64."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch

from gsbench.errors import InputError
from tracking.flame import FlameLayer
from tracking.head_model import HeadModel


def rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(axis_angle)
    if angle < 1e-12:
        return np.eye(3)
    k = axis_angle / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def numpy_flame(model: HeadModel, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLAME by the equations (one frame): blend shapes, pose correctives, kinematic chain, LBS."""
    v_shaped = (
        model.v_template
        + params["static_offset"]
        + model.shapedirs @ params["shape"]
        + model.exprdirs @ params["expr"]
    )
    joints = model.J_regressor @ v_shaped
    poses = [
        params["rotation"],
        params["neck_pose"],
        params["jaw_pose"],
        params["eyes_pose"][:3],
        params["eyes_pose"][3:],
    ]
    rotations = [rodrigues(p) for p in poses]
    pose_feature = np.concatenate([(r - np.eye(3)).reshape(-1) for r in rotations[1:]])
    v_posed = v_shaped + (pose_feature @ model.posedirs).reshape(-1, 3)
    world = []
    for j, parent in enumerate(model.parents):
        local = np.eye(4)
        local[:3, :3] = rotations[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
        world.append(local if parent < 0 else world[parent] @ local)
    posed_joints = np.stack([g[:3, 3] for g in world])
    skinning = []
    for j, g in enumerate(world):
        relative = g.copy()
        relative[:3, 3] -= g[:3, :3] @ joints[j]
        skinning.append(relative)
    blended = np.einsum("vj,jab->vab", model.lbs_weights, np.stack(skinning))
    vertices = np.einsum("vab,vb->va", blended[:, :3, :3], v_posed) + blended[:, :3, 3]
    vertices += params["translation"]
    posed_joints += params["translation"]
    tri = vertices[model.faces[model.lmk_faces_idx]]
    landmarks = np.einsum("lk,lkc->lc", model.lmk_bary_coords, tri)
    return vertices, posed_joints, landmarks


def random_params(model: HeadModel, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "shape": rng.normal(0, 1, (batch, model.num_shape)),
        "expr": rng.normal(0, 1, (batch, model.num_expr)),
        "rotation": rng.normal(0, 0.3, (batch, 3)),
        "neck_pose": rng.normal(0, 0.2, (batch, 3)),
        "jaw_pose": np.abs(rng.normal(0, 0.2, (batch, 3))),
        "eyes_pose": rng.normal(0, 0.2, (batch, 6)),
        "translation": rng.normal(0, 0.05, (batch, 3)),
        "static_offset": rng.normal(0, 0.002, (batch, model.num_vertices, 3)),
    }


def check_against_numpy(model: HeadModel, batch: int = 3, seed: int = 0) -> None:
    params = random_params(model, batch, seed)
    layer = FlameLayer(model, dtype=torch.float64)
    out = layer(**{k: torch.as_tensor(v) for k, v in params.items()})
    for b in range(batch):
        vertices, joints, landmarks = numpy_flame(model, {k: v[b] for k, v in params.items()})
        np.testing.assert_allclose(out.vertices[b].numpy(), vertices, atol=1e-10)
        np.testing.assert_allclose(out.joints[b].numpy(), joints, atol=1e-10)
        np.testing.assert_allclose(out.landmarks[b].numpy(), landmarks, atol=1e-10)


def test_forward_equals_numpy_lbs_tiny(tiny: types.SimpleNamespace) -> None:
    check_against_numpy(tiny.model())


def test_forward_equals_numpy_lbs_default_head(default_head: HeadModel) -> None:
    rng = np.random.default_rng(3)
    # the procedural head has zero pose correctives: give it some so they are checked too
    model = dataclasses.replace(
        default_head, posedirs=1e-3 * rng.standard_normal(default_head.posedirs.shape)
    )
    check_against_numpy(model, batch=2, seed=1)


def test_float32_matches_float64_and_defaults_are_zero(tiny: types.SimpleNamespace) -> None:
    model = tiny.model()
    params = {k: torch.as_tensor(v) for k, v in random_params(model, 2, 5).items()}
    out64 = FlameLayer(model, torch.float64)(**params)
    out32 = FlameLayer(model, torch.float32)(**params)
    assert out32.vertices.dtype == torch.float32
    np.testing.assert_allclose(out32.vertices.numpy(), out64.vertices.numpy(), atol=1e-5)
    rest = FlameLayer(model, torch.float64)()
    np.testing.assert_allclose(rest.vertices[0].numpy(), model.v_template, atol=1e-12)
    np.testing.assert_allclose(rest.joints[0].numpy(), model.J_regressor @ model.v_template, atol=1e-12)


def test_shape_can_be_unbatched_and_truncated(tiny: types.SimpleNamespace) -> None:
    model = tiny.model()
    layer = FlameLayer(model, torch.float64)
    shape = torch.tensor([0.5, -1.0, 0.2])
    expr = torch.zeros(4, 2)
    out = layer(shape=shape, expr=expr)
    assert out.vertices.shape == (4, model.num_vertices, 3)
    full = torch.zeros(model.num_shape, dtype=torch.float64)
    full[:3] = shape
    expected = model.v_template + model.shapedirs @ full.numpy()
    np.testing.assert_allclose(out.vertices[2].numpy(), expected, atol=1e-12)
    with pytest.raises(InputError):
        layer(shape=torch.zeros(2, model.num_shape + 1))
    with pytest.raises(InputError):
        layer(expr=torch.zeros(2, 4), jaw_pose=torch.zeros(3, 3))


def test_gradients_match_finite_differences(tiny: types.SimpleNamespace) -> None:
    model = tiny.model(num_shape=3, num_expr=2)
    layer = FlameLayer(model, torch.float64)
    rng = np.random.default_rng(2)
    names = ("shape", "expr", "rotation", "jaw_pose", "eyes_pose", "translation")
    sizes = (3, 2, 3, 3, 6, 3)
    inputs = tuple(torch.tensor(rng.normal(0, 0.3, (1, n)), requires_grad=True) for n in sizes)

    def landmarks(*values: torch.Tensor) -> torch.Tensor:
        return layer(**dict(zip(names, values, strict=True))).landmarks[:, :8]

    assert torch.autograd.gradcheck(landmarks, inputs, eps=1e-6, atol=1e-6, fast_mode=True)
