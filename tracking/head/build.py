"""Assemble ``gsbench-head``: geometry, rig, bases, landmarks, regions, texture -> :class:`HeadModel`.

``posedirs`` are zeros: the procedural head has no learned pose correctives; the jaw-opening
deformation comes from the harmonic skinning weights alone (see :mod:`tracking.head.rig`).
"""

from __future__ import annotations

import numpy as np

from tracking.head import layout as L
from tracking.head.bases import expression_fields, orthogonal_basis, shape_fields
from tracking.head.geometry import HeadGeometry, build_geometry, fissure_signed_distance
from tracking.head.ibug68 import landmark_embedding
from tracking.head.rig import PARENTS, joint_regressor, skinning_weights
from tracking.head.texture import _brow_mask, _hairline, _lip_mask, build_texture
from tracking.head_model import REGIONS, HeadModel

NAME = "gsbench-head"


def vertex_regions(geometry: HeadGeometry, seed: int) -> np.ndarray:
    """Per-vertex region codes (:data:`tracking.head_model.REGIONS`)."""
    regions = np.full(len(geometry.vertices), REGIONS["skin"], np.int8)
    head = geometry.parts["head"].vertices
    p = geometry.vertices[head]
    rng = np.random.default_rng([seed, 7])
    hair = _hairline(p[:, None, :], rng)[:, 0] > 0.5
    brows = _brow_mask(p[:, None, :], rng)[:, 0] > 0.3
    lips = _lip_mask(p[:, None, :])[:, 0] > 0.5
    neck = (p[:, 1] < L.CHIN_Y - 0.012) | ((p[:, 1] < L.MOUTH_Y - 0.03) & (p[:, 2] < 0.0))
    hidden_lid = np.zeros(len(p), bool)
    for side in (-1.0, 1.0):
        hidden_lid |= (fissure_signed_distance(p, side) < 0) & (p[:, 2] > 0.05)
    head_regions = regions[head]
    head_regions[neck & ~hair] = REGIONS["neck"]
    head_regions[hair] = REGIONS["scalp_hair"]
    head_regions[brows] = REGIONS["eyebrows"]
    head_regions[lips] = REGIONS["lips"]
    regions[head] = head_regions
    regions[geometry.slit_copies] = REGIONS["lips"]
    for part in ("left_eye", "right_eye"):
        regions[geometry.parts[part].vertices] = REGIONS["eyes"]
    for part in ("upper_teeth", "lower_teeth"):
        regions[geometry.parts[part].vertices] = REGIONS["teeth"]
    regions[geometry.parts["mouth_interior"].vertices] = REGIONS["mouth_interior"]
    return regions


def build_default_head(seed: int = 0) -> HeadModel:
    """Build ``gsbench-head`` procedurally. The same seed gives identical arrays.

    The seed drives the skin/hair/iris texture noise and four random smooth identity components of
    the shape basis; the template geometry, rig, expression basis and landmarks do not depend on it.
    """
    geometry = build_geometry()
    shapedirs, shape_names = orthogonal_basis(shape_fields(geometry, seed), geometry)
    exprdirs, expr_names = orthogonal_basis(expression_fields(geometry), geometry)
    lmk_faces_idx, lmk_bary_coords = landmark_embedding(geometry)
    texture, wrinkle_maps = build_texture(geometry, seed)
    num_vertices = len(geometry.vertices)
    model = HeadModel(
        v_template=geometry.vertices.astype(np.float64),
        faces=geometry.faces.astype(np.int64),
        shapedirs=shapedirs,
        exprdirs=exprdirs,
        posedirs=np.zeros((4 * 9, num_vertices * 3)),
        J_regressor=joint_regressor(geometry),
        parents=PARENTS.copy(),
        lbs_weights=skinning_weights(geometry),
        lmk_faces_idx=lmk_faces_idx.astype(np.int64),
        lmk_bary_coords=lmk_bary_coords,
        uvs=geometry.uvs.astype(np.float64),
        uv_faces=geometry.uv_faces.astype(np.int64),
        texture=texture,
        wrinkle_maps=wrinkle_maps,
        vertex_regions=vertex_regions(geometry, seed),
        name=NAME,
        shape_names=shape_names,
        expr_names=expr_names,
    )
    return model.validate()
