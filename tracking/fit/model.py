"""FLAME forward pass restricted to the vertices a landmark term needs.

Fitting thousands of frames evaluates the model hundreds of times; the landmark terms touch only the
vertices of the faces their landmarks sit on (≈200 for 68 points, ≈1000 for 478), so evaluating the
full mesh would waste ~95 % of the work. The restriction is exact:

    J(β, ψ) = J_regressor · (T + S β + E ψ) = J_T + (J_regressor S) β + (J_regressor E) ψ

is precomputed as three small tensors, and blend shapes, pose correctives and skinning are applied
to the chosen rows only. The result equals :class:`tracking.flame.FlameLayer` on those vertices
(tested), with the same parameter names and the same order of operations (static offset before
shaping, translation after skinning).
"""

from __future__ import annotations

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues

from tracking.head_model import HeadModel


class SubsetFlame(torch.nn.Module):
    """Batched FLAME on a subset of vertices, with the subject shape applied once per call."""

    def __init__(
        self,
        head_model: HeadModel,
        vertex_ids: np.ndarray,  # [P] int, the vertices to evaluate
        num_shape: int,
        num_expr: int,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        vertex_ids = np.asarray(vertex_ids, np.int64)
        num_shape = min(num_shape, head_model.num_shape)
        num_expr = min(num_expr, head_model.num_expr)
        self.num_shape, self.num_expr, self.dtype = num_shape, num_expr, dtype
        num_vertices = head_model.num_vertices
        num_joints = head_model.num_joints
        posedirs = head_model.posedirs.reshape((num_joints - 1) * 9, num_vertices, 3)[:, vertex_ids]
        shapedirs = head_model.shapedirs[:, :, :num_shape]
        exprdirs = head_model.exprdirs[:, :, :num_expr]

        def buffer(name: str, value: np.ndarray, dt: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(value)).to(dt), persistent=False)

        buffer("template", head_model.v_template[vertex_ids])  # [P, 3]
        buffer("shapedirs", shapedirs[vertex_ids])  # [P, 3, S]
        buffer("exprdirs", exprdirs[vertex_ids])  # [P, 3, E]
        buffer("posedirs", posedirs.reshape(posedirs.shape[0], -1))  # [(J-1)*9, P*3]
        buffer("lbs_weights", head_model.lbs_weights[vertex_ids])  # [P, J]
        buffer("joint_template", head_model.J_regressor @ head_model.v_template)  # [J, 3]
        buffer("joint_shapedirs", np.einsum("jv,vcs->jcs", head_model.J_regressor, shapedirs))  # [J, 3, S]
        buffer("joint_exprdirs", np.einsum("jv,vcs->jcs", head_model.J_regressor, exprdirs))  # [J, 3, E]
        buffer("parents", head_model.parents, torch.long)

    def forward(
        self,
        shape: torch.Tensor,  # [S']  one subject
        expr: torch.Tensor,  # [B, E']
        rotation: torch.Tensor,  # [B, 3]
        neck_pose: torch.Tensor,  # [B, 3]
        jaw_pose: torch.Tensor,  # [B, 3]
        eyes_pose: torch.Tensor,  # [B, 6]
        translation: torch.Tensor,  # [B, 3]
    ) -> torch.Tensor:  # [B, P, 3]
        batch = expr.shape[0]
        shape = shape[: self.num_shape]
        expr = expr[:, : self.num_expr]
        template = self.template + self.shapedirs[..., : shape.shape[0]] @ shape  # [P, 3]
        num_points, num_joints = template.shape[0], self.joint_template.shape[0]
        exprdirs = self.exprdirs[..., : expr.shape[1]].reshape(num_points * 3, -1)
        v_shaped = template + (expr @ exprdirs.T).reshape(batch, num_points, 3)
        joint_exprdirs = self.joint_exprdirs[..., : expr.shape[1]].reshape(num_joints * 3, -1)
        joints = (
            self.joint_template
            + self.joint_shapedirs[..., : shape.shape[0]] @ shape
            + (expr @ joint_exprdirs.T).reshape(batch, num_joints, 3)
        )  # [B, J, 3]
        full_pose = torch.cat([rotation, neck_pose, jaw_pose, eyes_pose], dim=1)  # [B, 15]
        rot_mats = batch_rodrigues(full_pose.reshape(-1, 3)).reshape(batch, -1, 3, 3)
        identity = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
        pose_feature = (rot_mats[:, 1:] - identity).reshape(batch, -1)
        v_posed = v_shaped + (pose_feature @ self.posedirs).reshape(batch, -1, 3)
        _, transforms = batch_rigid_transform(rot_mats, joints, self.parents, dtype=rot_mats.dtype)
        blended = (self.lbs_weights @ transforms[..., :3, :].reshape(batch, num_joints, 12)).reshape(
            batch, num_points, 3, 4
        )  # [B, P, 3, 4]
        vertices = (blended[..., :3] @ v_posed[..., None])[..., 0] + blended[..., 3]
        return vertices + translation[:, None, :]


def barycentric_points(
    vertices: torch.Tensor,  # [B, P, 3] subset vertices
    local_faces: torch.Tensor,  # [L, 3] long, indices into the subset
    bary: torch.Tensor,  # [L, 3]
) -> torch.Tensor:  # [B, L, 3]
    corners = vertices[:, local_faces]  # [B, L, 3, 3]
    return (corners * bary[None, :, :, None]).sum(dim=2)


def face_normals(vertices: torch.Tensor, local_faces: torch.Tensor) -> torch.Tensor:
    """Unit normals [B, L, 3] of the faces ``local_faces`` (right-hand rule on the vertex order)."""
    corners = vertices[:, local_faces]
    normal = torch.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    return normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-12)


class EmbeddedLandmarks:
    """Landmarks given as (face, barycentric) on a mesh, and the vertex subset they need."""

    def __init__(self, faces: np.ndarray, faces_idx: np.ndarray, bary: np.ndarray):
        self.faces_idx = np.asarray(faces_idx, np.int64)  # [L]
        self.bary = np.asarray(bary, np.float64)  # [L, 3]
        corner_ids = np.asarray(faces, np.int64)[self.faces_idx]  # [L, 3]
        self.vertex_ids, inverse = np.unique(corner_ids, return_inverse=True)
        self.local_faces = inverse.reshape(corner_ids.shape)  # [L, 3] into vertex_ids

    def __len__(self) -> int:
        return len(self.faces_idx)


def posed_vertices(
    head_model: HeadModel,
    params: dict[str, np.ndarray],  # "shape" [S'] and per-frame keys [B, ...]
    dtype: torch.dtype = torch.float64,
) -> np.ndarray:  # [B, V, 3]
    """All vertices of the posed model for a batch of frames (parameters may omit keys: zeros)."""
    num_frames = (
        int(np.shape(params["rotation"])[0]) if "rotation" in params else int(np.shape(params["expr"])[0])
    )
    layer = SubsetFlame(
        head_model, np.arange(head_model.num_vertices), head_model.num_shape, head_model.num_expr, dtype
    )
    sizes = {
        "expr": head_model.num_expr,
        "rotation": 3,
        "neck_pose": 3,
        "jaw_pose": 3,
        "eyes_pose": 6,
        "translation": 3,
    }
    inputs = {
        key: torch.as_tensor(np.asarray(params[key]), dtype=dtype)
        if key in params
        else torch.zeros(num_frames, size, dtype=dtype)
        for key, size in sizes.items()
    }
    shape = torch.as_tensor(np.asarray(params.get("shape", np.zeros(1))), dtype=dtype).reshape(-1)
    with torch.no_grad():
        return layer(shape, **inputs).numpy()
