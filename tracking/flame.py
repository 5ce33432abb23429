"""FLAME forward pass (Li et al. 2017, "Learning a model of facial shape and expression from 4D scans").

:class:`FlameLayer` wraps smplx's ``lbs`` so a real FLAME model and ``gsbench-head`` run through the
same code. Parameter names and shapes follow GaussianAvatars / VHAP:

    shape [B,S]  expr [B,E]  rotation [B,3]  neck_pose [B,3]  jaw_pose [B,3]  eyes_pose [B,6]
    translation [B,3]  static_offset [V,3] | [B,V,3]

Poses are axis-angle. ``rotation`` is the global joint's rotation (joint 0); ``eyes_pose`` is
(left eye, right eye). ``static_offset`` is added to the template before shaping and skinning, as
GaussianAvatars does, so joints follow it. ``translation`` is added after skinning.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from smplx.lbs import lbs, vertices2landmarks

from gsbench.errors import InputError
from tracking.head_model import HeadModel


class FlameOutput(NamedTuple):
    vertices: torch.Tensor  # [B, V, 3]
    joints: torch.Tensor  # [B, J, 3]
    landmarks: torch.Tensor  # [B, 68, 3]


class FlameLayer(torch.nn.Module):
    """Differentiable, batched FLAME-format forward pass for a :class:`HeadModel`.

    Shape and expression arguments may have fewer columns than the model (the missing ones are
    zero, as smplx's ``num_betas``); ``shape`` may also be one unbatched row ``[S]`` shared by the
    batch. Any argument left out is zero.
    """

    def __init__(self, head_model: HeadModel, dtype: torch.dtype = torch.float32):
        super().__init__()
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"FlameLayer dtype must be float32 or float64, got {dtype}")
        self.head_model_name = head_model.name
        self.num_shape = head_model.num_shape
        self.num_expr = head_model.num_expr
        self.num_vertices = head_model.num_vertices
        self.dtype = dtype

        def buffer(name: str, value: np.ndarray, dt: torch.dtype = dtype) -> None:
            self.register_buffer(name, torch.as_tensor(np.ascontiguousarray(value)).to(dt), persistent=False)

        buffer("v_template", head_model.v_template)
        # One blend-shape matrix [V, 3, S+E]: betas = [shape, expr] as smplx's FLAME does.
        buffer("shapedirs", np.concatenate([head_model.shapedirs, head_model.exprdirs], axis=2))
        buffer("posedirs", head_model.posedirs)
        buffer("J_regressor", head_model.J_regressor)
        buffer("lbs_weights", head_model.lbs_weights)
        buffer("parents", head_model.parents, torch.long)
        buffer("faces", head_model.faces, torch.long)
        buffer("lmk_faces_idx", head_model.lmk_faces_idx, torch.long)
        buffer("lmk_bary_coords", head_model.lmk_bary_coords)

    def forward(
        self,
        shape: torch.Tensor | None = None,  # [B, S'] or [S'], S' <= S
        expr: torch.Tensor | None = None,  # [B, E'], E' <= E
        rotation: torch.Tensor | None = None,  # [B, 3]
        neck_pose: torch.Tensor | None = None,  # [B, 3]
        jaw_pose: torch.Tensor | None = None,  # [B, 3]
        eyes_pose: torch.Tensor | None = None,  # [B, 6]
        translation: torch.Tensor | None = None,  # [B, 3]
        static_offset: torch.Tensor | None = None,  # [V, 3] or [B, V, 3]
    ) -> FlameOutput:
        batch_size = self._batch_size(
            shape, expr, rotation, neck_pose, jaw_pose, eyes_pose, translation, static_offset
        )
        betas = torch.cat(
            [
                self._coefficients(shape, "shape", self.num_shape, batch_size),
                self._coefficients(expr, "expr", self.num_expr, batch_size),
            ],
            dim=1,
        )
        full_pose = torch.cat(
            [
                self._vector(rotation, "rotation", 3, batch_size),
                self._vector(neck_pose, "neck_pose", 3, batch_size),
                self._vector(jaw_pose, "jaw_pose", 3, batch_size),
                self._vector(eyes_pose, "eyes_pose", 6, batch_size),
            ],
            dim=1,
        )  # [B, 15]
        template = self.v_template.unsqueeze(0).expand(batch_size, -1, -1)
        if static_offset is not None:
            static_offset = static_offset.to(self.dtype)
            if static_offset.shape[-2:] != (self.num_vertices, 3):
                raise InputError(
                    f"static_offset must be [V={self.num_vertices},3] or [B,V,3], "
                    f"got {tuple(static_offset.shape)}"
                )
            template = template + static_offset
        vertices, joints = lbs(
            betas,
            full_pose,
            template,
            self.shapedirs,
            self.posedirs,
            self.J_regressor,
            self.parents,
            self.lbs_weights,
        )
        if translation is not None:
            offset = self._vector(translation, "translation", 3, batch_size).unsqueeze(1)
            vertices = vertices + offset
            joints = joints + offset
        landmarks = vertices2landmarks(
            vertices.contiguous(),
            self.faces,
            self.lmk_faces_idx.unsqueeze(0).repeat(batch_size, 1),
            self.lmk_bary_coords.unsqueeze(0).repeat(batch_size, 1, 1),
        )
        return FlameOutput(vertices=vertices, joints=joints, landmarks=landmarks)

    def _batch_size(self, *tensors: torch.Tensor | None) -> int:
        sizes = set()
        for index, tensor in enumerate(tensors):
            if tensor is None:
                continue
            unbatched_ndim = 2 if index == 7 else 1  # static_offset [V,3]; others [K]
            if tensor.ndim > unbatched_ndim:
                sizes.add(int(tensor.shape[0]))
        if len(sizes) > 1:
            raise InputError(f"FLAME parameters disagree on the batch size: {sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def _coefficients(
        self, value: torch.Tensor | None, name: str, size: int, batch_size: int
    ) -> torch.Tensor:
        if value is None:
            return self.v_template.new_zeros(batch_size, size)
        value = value.to(self.dtype)
        if value.ndim == 1:
            value = value.unsqueeze(0).expand(batch_size, -1)
        if value.ndim != 2 or value.shape[0] != batch_size or value.shape[1] > size:
            raise InputError(f"{name} must be [B,<={size}], got {tuple(value.shape)} (model has {size})")
        if value.shape[1] < size:
            value = torch.nn.functional.pad(value, (0, size - value.shape[1]))
        return value

    def _vector(self, value: torch.Tensor | None, name: str, size: int, batch_size: int) -> torch.Tensor:
        if value is None:
            return self.v_template.new_zeros(batch_size, size)
        value = value.to(self.dtype)
        if value.ndim == 1:
            value = value.unsqueeze(0).expand(batch_size, -1)
        if value.shape != (batch_size, size):
            raise InputError(f"{name} must be [B={batch_size},{size}], got {tuple(value.shape)}")
        return value
