"""Loading FLAME files: chumpy pickles without chumpy, sparse regressors, embeddings, clear errors."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from gsbench.errors import InputError
from tracking.flame_io import load_head_model, load_landmark_embedding
from tracking.head_model import HeadModel


def _install_fake_chumpy() -> type:
    """A stand-in ``chumpy.ch.Ch`` that pickles like the real one (state dict with ``x``)."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x: np.ndarray):
            self.x = np.asarray(x, np.float64)
            self._dirty_vars = set()
            self._itr = None
            self._depends_on_deps = {}
            self._make_dense = False
            self._make_sparse = False

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch.Ch = Ch
    chumpy.ch = ch
    sys.modules["chumpy"] = chumpy
    sys.modules["chumpy.ch"] = ch
    return Ch


def _write_chumpy_flame(path: Path, arrays: dict[str, np.ndarray]) -> None:
    ch_class = _install_fake_chumpy()
    try:
        data = dict(arrays)
        data["shapedirs"] = ch_class(arrays["shapedirs"])
        data["posedirs"] = ch_class(arrays["posedirs"])
        data["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
        data["bs_style"] = "lbs"
        data["bs_type"] = "lrotmin"
        path.write_bytes(pickle.dumps(data, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def test_chumpy_pickle_loads_without_chumpy(tiny: types.SimpleNamespace, tmp_path: Path) -> None:
    arrays = tiny.flame_arrays(num_shape=300, num_expr=7)
    model_path = tmp_path / "generic_model.pkl"
    _write_chumpy_flame(model_path, arrays)
    assert "chumpy" not in sys.modules
    faces_idx, bary = tiny.embedding(len(arrays["f"]))
    embedding = tmp_path / "flame_static_embedding_68.pkl"
    embedding.write_bytes(pickle.dumps({"lmk_face_idx": faces_idx, "lmk_b_coords": bary}, protocol=2))

    model = load_head_model(model_path)  # finds the embedding beside the model
    num_v = len(arrays["v_template"])
    assert model.num_shape == 300 and model.num_expr == 7
    np.testing.assert_array_equal(model.shapedirs, arrays["shapedirs"][:, :, :300])
    np.testing.assert_array_equal(model.exprdirs, arrays["shapedirs"][:, :, 300:])
    np.testing.assert_array_equal(model.posedirs, arrays["posedirs"].reshape(num_v * 3, 36).T)
    np.testing.assert_array_equal(model.J_regressor, arrays["J_regressor"])
    np.testing.assert_array_equal(model.parents, [-1, 0, 1, 1, 1])
    np.testing.assert_array_equal(model.lmk_faces_idx, faces_idx)
    assert model.faces.dtype == np.int64


def test_chumpy_expression_is_refused_clearly(tiny: types.SimpleNamespace, tmp_path: Path) -> None:
    arrays = tiny.flame_arrays()
    ch_class = _install_fake_chumpy()
    try:
        lazy = ch_class(arrays["shapedirs"])
        del lazy.x  # a chumpy expression node stores terms, not the array
        lazy.a = 1.0
        data = dict(arrays, shapedirs=lazy)
        path = tmp_path / "model.pkl"
        path.write_bytes(pickle.dumps(data, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]
    embedding = tmp_path / "landmark_embedding.npy"
    faces_idx, bary = tiny.embedding(len(arrays["f"]))
    np.save(
        embedding,
        {"full_lmk_faces_idx": faces_idx[None], "full_lmk_bary_coords": bary[None]},
        allow_pickle=True,
    )
    with pytest.raises(InputError, match="chumpy expression"):
        load_head_model(path)


def test_npz_flame_and_deca_embedding(tiny: types.SimpleNamespace, tmp_path: Path) -> None:
    arrays = tiny.flame_arrays(num_shape=300, num_expr=2)
    path = tmp_path / "flame.npz"
    np.savez(path, **arrays)
    faces_idx, bary = tiny.embedding(len(arrays["f"]))
    embedding = tmp_path / "landmark_embedding.npy"
    np.save(
        embedding,
        {
            "full_lmk_faces_idx": faces_idx[None],
            "full_lmk_bary_coords": bary[None],
            "static_lmk_faces_idx": faces_idx[17:],
        },
        allow_pickle=True,
    )
    model = load_head_model(path, landmark_embedding=embedding)
    np.testing.assert_allclose(model.lmk_bary_coords, bary)
    assert model.num_expr == 2


def test_embedding_errors(tiny: types.SimpleNamespace, tmp_path: Path) -> None:
    arrays = tiny.flame_arrays()
    num_faces = len(arrays["f"])
    faces_idx, bary = tiny.embedding(num_faces)
    static51 = tmp_path / "flame_static_embedding.pkl"
    static51.write_bytes(pickle.dumps({"lmk_face_idx": faces_idx[:51], "lmk_b_coords": bary[:51]}))
    with pytest.raises(InputError, match="51-point"):
        load_landmark_embedding(static51, num_faces)
    wrong_model = tmp_path / "other.pkl"
    wrong_model.write_bytes(pickle.dumps({"lmk_face_idx": faces_idx + num_faces, "lmk_b_coords": bary}))
    with pytest.raises(InputError, match="faces"):
        load_landmark_embedding(wrong_model, num_faces)
    (tmp_path / "alone").mkdir()
    model_path = tmp_path / "alone" / "flame.npz"
    np.savez(model_path, **arrays)
    with pytest.raises(InputError, match="landmark embedding"):
        load_head_model(model_path)  # none beside it


def test_wrong_files_raise_input_errors(tmp_path: Path) -> None:
    not_pickle = tmp_path / "model.pkl"
    not_pickle.write_text("hello")
    with pytest.raises(InputError, match="model.pkl"):
        load_head_model(not_pickle)
    not_flame = tmp_path / "other.pkl"
    not_flame.write_bytes(pickle.dumps({"weights": np.zeros(3)}))
    with pytest.raises(InputError, match="not a FLAME model"):
        load_head_model(not_flame)
    with pytest.raises(InputError, match="not found"):
        load_head_model(tmp_path / "missing.pkl")
    with pytest.raises(InputError, match="unknown head model format"):
        (tmp_path / "x.obj").write_text("")
        load_head_model(tmp_path / "x.obj")


def test_head_model_npz_round_trip(tiny: types.SimpleNamespace, tmp_path: Path) -> None:
    model = tiny.model()
    path = tmp_path / "tiny.npz"
    model.save(path)
    loaded = load_head_model(path)
    assert isinstance(loaded, HeadModel) and loaded.name == "tiny"
    for key in (
        "v_template",
        "faces",
        "shapedirs",
        "exprdirs",
        "posedirs",
        "J_regressor",
        "parents",
        "lbs_weights",
        "lmk_faces_idx",
        "lmk_bary_coords",
    ):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(model, key))
