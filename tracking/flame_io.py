"""Read real FLAME model files and landmark embeddings into a :class:`HeadModel`.

Supported model files:

- FLAME 2020 / 2023 ``.pkl`` (``generic_model.pkl``, ``flame2023.pkl``, ...). They were pickled
  under Python 2 with chumpy arrays and a scipy sparse ``J_regressor``. They load here *without*
  chumpy: :class:`_FlameUnpickler` maps every ``chumpy.*`` class to :class:`_ChumpyStandIn`, which
  keeps the pickled state, and the plain array is recovered from the state's ``x`` entry (what a
  basic ``chumpy.ch.Ch`` stores).
- ``.npz`` holding the same keys as the pickle (``v_template``, ``f``, ``shapedirs``, ...), or a
  model written by :meth:`HeadModel.save`.

FLAME keys -> HeadModel: ``f`` -> faces; ``shapedirs [V,3,400]`` -> ``shapedirs [:, :, :300]`` and
``exprdirs [:, :, 300:]`` (as smplx's FLAME); ``posedirs [V,3,36]`` -> ``[36, V*3]``;
``kintree_table[0]`` -> parents; ``weights`` -> lbs_weights.

Landmark embeddings (68 iBUG points, face index + barycentrics):

- ``flame_static_embedding*.pkl`` / ``.npz`` with ``lmk_face_idx`` and ``lmk_b_coords``;
- DECA / VHAP ``landmark_embedding*.npy`` (a pickled dict) with ``full_lmk_faces_idx`` and
  ``full_lmk_bary_coords`` (the first 68 entries are used; VHAP's "with eyes" file appends more).

FLAME's 51-point static embedding has no jaw contour and is refused with a message naming the
68-point files.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse

from gsbench.errors import InputError
from tracking.head_model import NPZ_FORMAT, HeadModel, check_landmark_embedding

# Default 68-point embedding files looked for beside a FLAME model, in this order.
EMBEDDING_CANDIDATES = (
    "landmark_embedding.npy",
    "landmark_embedding_with_eyes.npy",
    "flame_static_embedding_68.pkl",
    "flame_static_embedding.pkl",
)

_FLAME_SHAPE_COMPONENTS = 300  # FLAME 2020/2023: shapedirs[..., :300] shape, [..., 300:] expression


class _ChumpyStandIn:
    """Takes the place of any chumpy class while unpickling; keeps the state for :func:`_to_array`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _ChumpyStandIn:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__.setdefault("_pickled_state", {})

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_pickled_state"] = state if isinstance(state, dict) else {"state": state}


class _FlameUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStandIn,), {"__module__": module})
        return super().find_class(module, name)


def _read_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as handle:
            # latin1: the FLAME pickles were written by Python 2 and hold numpy byte buffers.
            return _FlameUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, ImportError, AttributeError, TypeError) as error:
        raise InputError(
            f"cannot unpickle ({type(error).__name__}: {error})",
            path=path,
            fix="pass an unmodified FLAME 2020/2023 .pkl or a .npz",
        ) from None


def _to_array(value: Any, key: str, path: Path) -> np.ndarray:
    """A plain numpy array from an ndarray, a scipy sparse matrix or a pickled chumpy array."""
    if isinstance(value, _ChumpyStandIn):
        state = value.__dict__.get("_pickled_state", {})
        for field in ("x", "_x"):
            if field in state:
                return _to_array(state[field], key, path)
        raise InputError(
            f"{key!r} is a chumpy expression ({type(value).__name__}), not a stored array",
            path=path,
            fix="export the model to .npz with chumpy installed (np.array(model[key]))",
        )
    if scipy.sparse.issparse(value):
        return np.asarray(value.toarray())
    try:
        return np.asarray(value)
    except Exception as error:  # noqa: BLE001 - any failure here is a malformed file
        raise InputError(f"{key!r} is not an array ({error})", path=path) from None


def _flame_dict_to_model(
    data: dict[str, Any], path: Path, embedding: tuple[np.ndarray, np.ndarray]
) -> HeadModel:
    required = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights")
    missing = [key for key in required if key not in data]
    if missing:
        raise InputError(
            f"not a FLAME model: missing {missing} (has {sorted(data)[:12]})",
            path=path,
            fix="pass FLAME's generic_model.pkl / flame2023.pkl or a gsbench head .npz",
        )
    v_template = _to_array(data["v_template"], "v_template", path).astype(np.float64)
    num_v = v_template.shape[0]
    shapedirs_all = _to_array(data["shapedirs"], "shapedirs", path).astype(np.float64)
    if shapedirs_all.ndim != 3 or shapedirs_all.shape[:2] != (num_v, 3):
        raise InputError(f"shapedirs must be [V={num_v},3,K], got {shapedirs_all.shape}", path=path)
    if "exprdirs" in data:
        shapedirs = shapedirs_all
        exprdirs = _to_array(data["exprdirs"], "exprdirs", path).astype(np.float64)
    elif shapedirs_all.shape[2] > _FLAME_SHAPE_COMPONENTS:
        shapedirs = shapedirs_all[:, :, :_FLAME_SHAPE_COMPONENTS]
        exprdirs = shapedirs_all[:, :, _FLAME_SHAPE_COMPONENTS:]
    else:
        shapedirs = shapedirs_all
        exprdirs = np.zeros((num_v, 3, 0))
    posedirs = _to_array(data["posedirs"], "posedirs", path).astype(np.float64)
    if posedirs.ndim == 3:
        posedirs = posedirs.reshape(-1, posedirs.shape[2]).T  # [V,3,P] -> [P, V*3], as smplx
    kintree = _to_array(data["kintree_table"], "kintree_table", path).astype(np.int64)
    parents = kintree[0].copy()
    parents[0] = -1  # stored as 2**32-1
    model = HeadModel(
        v_template=v_template,
        faces=_to_array(data["f"], "f", path).astype(np.int64),
        shapedirs=np.ascontiguousarray(shapedirs),
        exprdirs=np.ascontiguousarray(exprdirs),
        posedirs=np.ascontiguousarray(posedirs),
        J_regressor=_to_array(data["J_regressor"], "J_regressor", path).astype(np.float64),
        parents=parents,
        lbs_weights=_to_array(data["weights"], "weights", path).astype(np.float64),
        lmk_faces_idx=embedding[0],
        lmk_bary_coords=embedding[1],
        name=path.stem,
    )
    return model.validate(path)


def load_landmark_embedding(path: str | Path, num_faces: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a 68-point embedding -> (``lmk_faces_idx [68] int64``, ``lmk_bary_coords [68,3]``).

    ``num_faces`` (the model's face count) turns an out-of-range index into a clear error.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("landmark embedding file not found", path=path, fix="check the path")
    data: Any
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in npz.files}
    elif path.suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=True, encoding="latin1")
        except (ValueError, OSError, pickle.UnpicklingError) as error:
            raise InputError(f"cannot read .npy ({error})", path=path) from None
        if isinstance(data, np.ndarray) and data.dtype == object and data.shape == ():
            data = data.item()
    else:
        data = _read_pickle(path)
    if not isinstance(data, dict):
        raise InputError(
            f"expected a dict of arrays, got {type(data).__name__}",
            path=path,
            fix="pass landmark_embedding.npy (DECA/VHAP) or a 68-point flame_static_embedding .pkl",
        )
    for face_key, bary_key in (
        ("full_lmk_faces_idx", "full_lmk_bary_coords"),
        ("lmk_face_idx", "lmk_b_coords"),
        ("lmk_faces_idx", "lmk_bary_coords"),
    ):
        if face_key in data and bary_key in data:
            faces_idx = _to_array(data[face_key], face_key, path).astype(np.int64).reshape(-1)
            bary = _to_array(data[bary_key], bary_key, path).astype(np.float64).reshape(-1, 3)
            break
    else:
        raise InputError(
            f"no landmark embedding keys in {sorted(data)}",
            path=path,
            fix="pass landmark_embedding.npy (full_lmk_faces_idx/full_lmk_bary_coords) "
            "or a .pkl with lmk_face_idx/lmk_b_coords",
        )
    if faces_idx.shape[0] == 51:
        raise InputError(
            "this is FLAME's 51-point static embedding (no jaw contour); 68 iBUG points are needed",
            path=path,
            fix="use DECA's landmark_embedding.npy or VHAP's landmark_embedding_with_eyes.npy",
        )
    if faces_idx.shape[0] < 68 or bary.shape[0] != faces_idx.shape[0]:
        raise InputError(
            f"expected >= 68 landmarks, got {faces_idx.shape[0]} faces / {bary.shape[0]} barycentrics",
            path=path,
        )
    faces_idx, bary = faces_idx[:68], bary[:68]
    if num_faces is not None:
        check_landmark_embedding(faces_idx, bary, num_faces, path)
    return faces_idx, bary


def load_head_model(path: str | Path, landmark_embedding: str | Path | None = None) -> HeadModel:
    """Load a FLAME ``.pkl`` / ``.npz`` or a gsbench head ``.npz`` as a :class:`HeadModel`.

    For FLAME files the 68-point ``landmark_embedding`` is required; when it is None the first of
    :data:`EMBEDDING_CANDIDATES` found beside the model is used. A gsbench ``.npz`` carries its own
    embedding unless one is given.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            "head model file not found", path=path, fix="check the path (FLAME .pkl/.npz or gsbench .npz)"
        )
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                data: dict[str, Any] = {key: npz[key] for key in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise InputError(
                f"not a readable .npz ({error})", path=path, fix="pass a FLAME or gsbench .npz"
            ) from None
        if str(data.get("format", "")) == NPZ_FORMAT:
            model = HeadModel.load(path)
            if landmark_embedding is not None:
                faces_idx, bary = load_landmark_embedding(landmark_embedding, len(model.faces))
                model = _replace_embedding(model, faces_idx, bary)
            return model
    elif path.suffix in (".pkl", ".pickle"):
        data = _read_pickle(path)
        if not isinstance(data, dict):
            raise InputError(
                f"expected a FLAME dict, got {type(data).__name__}",
                path=path,
                fix="pass FLAME's generic_model.pkl / flame2023.pkl",
            )
    else:
        raise InputError(f"unknown head model format {path.suffix!r}", path=path, fix="use a .pkl or .npz")
    if "f" not in data:
        raise InputError(
            f"not a FLAME model (keys {sorted(data)[:12]})",
            path=path,
            fix="pass FLAME's generic_model.pkl / flame2023.pkl or a gsbench head .npz",
        )
    num_faces = len(_to_array(data["f"], "f", path))
    if landmark_embedding is None:
        found = [path.parent / name for name in EMBEDDING_CANDIDATES if (path.parent / name).is_file()]
        if not found:
            raise InputError(
                "no 68-point landmark embedding given and none found beside the model "
                f"(looked for {', '.join(EMBEDDING_CANDIDATES)})",
                path=path,
                fix="pass landmark_embedding=... (DECA's landmark_embedding.npy)",
            )
        landmark_embedding = found[0]
    embedding = load_landmark_embedding(landmark_embedding, num_faces)
    return _flame_dict_to_model(data, path, embedding)


def _replace_embedding(model: HeadModel, faces_idx: np.ndarray, bary: np.ndarray) -> HeadModel:
    return dataclasses.replace(model, lmk_faces_idx=faces_idx, lmk_bary_coords=bary).validate()
