"""The head model container shared by real FLAME and the procedural ``gsbench-head``.

A :class:`HeadModel` holds plain numpy arrays in the FLAME layout (names as in FLAME's pickle and
in smplx), so the same forward pass (:class:`tracking.flame.FlameLayer`) runs on both:

    v_shaped = v_template + shapedirs · shape + exprdirs · expr            # FLAME Eq. 2 (B_S + B_E)
    J        = J_regressor · v_shaped
    v_posed  = v_shaped + posedirs · (R(θ)[1:] - I)                       # pose correctives B_P
    v        = Σ_j lbs_weights[:, j] · G_j(θ, J) · v_posed                # linear blend skinning

Joints (J = 5, FLAME order): 0 global, 1 neck, 2 jaw, 3 left eye, 4 right eye; ``parents[0] = -1``.

Canonical frame (FLAME's): metres, y up, +z out of the face toward a camera in front of it,
+x toward the subject's left (the viewer's right).
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import numpy as np

from gsbench.errors import InputError
from gsbench.io import save_npz

# Per-vertex region codes (``HeadModel.vertex_regions``), for masks and region-weighted losses.
REGIONS: dict[str, int] = {
    "skin": 0,
    "lips": 1,
    "mouth_interior": 2,
    "teeth": 3,
    "eyes": 4,
    "eyebrows": 5,
    "scalp_hair": 6,
    "neck": 7,
}

JOINT_NAMES: tuple[str, ...] = ("global", "neck", "jaw", "left_eye", "right_eye")

NPZ_FORMAT = "gsbench-head-model"
NPZ_FORMAT_VERSION = 1

_REQUIRED = (
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
)
_OPTIONAL_ARRAYS = ("uvs", "uv_faces", "texture", "vertex_regions")


@dataclasses.dataclass(frozen=True, eq=False)
class HeadModel:
    """A FLAME-format head model. Shapes: V vertices, F faces, S shape / E expression components.

    Optional extras beyond FLAME's pickle (see docs/interfaces.md, "Head model"): a UV layout and
    albedo texture, expression-dependent wrinkle maps keyed by expression-component name
    (``expr_names``), per-vertex region labels (``REGIONS``) and component names.
    """

    v_template: np.ndarray  # [V, 3] float
    faces: np.ndarray  # [F, 3] int64
    shapedirs: np.ndarray  # [V, 3, S]
    exprdirs: np.ndarray  # [V, 3, E]
    posedirs: np.ndarray  # [(J-1)*9, V*3]
    J_regressor: np.ndarray  # [J, V]
    parents: np.ndarray  # [J] int64, parents[0] = -1
    lbs_weights: np.ndarray  # [V, J]
    lmk_faces_idx: np.ndarray  # [68] int64
    lmk_bary_coords: np.ndarray  # [68, 3]
    uvs: np.ndarray | None = None  # [Vt, 2] in [0, 1], v up (OBJ convention)
    uv_faces: np.ndarray | None = None  # [F, 3] int64 into uvs
    texture: np.ndarray | None = None  # [H, W, 3] uint8, row 0 = top of the image (v = 1)
    wrinkle_maps: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # name -> [H, W] float32
    vertex_regions: np.ndarray | None = None  # [V] int8, codes in REGIONS
    name: str = "head"
    shape_names: tuple[str, ...] = ()  # optional, one per shape component
    expr_names: tuple[str, ...] = ()  # optional, one per expression component

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[2])

    @property
    def num_expr(self) -> int:
        return int(self.exprdirs.shape[2])

    @property
    def num_joints(self) -> int:
        return int(self.J_regressor.shape[0])

    def validate(self, source: str | Path | None = None) -> HeadModel:
        """Check every shape against every other; raise :class:`InputError` naming ``source``."""
        where = source if source is not None else self.name

        def fail(message: str) -> None:
            raise InputError(message, path=where, fix="regenerate or re-export the head model")

        num_v = self.num_vertices
        if self.v_template.ndim != 2 or self.v_template.shape[1] != 3:
            fail(f"v_template must be [V,3], got {self.v_template.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            fail(f"faces must be [F,3], got {self.faces.shape}")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= num_v):
            fail(f"faces index vertices outside [0, {num_v})")
        for key in ("shapedirs", "exprdirs"):
            value = getattr(self, key)
            if value.ndim != 3 or value.shape[:2] != (num_v, 3):
                fail(f"{key} must be [V={num_v},3,K], got {value.shape}")
        num_j = self.num_joints
        if self.J_regressor.shape != (num_j, num_v):
            fail(f"J_regressor must be [J,V={num_v}], got {self.J_regressor.shape}")
        if self.parents.shape != (num_j,) or self.parents[0] != -1:
            fail(f"parents must be [J={num_j}] with parents[0] = -1, got {self.parents}")
        if np.any(self.parents[1:] < 0) or np.any(self.parents[1:] >= np.arange(1, num_j)):
            fail(f"parents must list each joint after its parent, got {self.parents}")
        if self.posedirs.shape != ((num_j - 1) * 9, num_v * 3):
            fail(
                f"posedirs must be [(J-1)*9, V*3] = {((num_j - 1) * 9, num_v * 3)}, got {self.posedirs.shape}"
            )
        if self.lbs_weights.shape != (num_v, num_j):
            fail(f"lbs_weights must be [V,J] = {(num_v, num_j)}, got {self.lbs_weights.shape}")
        check_landmark_embedding(self.lmk_faces_idx, self.lmk_bary_coords, len(self.faces), where)
        if (self.uvs is None) != (self.uv_faces is None):
            fail("uvs and uv_faces come together")
        if self.uv_faces is not None and self.uvs is not None:
            if self.uv_faces.shape != self.faces.shape:
                fail(f"uv_faces must match faces {self.faces.shape}, got {self.uv_faces.shape}")
            if self.uv_faces.min() < 0 or self.uv_faces.max() >= len(self.uvs):
                fail("uv_faces index outside uvs")
        if self.texture is not None and (self.texture.ndim != 3 or self.texture.shape[2] != 3):
            fail(f"texture must be [H,W,3] uint8, got {self.texture.shape}")
        for key, value in self.wrinkle_maps.items():
            if self.texture is None or value.shape != self.texture.shape[:2]:
                fail(f"wrinkle map {key!r} must be [H,W] like the texture, got {value.shape}")
        if self.vertex_regions is not None and self.vertex_regions.shape != (num_v,):
            fail(f"vertex_regions must be [V={num_v}], got {self.vertex_regions.shape}")
        if self.shape_names and len(self.shape_names) != self.num_shape:
            fail(f"{len(self.shape_names)} shape_names for {self.num_shape} shape components")
        if self.expr_names and len(self.expr_names) != self.num_expr:
            fail(f"{len(self.expr_names)} expr_names for {self.num_expr} expression components")
        return self

    def save(self, path: str | Path) -> None:
        """Write the model as one compressed ``.npz`` (atomic). :meth:`load` reads it back exactly."""
        arrays: dict[str, np.ndarray] = {
            "format": np.array(NPZ_FORMAT),
            "format_version": np.array(NPZ_FORMAT_VERSION),
            "name": np.array(self.name),
            "shape_names": np.array(self.shape_names, dtype=str),
            "expr_names": np.array(self.expr_names, dtype=str),
        }
        for key in _REQUIRED:
            arrays[key] = getattr(self, key)
        for key in _OPTIONAL_ARRAYS:
            value = getattr(self, key)
            if value is not None:
                arrays[key] = value
        for key, value in self.wrinkle_maps.items():
            arrays[f"wrinkle_map__{key}"] = value
        save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> HeadModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError("head model file not found", path=path, fix="check the path")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise InputError(
                f"not a readable .npz ({error})", path=path, fix="pass a head model .npz"
            ) from None
        if str(arrays.get("format", "")) != NPZ_FORMAT:
            raise InputError(
                f"not a {NPZ_FORMAT} .npz (keys: {sorted(arrays)[:8]}...)",
                path=path,
                fix="use tracking.flame_io.load_head_model for FLAME files",
            )
        missing = [key for key in _REQUIRED if key not in arrays]
        if missing:
            raise InputError(f"head model .npz lacks {missing}", path=path, fix="re-save the model")
        return cls.from_arrays(arrays, source=path)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str | Path | None = None) -> HeadModel:
        wrinkle_maps = {
            key.split("__", 1)[1]: np.asarray(value, np.float32)
            for key, value in arrays.items()
            if key.startswith("wrinkle_map__")
        }
        model = cls(
            v_template=np.asarray(arrays["v_template"]),
            faces=np.asarray(arrays["faces"], np.int64),
            shapedirs=np.asarray(arrays["shapedirs"]),
            exprdirs=np.asarray(arrays["exprdirs"]),
            posedirs=np.asarray(arrays["posedirs"]),
            J_regressor=np.asarray(arrays["J_regressor"]),
            parents=np.asarray(arrays["parents"], np.int64),
            lbs_weights=np.asarray(arrays["lbs_weights"]),
            lmk_faces_idx=np.asarray(arrays["lmk_faces_idx"], np.int64),
            lmk_bary_coords=np.asarray(arrays["lmk_bary_coords"]),
            uvs=_optional(arrays, "uvs"),
            uv_faces=None if "uv_faces" not in arrays else np.asarray(arrays["uv_faces"], np.int64),
            texture=None if "texture" not in arrays else np.asarray(arrays["texture"], np.uint8),
            wrinkle_maps=wrinkle_maps,
            vertex_regions=None
            if "vertex_regions" not in arrays
            else np.asarray(arrays["vertex_regions"], np.int8),
            name=str(arrays.get("name", "head")),
            shape_names=tuple(str(n) for n in np.atleast_1d(arrays.get("shape_names", np.array([], str)))),
            expr_names=tuple(str(n) for n in np.atleast_1d(arrays.get("expr_names", np.array([], str)))),
        )
        return model.validate(source)


def _optional(arrays: dict[str, np.ndarray], key: str) -> np.ndarray | None:
    return None if key not in arrays else np.asarray(arrays[key])


def check_landmark_embedding(
    lmk_faces_idx: np.ndarray, lmk_bary_coords: np.ndarray, num_faces: int, source: str | Path | None
) -> None:
    """Raise :class:`InputError` unless the embedding is 68 valid (face, barycentric) pairs of this mesh."""
    fix = "use the landmark embedding that ships with this model version"
    if lmk_faces_idx.shape != (68,) or lmk_bary_coords.shape != (68, 3):
        raise InputError(
            f"landmark embedding must be 68 faces + [68,3] barycentrics, got {lmk_faces_idx.shape} "
            f"and {lmk_bary_coords.shape}",
            path=source,
            fix=fix,
        )
    if lmk_faces_idx.min() < 0 or lmk_faces_idx.max() >= num_faces:
        raise InputError(
            f"landmark embedding indexes face {int(lmk_faces_idx.max())} but the mesh has {num_faces} faces",
            path=source,
            fix=fix,
        )
    sums = lmk_bary_coords.sum(axis=1)
    if not np.allclose(sums, 1.0, atol=1e-3) or lmk_bary_coords.min() < -1e-3:
        raise InputError("landmark barycentric coordinates must be >= 0 and sum to 1", path=source, fix=fix)


def expression_albedo(model: HeadModel, expr: np.ndarray) -> np.ndarray:
    """Albedo texture [H,W,3] float32 in [0,1] darkened by the wrinkle maps the expression activates.

    ``albedo = texture * (1 - clip(Σ_k max(expr[k], 0) * wrinkle_maps[name_k], 0, 0.9))`` where
    ``name_k = expr_names[k]``; maps whose name is not an expression component are ignored.
    """
    if model.texture is None:
        raise InputError("head model has no texture", path=model.name, fix="use a model with a UV texture")
    albedo = model.texture.astype(np.float32) / 255.0
    darkening = np.zeros(albedo.shape[:2], np.float32)
    expr = np.asarray(expr, np.float32).reshape(-1)
    for index, name in enumerate(model.expr_names):
        if name in model.wrinkle_maps and index < expr.shape[0] and expr[index] > 0:
            darkening += float(expr[index]) * model.wrinkle_maps[name]
    return albedo * (1.0 - np.clip(darkening, 0.0, 0.9))[..., None]
