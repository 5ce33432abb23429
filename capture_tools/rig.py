"""``rig.yaml``: the description of a raw rig session (docs/interfaces.md, "Raw rig session").

Loaded once into frozen dataclasses and validated: every error names the key and the file.
Whether the videos it points at exist and agree with each other is checked by the probe stage
(:mod:`gsbench.media`), not here; the one file read here is the optional ``intrinsics`` file
(known camera intrinsics for the structure-from-motion fallback, :func:`load_intrinsics`), whose
image sizes the calibrate stage checks against the videos.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gsbench.errors import ConfigError, InputError
from gsbench.io import sha256_file

SCHEMA_VERSION = 1
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ARUCO_DICTIONARIES = (
    "DICT_4X4_50", "DICT_4X4_100", "DICT_4X4_250", "DICT_4X4_1000",
    "DICT_5X5_50", "DICT_5X5_100", "DICT_5X5_250", "DICT_5X5_1000",
    "DICT_6X6_50", "DICT_6X6_100", "DICT_6X6_250", "DICT_6X6_1000",
    "DICT_7X7_50", "DICT_7X7_100", "DICT_7X7_250", "DICT_7X7_1000",
    "DICT_ARUCO_ORIGINAL",
)  # fmt: skip


@dataclass(frozen=True)
class CameraSpec:
    id: str
    video: str  # file name inside takes/<take>/ and calibration/


@dataclass(frozen=True)
class TakeSpec:
    id: str
    subject: str


@dataclass(frozen=True)
class BoardSpec:
    type: str  # only "charuco"
    squares_x: int
    squares_y: int
    square_length_m: float
    marker_length_m: float
    dictionary: str


@dataclass(frozen=True)
class CalibrationSpec:
    folder: str
    board: BoardSpec


@dataclass(frozen=True)
class BaselineSpec:
    camera_a: str
    camera_b: str
    distance_m: float


@dataclass(frozen=True)
class CameraIntrinsics:
    """One raw (distorted) camera of an earlier calibration, OpenCV convention."""

    K: tuple[tuple[float, float, float], ...]  # [3,3], zero skew
    dist: tuple[float, ...]  # [5] k1 k2 p1 p2 k3
    width: int
    height: int


@dataclass(frozen=True)
class IntrinsicsSpec:
    """Known intrinsics for the structure-from-motion fallback (rig.yaml key ``intrinsics``): the
    cameras of ``path`` (an earlier ingest's ``reports/calibration.json``, or a mapping camera id ->
    ``{K, dist, width, height}``); anything else in the file (extrinsics) is not read."""

    path: Path  # absolute
    sha256: str
    cameras: dict[str, CameraIntrinsics]  # every camera of the rig


@dataclass(frozen=True)
class RigSpec:
    """A validated ``rig.yaml``; paths are resolved against ``root`` (the session folder)."""

    root: Path
    name: str
    fps: float
    frontal_camera: str
    sample_rate: int
    master_audio: str
    cameras: tuple[CameraSpec, ...]
    takes: tuple[TakeSpec, ...]
    calibration: CalibrationSpec | None
    background: str | None
    baseline: BaselineSpec | None
    intrinsics: IntrinsicsSpec | None = None
    # "audio" (default): per-camera offsets from the camera mics (visual events for cameras without);
    # "hardware": the cameras are triggered together (one offset for all), the master audio aligned by
    # ``audio_offset_s`` (master time of the cameras' frame 0) or, when absent, by a clap: the master
    # track's strongest onset against the cameras' flash/brightness step
    sync_mode: str = "audio"
    audio_offset_s: float | None = None

    @property
    def camera_ids(self) -> list[str]:
        return [camera.id for camera in self.cameras]

    @property
    def rig_file(self) -> Path:
        return self.root / "rig.yaml"

    def take_video(self, take_id: str, camera_id: str) -> Path:
        return self.root / "takes" / take_id / self.camera(camera_id).video

    def take_audio(self, take_id: str) -> Path:
        return self.root / "takes" / take_id / self.master_audio

    def calibration_video(self, camera_id: str) -> Path:
        assert self.calibration is not None
        return self.root / self.calibration.folder / self.camera(camera_id).video

    def background_plate(self, camera_id: str) -> Path | None:
        if self.background is None:
            return None
        path = self.root / self.background / f"{camera_id}.png"
        return path if path.exists() else None

    def camera(self, camera_id: str) -> CameraSpec:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(camera_id)


def yaml_problem(error: Exception) -> str:
    """PyYAML's error as one line that keeps where it is: ``line 7, column 3: <problem> (<context>)``."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if problem is None:
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = getattr(error, "context", None)
    return f"{where}{problem}" + (f" ({context})" if context else "")


class _Reader:
    """Typed access to a YAML mapping; errors name the dotted key and the file."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, message: str, fix: str | None = None) -> ConfigError:
        return ConfigError(f"key '{key}': {message}", path=self.path, fix=fix)

    def mapping(self, data: Any, key: str) -> dict:
        if not isinstance(data, dict):
            raise self.fail(key, f"expected a mapping, got {type(data).__name__}")
        return data

    def get(
        self, data: dict, key: str, prefix: str, kind: type | tuple[type, ...], default: Any = ...
    ) -> Any:
        full = f"{prefix}{key}"
        if key not in data or data[key] is None:
            if default is ...:
                raise self.fail(full, "missing", fix=f"add '{full}' to rig.yaml (see docs/interfaces.md)")
            return default
        value = data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise self.fail(full, f"expected {names}, got {value!r}")
        return value

    def identifier(self, data: dict, key: str, prefix: str) -> str:
        value = self.get(data, key, prefix, (str, int))
        value = str(value)
        if not _ID_PATTERN.match(value):
            raise self.fail(f"{prefix}{key}", f"{value!r} is not a valid id (letters, digits, _ . -)")
        return value

    def positive(self, data: dict, key: str, prefix: str, kind: type = float) -> Any:
        value = self.get(data, key, prefix, kind)
        if value <= 0:
            raise self.fail(f"{prefix}{key}", f"must be > 0, got {value}")
        return value


def load_rig(session: str | Path) -> RigSpec:
    """Read and validate ``<session>/rig.yaml`` (``session`` may also be the yaml file itself)."""
    session = Path(session)
    path = session if session.is_file() else session / "rig.yaml"
    if not session.exists():
        raise InputError("session folder does not exist", path=session)
    if not path.exists():
        raise InputError(
            "no rig.yaml in the session folder", path=path, fix="write one as described in docs/interfaces.md"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid YAML ({yaml_problem(exc)})", path=path) from exc
    r = _Reader(path)
    data = r.mapping(raw, "<top level>")
    known = {
        "schema_version",
        "name",
        "fps",
        "frontal_camera",
        "audio",
        "cameras",
        "takes",
        "calibration",
        "background",
        "baseline",
        "intrinsics",
        "sync",
    }
    unknown = sorted(set(data) - known)
    if unknown:
        raise r.fail(unknown[0], "unknown key", fix=f"remove it; known keys: {', '.join(sorted(known))}")
    version = r.get(data, "schema_version", "", int, default=SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise r.fail("schema_version", f"unsupported version {version}", fix=f"use {SCHEMA_VERSION}")

    name = str(r.get(data, "name", "", (str, int), default=path.parent.name))
    fps = r.positive(data, "fps", "")
    audio = r.mapping(r.get(data, "audio", "", dict), "audio")
    sample_rate = r.positive(audio, "sample_rate", "audio.", int)
    master = r.get(audio, "master", "audio.", str)

    camera_list = r.get(data, "cameras", "", list)
    if not camera_list:
        raise r.fail("cameras", "empty list", fix="list at least one camera")
    cameras = []
    for index, item in enumerate(camera_list):
        prefix = f"cameras[{index}]."
        item = r.mapping(item, prefix[:-1])
        cameras.append(
            CameraSpec(id=r.identifier(item, "id", prefix), video=r.get(item, "video", prefix, str))
        )
    ids = [c.id for c in cameras]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise r.fail("cameras", f"duplicate camera id {duplicates[0]!r}")

    frontal = str(r.get(data, "frontal_camera", "", (str, int)))
    if frontal not in ids:
        raise r.fail("frontal_camera", f"{frontal!r} is not one of the cameras ({', '.join(ids)})")

    take_list = r.get(data, "takes", "", list)
    if not take_list:
        raise r.fail("takes", "empty list", fix="list at least one take")
    takes = []
    for index, item in enumerate(take_list):
        prefix = f"takes[{index}]."
        item = r.mapping(item, prefix[:-1])
        takes.append(
            TakeSpec(id=r.identifier(item, "id", prefix), subject=r.identifier(item, "subject", prefix))
        )
    take_ids = [t.id for t in takes]
    duplicates = sorted({i for i in take_ids if take_ids.count(i) > 1})
    if duplicates:
        raise r.fail("takes", f"duplicate take id {duplicates[0]!r}")

    calibration = None
    if data.get("calibration") is not None:
        cal = r.mapping(data["calibration"], "calibration")
        board = r.mapping(r.get(cal, "board", "calibration.", dict), "calibration.board")
        p = "calibration.board."
        board_type = r.get(board, "type", p, str)
        if board_type != "charuco":
            raise r.fail(f"{p}type", f"unsupported board type {board_type!r}", fix="use 'charuco'")
        dictionary = r.get(board, "dictionary", p, str)
        if dictionary not in ARUCO_DICTIONARIES:
            raise r.fail(
                f"{p}dictionary",
                f"unknown ArUco dictionary {dictionary!r}",
                fix=f"one of {', '.join(ARUCO_DICTIONARIES)}",
            )
        spec = BoardSpec(
            type=board_type,
            squares_x=r.positive(board, "squares_x", p, int),
            squares_y=r.positive(board, "squares_y", p, int),
            square_length_m=r.positive(board, "square_length_m", p),
            marker_length_m=r.positive(board, "marker_length_m", p),
            dictionary=dictionary,
        )
        if spec.marker_length_m >= spec.square_length_m:
            raise r.fail(f"{p}marker_length_m", "must be smaller than square_length_m")
        if spec.squares_x < 2 or spec.squares_y < 2:
            raise r.fail(f"{p}squares_x", "a ChArUco board needs at least 2x2 squares")
        calibration = CalibrationSpec(
            folder=r.get(cal, "folder", "calibration.", str, default="calibration"), board=spec
        )

    background = r.get(data, "background", "", str, default=None)
    baseline = None
    if data.get("baseline") is not None:
        b = r.mapping(data["baseline"], "baseline")
        baseline = BaselineSpec(
            camera_a=str(r.get(b, "camera_a", "baseline.", (str, int))),
            camera_b=str(r.get(b, "camera_b", "baseline.", (str, int))),
            distance_m=r.positive(b, "distance_m", "baseline."),
        )
        for key in ("camera_a", "camera_b"):
            if getattr(baseline, key) not in ids:
                raise r.fail(f"baseline.{key}", f"{getattr(baseline, key)!r} is not one of the cameras")

    intrinsics = None
    if data.get("intrinsics") is not None:
        value = r.get(data, "intrinsics", "", str)
        intrinsics = load_intrinsics(path.parent / Path(value).expanduser(), ids, path)

    sync_mode, audio_offset_s = "audio", None
    if data.get("sync") is not None:
        sync = data["sync"]
        sync = {"mode": sync} if isinstance(sync, str) else r.mapping(sync, "sync")
        sync_mode = r.get(sync, "mode", "sync.", str)
        if sync_mode not in ("audio", "hardware"):
            raise r.fail("sync.mode", f"unknown sync mode {sync_mode!r}", fix="use 'audio' or 'hardware'")
        unknown_sync = sorted(set(sync) - {"mode", "audio_offset_s"})
        if unknown_sync:
            raise r.fail(f"sync.{unknown_sync[0]}", "unknown key", fix="known keys: mode, audio_offset_s")
        if sync.get("audio_offset_s") is not None:
            if sync_mode != "hardware":
                raise r.fail("sync.audio_offset_s", "applies to mode: hardware only")
            audio_offset_s = float(r.get(sync, "audio_offset_s", "sync.", (int, float)))

    return RigSpec(
        root=path.parent.resolve(),
        name=name,
        fps=float(fps),
        frontal_camera=frontal,
        sample_rate=int(sample_rate),
        master_audio=master,
        cameras=tuple(cameras),
        takes=tuple(takes),
        calibration=calibration,
        background=background,
        baseline=baseline,
        intrinsics=intrinsics,
        sync_mode=sync_mode,
        audio_offset_s=audio_offset_s,
    )


def load_intrinsics(path: Path, camera_ids: list[str], rig_file: Path) -> IntrinsicsSpec:
    """Read the intrinsics of ``camera_ids`` from ``path`` (rig.yaml key ``intrinsics``): a calibration
    report of an earlier ingest (``reports/calibration.json``: ``{"result": {"cameras": {...}}}``) or a
    mapping camera id -> ``{"K": [3,3], "dist": [k1,k2,p1,p2,k3], "width", "height"}`` (the cameras of
    such a report). A dataset's ``cameras.json`` does not qualify: it describes the undistorted frames
    and carries no ``dist``. Each error names the file (and the camera)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(
            f"key 'intrinsics': {path} does not exist",
            path=rig_file,
            fix="point it at an earlier ingest's reports/calibration.json of this rig (relative to rig.yaml "
            "or absolute), or remove the key",
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"not valid JSON ({exc}); named by key 'intrinsics' of {rig_file}", path=path
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("result"), dict) and "cameras" in data["result"]:
        data = data["result"]["cameras"]  # a calibration report
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of camera ids to intrinsics, got {type(data).__name__}", path=path
        )
    cameras = {}
    for camera in camera_ids:
        entry = data.get(camera)
        where = f"camera {camera}"
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where} of the rig is missing (the file has {', '.join(sorted(data)) or 'no cameras'})",
                path=path,
                fix="use intrinsics of the same rig (its camera ids), or remove the key 'intrinsics' from "
                f"{rig_file}",
            )
        if "dist" not in entry:
            raise ConfigError(
                f"{where}: no 'dist' (lens distortion); a dataset's cameras.json describes the undistorted "
                "frames, not the raw videos",
                path=path,
                fix="point the key 'intrinsics' at that dataset's reports/calibration.json",
            )
        try:
            K = np.asarray(entry["K"], np.float64)
            dist = np.asarray(entry["dist"], np.float64)
            width, height = entry["width"], entry["height"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{where}: needs K [3,3], dist [5], width, height ({exc!r})", path=path
            ) from exc
        if (
            K.shape != (3, 3)
            or not np.all(np.isfinite(K))
            or K[0, 0] <= 0
            or K[1, 1] <= 0
            or abs(K[0, 1]) > 1e-9
            or np.any(K[2] != [0, 0, 1])
            or K[1, 0] != 0
        ):
            raise ConfigError(
                f"{where}: K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0, got {K.tolist()}",
                path=path,
            )
        if dist.shape != (5,) or not np.all(np.isfinite(dist)):
            raise ConfigError(
                f"{where}: dist must be 5 numbers k1 k2 p1 p2 k3, got {dist.tolist()}", path=path
            )
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            raise ConfigError(f"{where}: width and height must be positive integers", path=path)
        cameras[camera] = CameraIntrinsics(
            K=tuple(tuple(float(v) for v in row) for row in K),
            dist=tuple(float(v) for v in dist),
            width=width,
            height=height,
        )
    return IntrinsicsSpec(path=path, sha256=sha256_file(path), cameras=cameras)
