"""Fast batched FLAME posing for one subject, in numpy (the synth poses ~1000 heads per take).

Same equations as :class:`tracking.flame.FlameLayer` (smplx ``lbs``), specialised to a fixed
``shape``: the shape blend and its joint regression are computed once, the expression blend's
effect on the joints is a precomputed [J, 3, E] matrix, and skinning blends the J transforms per
vertex with one [12, J] x [J, V] matmul, then applies them elementwise (coordinate-major) instead
of V small 4x4 matmuls. ``FlameLayer`` stays the reference; a test checks the two agree.
"""

from __future__ import annotations

import numpy as np

from tracking.head_model import HeadModel


def batch_rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices [N, 3, 3] of axis-angle vectors [N, 3] (smplx's epsilon convention)."""
    angle = np.linalg.norm(axis_angle + 1e-8, axis=1, keepdims=True)
    axis = axis_angle / angle
    cos, sin = np.cos(angle)[:, :, None], np.sin(angle)[:, :, None]
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zeros = np.zeros_like(x)
    skew = np.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], axis=1).reshape(-1, 3, 3)
    return np.eye(3)[None] + sin * skew + (1 - cos) * (skew @ skew)


class SubjectPoser:
    """Vertices [B, V, 3] and 68 landmarks [B, 68, 3] of one subject for per-frame FLAME parameters."""

    def __init__(self, head: HeadModel, shape: np.ndarray):
        shape = np.asarray(shape, np.float64)
        num_shape = head.num_shape
        coefficients = np.zeros(num_shape)
        coefficients[: len(shape)] = shape[:num_shape]
        self.v_shaped = head.v_template + np.einsum("vks,s->vk", head.shapedirs, coefficients)  # [V, 3]
        self.joints_shaped = head.J_regressor @ self.v_shaped  # [J, 3]
        num_v = head.num_vertices
        # coordinate-major layouts ([.., 3, V]) keep numpy's inner loops long
        self.v_shaped_t = np.ascontiguousarray(self.v_shaped.T, np.float32)  # [3, V]
        self.exprdirs_t = (
            head.exprdirs.transpose(2, 1, 0).reshape(-1, 3 * num_v).astype(np.float32)
        )  # [E, 3*V]
        self.joint_exprdirs = np.einsum("jv,vke->jke", head.J_regressor, head.exprdirs)  # [J, 3, E]
        # [(J-1)*9, V*3]; None when the model has no pose correctives (gsbench-head)
        self.posedirs_t = (
            head.posedirs.reshape(-1, num_v, 3).transpose(0, 2, 1).reshape(-1, 3 * num_v).astype(np.float32)
            if np.any(head.posedirs) else None
        )  # fmt: skip
        self.dense_weights = head.lbs_weights.T.astype(np.float32)  # [J, V]
        self.parents = head.parents
        self.faces = head.faces
        self.lmk_faces = head.faces[head.lmk_faces_idx]  # [68, 3]
        self.lmk_bary = head.lmk_bary_coords.astype(np.float32)  # [68, 3]
        self.num_expr = head.num_expr

    def __call__(self, *args: np.ndarray, **kwargs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vertices [B, V, 3] and landmarks [B, 68, 3] float32; the arguments of :meth:`pose_points`."""
        points, landmarks = self.pose_points(*args, **kwargs)
        return np.ascontiguousarray(points.transpose(0, 2, 1)), landmarks

    def pose_points(
        self,
        expr: np.ndarray,  # [B, E'] E' <= E
        rotation: np.ndarray,  # [B, 3]
        neck_pose: np.ndarray,  # [B, 3]
        jaw_pose: np.ndarray,  # [B, 3]
        eyes_pose: np.ndarray,  # [B, 6]
        translation: np.ndarray,  # [B, 3]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coordinate-major vertices [B, 3, V] float32 and landmarks [B, 68, 3] float32."""
        batch = len(rotation)
        full_expr = np.zeros((batch, self.num_expr))
        full_expr[:, : expr.shape[1]] = expr
        num_v = self.v_shaped_t.shape[1]
        v_shaped = self.v_shaped_t[None] + (full_expr.astype(np.float32) @ self.exprdirs_t).reshape(
            batch, 3, num_v
        )
        joints = self.joints_shaped[None] + np.einsum(
            "jke,be->bjk", self.joint_exprdirs, full_expr
        )  # [B, J, 3]
        pose = np.concatenate([rotation, neck_pose, jaw_pose, eyes_pose], axis=1).reshape(-1, 3)
        rot = batch_rodrigues(pose.astype(np.float64)).reshape(batch, -1, 3, 3)  # [B, J, 3, 3]
        v_posed = v_shaped
        if self.posedirs_t is not None:
            pose_feature = (rot[:, 1:] - np.eye(3)).reshape(batch, -1).astype(np.float32)
            v_posed = v_shaped + (pose_feature @ self.posedirs_t).reshape(batch, 3, num_v)

        # rigid chain (smplx batch_rigid_transform)
        num_j = rot.shape[1]
        relative = joints.copy()
        relative[:, 1:] -= joints[:, self.parents[1:]]
        local = np.zeros((batch, num_j, 4, 4))
        local[:, :, :3, :3] = rot
        local[:, :, :3, 3] = relative
        local[:, :, 3, 3] = 1.0
        chain = [local[:, 0]]
        for j in range(1, num_j):
            chain.append(chain[self.parents[j]] @ local[:, j])
        transforms = np.stack(chain, axis=1)  # [B, J, 4, 4]
        transforms[:, :, :3, 3] -= np.einsum("bjkl,bjl->bjk", transforms[:, :, :3, :3], joints)
        # skinning: each vertex's blended transform sum_j w_vj G_j, entry by entry, [B, 12, V]
        blended = (
            transforms[:, :, :3, :].reshape(batch, num_j, 12).transpose(0, 2, 1).reshape(batch * 12, num_j)
        ).astype(np.float32) @ self.dense_weights
        blended = blended.reshape(batch, 12, num_v)
        vertices_t = np.empty_like(v_posed)  # [B, 3, V]
        for k in range(3):
            row = blended[:, 4 * k : 4 * k + 4]
            vertices_t[:, k] = (
                row[:, 0] * v_posed[:, 0] + row[:, 1] * v_posed[:, 1] + row[:, 2] * v_posed[:, 2] + row[:, 3]
            )
        vertices_t += translation[:, :, None].astype(np.float32)
        corners = vertices_t[:, :, self.lmk_faces]  # [B, 3, 68, 3]
        landmarks = np.einsum("bdlk,lk->bld", corners, self.lmk_bary)
        return vertices_t, landmarks.astype(np.float32)
