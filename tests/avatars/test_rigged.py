"""GaussianAvatars binding (avatars.rigged): frames, rigid following, binding-preserving densification."""

from __future__ import annotations

import math

import avatar_support as support
import numpy as np
import pytest
import torch

from avatars.rigged import (
    MeshBinding,
    RiggedGaussians,
    matrix_to_quaternion,
    quaternion_to_matrix,
    triangle_frames,
)
from gsbench.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_rig(head, seed: int = 0, per_face: int = 1) -> RiggedGaussians:
    rig = RiggedGaussians(MeshBinding(head.faces, head.num_vertices), gaussians_per_face=per_face)
    g = torch.Generator().manual_seed(seed)
    n = rig.num_gaussians
    with torch.no_grad():
        rig.params["means"].copy_(0.5 * torch.randn(n, 3, generator=g))
        rig.params["scales"].copy_(0.3 * torch.randn(n, 3, generator=g))
        rig.params["quats"].copy_(torch.randn(n, 4, generator=g))
        rig.params["opacities"].copy_(torch.randn(n, generator=g))
    return rig


def test_triangle_frame_matches_gaussian_avatars_definition():
    vertices = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.5, 1.0, 0.0]])
    frames = triangle_frames(vertices, torch.tensor([[0, 1, 2]]))
    # a0 = x, normal a1 = z (counter-clockwise in xy), a2 = a0 x a1 = -y; k = (2 + |a2.(v2-v0)|) / 2 = 1.5
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    assert torch.allclose(frames.rotation[0], expected, atol=1e-6)
    assert math.isclose(float(frames.scale[0]), 1.5, rel_tol=1e-6)
    assert torch.allclose(frames.origin[0], vertices.mean(0))


def test_frames_are_rotations_and_quaternions_round_trip():
    head = support.sphere_head()
    frames = triangle_frames(torch.tensor(head.v_template, dtype=torch.float64), torch.tensor(head.faces))
    r = frames.rotation
    eye = torch.eye(3, dtype=r.dtype).expand_as(r)
    assert torch.allclose(r.transpose(-1, -2) @ r, eye, atol=1e-9)
    assert torch.allclose(torch.linalg.det(r), torch.ones(len(r), dtype=r.dtype), atol=1e-9)
    q = matrix_to_quaternion(r)
    assert torch.allclose(quaternion_to_matrix(q), r, atol=1e-9)


def _kabsch(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R, t with b ~ a R^T + t."""
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = torch.linalg.svd((a - ca).T @ (b - cb))
    d = torch.sign(torch.linalg.det(vt.T @ u.T))
    rot = vt.T @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=a.dtype)) @ u.T
    return rot, cb - ca @ rot.T


def test_jaw_open_moves_bound_gaussians_rigidly_with_their_triangles():
    from tracking.flame import FlameLayer

    head = support.sphere_head()
    flame = FlameLayer(head, dtype=torch.float64)
    rest = flame().vertices[0]
    opened = flame(jaw_pose=torch.tensor([[0.35, 0.0, 0.0]], dtype=torch.float64)).vertices[0]
    jaw_vertices = head.lbs_weights[:, 2] > 0.999
    assert jaw_vertices.sum() >= 6
    rot, trans = _kabsch(rest[jaw_vertices], opened[jaw_vertices])
    assert torch.allclose(rest[jaw_vertices] @ rot.T + trans, opened[jaw_vertices], atol=1e-9)
    assert float(torch.linalg.matrix_norm(rot - torch.eye(3, dtype=rot.dtype))) > 0.3  # the jaw did move

    rig = random_rig(head, per_face=2).double()
    before, after = rig.world(rest), rig.world(opened)
    faces = torch.as_tensor(head.faces)
    jaw_faces = torch.as_tensor(jaw_vertices)[faces].all(dim=1)
    static_faces = torch.as_tensor(head.lbs_weights[:, 1] > 0.999)[faces].all(dim=1)
    on_jaw, on_static = jaw_faces[rig.binding], static_faces[rig.binding]
    assert on_jaw.sum() > 0 and on_static.sum() > 0
    assert torch.allclose(after.means[on_jaw], before.means[on_jaw] @ rot.T + trans, atol=1e-9)
    r_before = quaternion_to_matrix(before.quats[on_jaw])
    r_after = quaternion_to_matrix(after.quats[on_jaw])
    assert torch.allclose(r_after, rot @ r_before, atol=1e-9)
    assert torch.allclose(after.scales[on_jaw], before.scales[on_jaw], atol=1e-12)
    assert torch.allclose(after.means[on_static], before.means[on_static], atol=1e-12)


def test_densify_and_prune_keep_every_gaussian_bound_and_every_triangle_covered():
    head = support.sphere_head()
    rig = random_rig(head, seed=1)
    optimizer = torch.optim.Adam([{"params": [p], "name": k} for k, p in rig.params.items()], lr=1e-3)
    rest = torch.tensor(head.v_template, dtype=torch.float32)
    rig.world(rest).means.sum().backward()
    optimizer.step()
    g = torch.Generator().manual_seed(2)
    n0 = rig.num_gaussians
    grads = torch.rand(n0, generator=g)
    scales = rig.world(rest).scales.detach()
    threshold = float(scales.max(dim=1).values.median())
    parent_binding = rig.binding.clone()
    cloned, split = rig.densify(grads, 0.5, scales, threshold, g, optimizer)
    assert cloned > 0 and split > 0
    assert rig.num_gaussians == n0 + cloned + split
    rig.check_binding()
    # Children carry their parent's triangle: the per-triangle counts only grew.
    assert (torch.bincount(rig.binding, minlength=len(head.faces)) >= torch.bincount(parent_binding)).all()
    # The optimizer follows the new tensors (a step after densification works and moves them).
    before = rig.params["means"].detach().clone()
    rig.world(rest).means.square().sum().backward()
    optimizer.step()
    assert rig.params["means"].shape == before.shape and not torch.equal(rig.params["means"].detach(), before)
    removed = rig.prune(torch.rand(rig.num_gaussians, generator=g) < 0.7, optimizer)
    assert removed > 0
    rig.check_binding()
    rig.prune(torch.ones(rig.num_gaussians, dtype=torch.bool), optimizer)
    rig.check_binding()
    assert rig.num_gaussians == len(head.faces)  # everything marked: exactly the last one of each face stays


def test_split_offsets_are_in_the_triangle_frame_units():
    """GaussianAvatars' split adds world-scale samples to local positions; ours stays in local units,
    so a child lies about one world standard deviation from its parent (Mahalanobis ~ chi_3)."""
    head = support.sphere_head()
    rig = random_rig(head, seed=3)
    rest = torch.tensor(head.v_template, dtype=torch.float32)
    parent = rig.world(rest)
    n0 = rig.num_gaussians
    g = torch.Generator().manual_seed(4)
    rig.densify(torch.ones(n0), 0.5, parent.scales.detach(), 0.0, g)  # split everything
    child = rig.world(rest)
    kept = rig.num_gaussians - 2 * n0
    assert kept == 0
    parents = torch.arange(n0).repeat(2)
    rotation = quaternion_to_matrix(parent.quats[parents]).detach()
    offset = (child.means - parent.means[parents]).detach()
    local = (rotation.transpose(-1, -2) @ offset[:, :, None])[..., 0] / parent.scales[parents].detach()
    mahalanobis = local.norm(dim=1)
    assert 1.0 < float(mahalanobis.mean()) < 2.2  # chi_3 mean 1.60
    assert torch.allclose(child.scales, parent.scales[parents] / 1.6, rtol=1e-5)


def test_top_k_keeps_exactly_k_and_one_per_triangle():
    head = support.sphere_head()
    rig = random_rig(head, per_face=3)
    score = torch.rand(rig.num_gaussians, generator=torch.Generator().manual_seed(5))
    k = len(head.faces) + 100
    removed = rig.keep_top_k(score, k)
    assert rig.num_gaussians == k and removed == 3 * len(head.faces) - k
    rig.check_binding()
    with pytest.raises(InputError, match="triangles"):
        rig.keep_top_k(score[:k], len(head.faces) - 1)


def test_top_k_keeps_the_highest_scores_beyond_one_per_triangle():
    head = support.sphere_head()
    rig = random_rig(head, per_face=2)
    score = torch.rand(rig.num_gaussians, generator=torch.Generator().manual_seed(6))
    tagged = score.clone()
    with torch.no_grad():
        rig.params["opacities"].copy_(tagged)  # the survivors' scores can be read back from opacity
    k = len(head.faces) + 50
    rig.keep_top_k(score, k)
    kept = rig.params["opacities"].detach()
    forced = set(score.view(len(head.faces), 2).amax(dim=1).tolist())  # binding = arange(F) x 2
    extra = sorted((s for s in score.tolist() if s not in forced), reverse=True)[:50]
    assert sorted(kept.tolist()) == sorted(list(forced) + extra)


def test_regularizers_follow_gaussian_avatars_thresholds():
    head = support.sphere_head()
    rig = RiggedGaussians(MeshBinding(head.faces, head.num_vertices))
    position, scaling = (float(x.detach()) for x in rig.regularizers())
    assert position == 0.0 and scaling == pytest.approx(math.sqrt(3) * 0.4)  # exp(0) = 1 > 0.6
    with torch.no_grad():
        rig.params["means"][:, 0] = 3.0
        rig.params["scales"].fill_(math.log(0.5))
    position, scaling = (float(x.detach()) for x in rig.regularizers())
    assert position == pytest.approx(2.0) and scaling == 0.0
    assert np.isfinite(float(rig.regularizers(torch.zeros(rig.num_gaussians, dtype=torch.bool))[0].detach()))
