"""Gaussians rigged to a FLAME-format mesh, as GaussianAvatars does (Qian et al. 2024, Sec. 3.2).

Every Gaussian has a parent triangle (``binding``). Its position, rotation and scale are stored in that
triangle's local frame, so the Gaussians follow the mesh when FLAME deforms it. The frame of triangle
(v0, v1, v2) is GaussianAvatars' (``utils/graphics_utils.py: compute_face_orientation``)::

    a0 = norm(v1 - v0)
    a1 = norm(a0 x (v2 - v0))            # the normal
    a2 = -norm(a1 x a0)
    R  = [a0 a1 a2]                      # columns; det R = +1
    k  = (|v1 - v0| + |a2 . (v2 - v0)|) / 2
    T  = (v0 + v1 + v2) / 3

and a Gaussian with local (mu', s', q') is, in the world (GaussianAvatars Eqs. 1-3)::

    mu = k R mu' + T        s = k exp(s')        q = q(R) (x) normalize(q')

Densification (3DGS clone/split on the view-space positional gradient) and pruning inherit the binding:
a child gets its parent's triangle, and pruning never removes the last Gaussian of a triangle, so every
triangle keeps at least one Gaussian. GaussianAvatars' split samples the new offsets with the *world*
scale and adds them to the *local* position (a unit mismatch); here they are sampled in the local frame
(local scale, local rotation), which is the same displacement in the world as 3DGS intends.

Regularizers (GaussianAvatars ``train.py``, defaults of ``arguments/__init__.py``), on visible Gaussians,
in triangle units::

    L_position = mean(relu(|mu'| - 1))           lambda_xyz = 1e-2, threshold_xyz = 1
    L_scaling  = mean(|relu(exp(s') - 0.6)|)     lambda_scale = 1, threshold_scale = 0.6

Meshes may carry extra vertices that are midpoints of vertex pairs (``MeshBinding.midpoint_edges``): a
subdivided triangle's vertices follow the deformed mesh exactly, because the midpoint of a deformed edge
is the mean of its deformed ends. GaussianSpeech's mouth subdivision uses this.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import Tensor

from avatars.gaussian_params import GaussianParameters
from gsbench.errors import InputError


def _normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)


@dataclasses.dataclass
class TriangleFrames:
    """Per-triangle frame of GaussianAvatars. Leading batch dimensions ``...`` as the vertices'."""

    origin: Tensor  # [..., F, 3] centroid T
    rotation: Tensor  # [..., F, 3, 3] R = [a0 a1 a2] (columns)
    scale: Tensor  # [..., F] k


def triangle_frames(vertices: Tensor, faces: Tensor) -> TriangleFrames:
    """Frames of every triangle of ``vertices`` [..., V, 3] with ``faces`` [F, 3] (see module docstring)."""
    v0 = vertices[..., faces[:, 0], :]
    v1 = vertices[..., faces[:, 1], :]
    v2 = vertices[..., faces[:, 2], :]
    a0 = _normalize(v1 - v0)
    a1 = _normalize(torch.cross(a0, v2 - v0, dim=-1))
    a2 = -_normalize(torch.cross(a1, a0, dim=-1))
    rotation = torch.stack([a0, a1, a2], dim=-1)
    scale = ((v1 - v0).norm(dim=-1) + (a2 * (v2 - v0)).sum(-1).abs()) / 2
    origin = (v0 + v1 + v2) / 3
    return TriangleFrames(origin=origin, rotation=rotation, scale=scale)


def quaternion_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product of wxyz quaternions [..., 4]."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] of wxyz quaternions [..., 4] (normalized here)."""
    w, x, y, z = _normalize(q).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))  # fmt: skip


def matrix_to_quaternion(matrix: Tensor) -> Tensor:
    """wxyz unit quaternions [..., 4] of rotation matrices [..., 3, 3] (Shepperd's method: of the four
    algebraically equal candidates, take the one with the largest, best-conditioned denominator)."""
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    candidates_sq = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], dim=-1
    )
    root = candidates_sq.clamp(min=1e-12).sqrt()  # 2|w|, 2|x|, 2|y|, 2|z|
    r21_12 = m[..., 2, 1] - m[..., 1, 2]
    r02_20 = m[..., 0, 2] - m[..., 2, 0]
    r10_01 = m[..., 1, 0] - m[..., 0, 1]
    r10p01 = m[..., 1, 0] + m[..., 0, 1]
    r02p20 = m[..., 0, 2] + m[..., 2, 0]
    r21p12 = m[..., 2, 1] + m[..., 1, 2]
    q_w = torch.stack([root[..., 0] ** 2, r21_12, r02_20, r10_01], -1) / (2 * root[..., 0:1])
    q_x = torch.stack([r21_12, root[..., 1] ** 2, r10p01, r02p20], -1) / (2 * root[..., 1:2])
    q_y = torch.stack([r02_20, r10p01, root[..., 2] ** 2, r21p12], -1) / (2 * root[..., 2:3])
    q_z = torch.stack([r10_01, r02p20, r21p12, root[..., 3] ** 2], -1) / (2 * root[..., 3:4])
    all_q = torch.stack([q_w, q_x, q_y, q_z], dim=-2)  # [..., 4 candidates, 4]
    best = candidates_sq.argmax(dim=-1)
    q = torch.gather(all_q, -2, best[..., None, None].expand(best.shape + (1, 4))).squeeze(-2)
    return _normalize(q)


@dataclasses.dataclass(frozen=True)
class MeshBinding:
    """The triangles Gaussians bind to: ``faces`` index the model's V vertices followed by M extra
    vertices, extra vertex j being the midpoint of ``midpoint_edges[j]`` (empty without subdivision)."""

    faces: np.ndarray  # [F, 3] int64 into V + M vertices
    num_vertices: int  # V, the head model's
    midpoint_edges: np.ndarray = dataclasses.field(  # [M, 2]
        default_factory=lambda: np.zeros((0, 2), np.int64)
    )

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def extend(self, vertices: Tensor) -> Tensor:
        """Model vertices [..., V, 3] -> the binding's vertices [..., V + M, 3]."""
        if vertices.shape[-2] != self.num_vertices:
            raise InputError(
                f"the binding expects {self.num_vertices} mesh vertices, got {vertices.shape[-2]}",
                fix="drive the avatar with the head model it was built on",
            )
        if len(self.midpoint_edges) == 0:
            return vertices
        edges = torch.as_tensor(self.midpoint_edges, device=vertices.device)
        mids = 0.5 * (vertices[..., edges[:, 0], :] + vertices[..., edges[:, 1], :])
        return torch.cat([vertices, mids], dim=-2)

    def frames(self, vertices: Tensor) -> TriangleFrames:
        faces = torch.as_tensor(self.faces, device=vertices.device)
        return triangle_frames(self.extend(vertices), faces)


@dataclasses.dataclass
class WorldGaussians:
    """Activated world-space Gaussians, ready for ``avatars.render.rasterize``."""

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] wxyz
    scales: Tensor  # [N, 3]
    opacities: Tensor  # [N]


def inverse_sigmoid(x: float | Tensor) -> Tensor:
    x = torch.as_tensor(x, dtype=torch.float32)
    return torch.log(x / (1 - x))


class RiggedGaussians(GaussianParameters):
    """Per-Gaussian parameters bound to triangles of a :class:`MeshBinding`.

    ``params`` holds the shared parameter set of :mod:`avatars.gaussian_params`, here local to the parent
    triangle (mu', s', q' above): ``means [N,3]``, ``scales [N,3]`` log, ``quats [N,4]`` wxyz unnormalized,
    ``opacities [N]`` logit, plus any per-Gaussian appearance a model adds with :meth:`add_param` (e.g. a
    colour latent); densification and pruning apply to all of them alike. ``binding [N]`` is each
    Gaussian's triangle.
    """

    def __init__(
        self,
        binding: MeshBinding,
        gaussians_per_face: int = 1,
        init_opacity: float = 0.1,
        init_scale: float = 1.0,
    ):
        num = binding.num_faces * gaussians_per_face
        # GaussianAvatars init: at the triangle centre, local scale 1, identity rotation, opacity 0.1.
        super().__init__(
            means=torch.zeros(num, 3),
            scales=torch.full((num, 3), math.log(init_scale)),
            quats=torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(num, 1),
            opacities=inverse_sigmoid(init_opacity).repeat(num),
        )
        self.mesh = binding
        self.register_buffer("binding", torch.arange(binding.num_faces).repeat_interleave(gaussians_per_face))

    def _select_buffers(self, index: Tensor) -> None:
        self.binding = self.binding[index]

    def world(self, vertices: Tensor) -> WorldGaussians:
        """World-space Gaussians for model vertices [V, 3] (GaussianAvatars Eqs. 1-3)."""
        frames = self.mesh.frames(vertices)
        return self.world_from_frames(frames)

    def world_from_frames(self, frames: TriangleFrames) -> WorldGaussians:
        b = self.binding
        rotation, scale, origin = frames.rotation[b], frames.scale[b], frames.origin[b]
        means = scale[:, None] * (rotation @ self.params["means"][:, :, None])[..., 0] + origin
        scales = scale[:, None] * torch.exp(self.params["scales"])
        quats = quaternion_multiply(matrix_to_quaternion(rotation), _normalize(self.params["quats"]))
        return WorldGaussians(means, quats, scales, torch.sigmoid(self.params["opacities"]))

    def regularizers(
        self, visible: Tensor | None = None, threshold_xyz: float = 1.0, threshold_scale: float = 0.6
    ) -> tuple[Tensor, Tensor]:
        """(L_position, L_scaling) of GaussianAvatars on the ``visible`` [N] Gaussians (all if None)."""
        xyz, log_scale = self.params["means"], self.params["scales"]
        if visible is not None:
            xyz, log_scale = xyz[visible], log_scale[visible]
        if xyz.shape[0] == 0:
            zero = self.params["means"].sum() * 0
            return zero, zero
        position = torch.relu(xyz.norm(dim=1) - threshold_xyz).mean()
        scaling = torch.relu(torch.exp(log_scale) - threshold_scale).norm(dim=1).mean()
        return position, scaling

    # --- densification and pruning (3DGS rules, binding inherited) ------------------------------------

    def densify(
        self,
        grad_avg: Tensor,
        grad_threshold: float,
        world_scales: Tensor,
        split_scale_threshold: float,
        generator: torch.Generator,
        optimizer: torch.optim.Optimizer | None = None,
        split_count: int = 2,
    ) -> tuple[int, int]:
        """3DGS densification (``densify_and_clone`` + ``densify_and_split``) in the triangle frames.

        grad_avg [N]: mean view-space positional gradient norm; world_scales [N, 3]: current world scales.
        Gaussians over the gradient threshold are cloned when small (max world scale <=
        ``split_scale_threshold``, i.e. percent_dense x scene extent) and split into ``split_count``
        when large; children inherit the parent's triangle. Returns (#cloned, #split).
        """
        n = self.num_gaussians
        selected = grad_avg >= grad_threshold
        large = world_scales.max(dim=1).values > split_scale_threshold
        clone = selected & ~large
        split = selected & large
        clone_idx = clone.nonzero()[:, 0]
        split_idx = split.nonzero()[:, 0]
        keep_idx = (~split).nonzero()[:, 0]
        # Split: sample in the local frame (local std, local rotation) and add to the local position.
        local_std = torch.exp(self.params["scales"].detach()[split_idx]).repeat(split_count, 1)
        samples = torch.randn(local_std.shape, generator=generator) * local_std
        rot = quaternion_to_matrix(self.params["quats"].detach()[split_idx]).repeat(split_count, 1, 1)
        parent = split_idx.repeat(split_count)
        new_xyz = (rot @ samples[:, :, None])[..., 0] + self.params["means"].detach()[parent]
        # 3DGS divides the scale by 0.8 * N on split.
        new_scale = self.params["scales"].detach()[parent] - math.log(0.8 * split_count)
        index = torch.cat([keep_idx, clone_idx, parent])
        new_rows = torch.zeros(index.shape[0], dtype=torch.bool)
        new_rows[keep_idx.shape[0] :] = True
        values = {}
        for name, children in (("means", new_xyz), ("scales", new_scale)):
            base = self.params[name].detach()[torch.cat([keep_idx, clone_idx])]
            values[name] = torch.cat([base, children])
        self.select(index, optimizer, new_rows, values)
        assert self.num_gaussians == n + clone_idx.shape[0] + (split_count - 1) * split_idx.shape[0]
        return int(clone_idx.shape[0]), int(split_idx.shape[0])

    def prune(self, remove: Tensor, optimizer: torch.optim.Optimizer | None = None) -> int:
        """Remove the Gaussians in ``remove`` [N] bool, except the last one of any triangle (the one of
        highest opacity among those marked is kept). Returns the number removed."""
        remove = remove.clone()
        keep = ~remove
        faces_with_survivor = torch.zeros(self.mesh.num_faces, dtype=torch.bool)
        faces_with_survivor[self.binding[keep]] = True
        orphan_faces = ~faces_with_survivor
        if orphan_faces.any():
            # Per orphaned triangle, rescue its most opaque Gaussian.
            opacity = self.params["opacities"].detach()
            candidates = remove & orphan_faces[self.binding]
            order = torch.argsort(opacity[candidates], descending=True)
            cand_idx = candidates.nonzero()[:, 0][order]
            faces = self.binding[cand_idx]
            first = torch.ones_like(faces, dtype=torch.bool)
            sorted_faces, perm = torch.sort(faces, stable=True)
            first_sorted = torch.ones_like(sorted_faces, dtype=torch.bool)
            first_sorted[1:] = sorted_faces[1:] != sorted_faces[:-1]
            first[perm] = first_sorted
            remove[cand_idx[first]] = False
        keep_idx = (~remove).nonzero()[:, 0]
        removed = self.num_gaussians - keep_idx.shape[0]
        if removed:
            self.select(keep_idx, optimizer)
        return removed

    def keep_top_k(self, score: Tensor, k: int, optimizer: torch.optim.Optimizer | None = None) -> int:
        """Keep exactly ``min(k, N)`` Gaussians: the best-scoring one of every triangle, then the highest
        remaining scores (GaussianSpeech's volume-based pruning with GaussianAvatars' rule that no
        triangle loses its last Gaussian). Needs k >= number of triangles. Returns the number removed."""
        n = self.num_gaussians
        if k >= n:
            return 0
        if k < self.mesh.num_faces:
            raise InputError(
                f"top-k pruning to {k} Gaussians cannot keep one on each of {self.mesh.num_faces} triangles",
                fix="raise top_k to at least the number of triangles",
            )
        order = torch.argsort(score, descending=True, stable=True)
        faces = self.binding[order]
        seen = torch.zeros(self.mesh.num_faces, dtype=torch.bool)
        # First occurrence of each triangle in score order = its best Gaussian.
        sorted_faces, perm = torch.sort(faces, stable=True)
        first_sorted = torch.ones_like(sorted_faces, dtype=torch.bool)
        first_sorted[1:] = sorted_faces[1:] != sorted_faces[:-1]
        is_best = torch.zeros_like(first_sorted)
        is_best[perm] = first_sorted
        seen[faces[is_best]] = True
        best_idx = order[is_best]
        rest_idx = order[~is_best][: k - best_idx.shape[0]]
        keep = torch.zeros(n, dtype=torch.bool)
        keep[best_idx] = True
        keep[rest_idx] = True
        keep_idx = keep.nonzero()[:, 0]
        self.select(keep_idx, optimizer)
        return n - int(keep_idx.shape[0])

    def reset_opacity(self, value: float = 0.01, optimizer: torch.optim.Optimizer | None = None) -> None:
        """3DGS opacity reset: opacities capped at ``value`` (0.01), Adam moments of opacity cleared."""
        capped = torch.minimum(self.params["opacities"].detach(), inverse_sigmoid(value))
        self.reset_param("opacities", capped, optimizer)

    def check_binding(self) -> None:
        """Raise AssertionError unless every Gaussian is bound to a valid triangle and every triangle
        has at least one Gaussian."""
        assert self.binding.dtype == torch.int64
        assert int(self.binding.min()) >= 0 and int(self.binding.max()) < self.mesh.num_faces
        counts = torch.bincount(self.binding, minlength=self.mesh.num_faces)
        assert bool((counts > 0).all()), "a triangle lost its last Gaussian"
        for value in self.params.values():
            assert value.shape[0] == self.num_gaussians
