"""Shared fixtures of the tracking tests: one ``gsbench-head`` build per session, and ``tiny``: a small
random FLAME-layout model (a 5-joint chain over a perturbed sphere) for fast tests."""

from __future__ import annotations

import types

import numpy as np
import pytest

from tracking.head import build_default_head
from tracking.head_model import HeadModel


@pytest.fixture(scope="session")
def default_head() -> HeadModel:
    return build_default_head(seed=0)


def tiny_flame_arrays(seed: int = 0, num_shape: int = 6, num_expr: int = 4) -> dict[str, np.ndarray]:
    """Arrays named as in FLAME's pickle (``f``, ``weights``, ``kintree_table``, stacked shapedirs)."""
    rng = np.random.default_rng(seed)
    lat, lon = 8, 10
    theta = np.linspace(0.2, np.pi - 0.2, lat)
    phi = np.linspace(0, 2 * np.pi, lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    v = 0.1 * np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    v += 0.003 * rng.standard_normal(v.shape)
    faces = []
    for i in range(lat - 1):
        for j in range(lon):
            a, b = i * lon + j, i * lon + (j + 1) % lon
            c, d = (i + 1) * lon + (j + 1) % lon, (i + 1) * lon + j
            faces += [[a, d, c], [a, c, b]]
    num_v = len(v)
    weights = rng.random((num_v, 5)) ** 3
    weights /= weights.sum(axis=1, keepdims=True)
    regressor = rng.random((5, num_v)) * (rng.random((5, num_v)) < 0.2)
    regressor /= regressor.sum(axis=1, keepdims=True)
    kintree = np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.uint32)
    return {
        "v_template": v,
        "f": np.asarray(faces, np.uint32),
        "shapedirs": 0.01 * rng.standard_normal((num_v, 3, num_shape + num_expr)),
        "posedirs": 0.005 * rng.standard_normal((num_v, 3, 36)),
        "J_regressor": regressor,
        "kintree_table": kintree,
        "weights": weights,
    }


def tiny_embedding(num_faces: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    bary = rng.random((68, 3))
    return rng.integers(0, num_faces, 68), bary / bary.sum(axis=1, keepdims=True)


def tiny_model(seed: int = 0, num_shape: int = 6, num_expr: int = 4) -> HeadModel:
    arrays = tiny_flame_arrays(seed, num_shape, num_expr)
    faces_idx, bary = tiny_embedding(len(arrays["f"]))
    parents = arrays["kintree_table"][0].astype(np.int64)
    parents[0] = -1
    return HeadModel(
        v_template=arrays["v_template"],
        faces=arrays["f"].astype(np.int64),
        shapedirs=arrays["shapedirs"][:, :, :num_shape],
        exprdirs=arrays["shapedirs"][:, :, num_shape:],
        posedirs=arrays["posedirs"].reshape(-1, 36).T.copy(),
        J_regressor=arrays["J_regressor"],
        parents=parents,
        lbs_weights=arrays["weights"],
        lmk_faces_idx=faces_idx,
        lmk_bary_coords=bary,
        name="tiny",
    ).validate()


@pytest.fixture
def tiny() -> types.SimpleNamespace:
    """``tiny.flame_arrays(...)``, ``tiny.embedding(num_faces)``, ``tiny.model(...)``."""
    return types.SimpleNamespace(flame_arrays=tiny_flame_arrays, embedding=tiny_embedding, model=tiny_model)
