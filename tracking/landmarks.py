"""2D facial landmarks: MediaPipe FaceMesh (478 points with iris refinement) and the iBUG-68 subset.

``detect_landmarks`` runs the legacy ``mp.solutions.face_mesh.FaceMesh(refine_landmarks=True)``, whose
TFLite models ship in the mediapipe 0.10.21 wheel (no download; the newer Tasks API needs ``.task``
files and is not used). Points are in pixels of the given frames, ``x`` right and ``y`` down, with
``pixel = normalized * size`` (MediaPipe's own convention); missing detections are NaN.

``MEDIAPIPE_TO_IBUG68[k]`` is the FaceMesh index used for iBUG/300-W point ``k`` (0-based; the order of
dlib and face_alignment's 2D-FAN, which the talking-head LMD code uses):

=========  =====  ===========================================================
iBUG       count  FaceMesh indices
=========  =====  ===========================================================
0-16       17     jaw, image left to right (subject's right first): 127 ... 356
17-21      5      subject's right brow, outer to inner: 70 63 105 66 107
22-26      5      subject's left brow, inner to outer: 336 296 334 293 300
27-30      4      nose bridge, top to tip: 168 197 5 4
31-35      5      nostrils, image left to right: 75 97 2 326 305
36-41      6      subject's right eye: outer corner 33, upper 160 158, inner 133, lower 153 144
42-47      6      subject's left eye: inner corner 362, upper 385 387, outer 263, lower 373 380
48-59      12     outer lip from the right corner 61 over the upper lip (0 = top centre) to 291, back
                  along the lower lip (17 = bottom centre)
60-67      8      inner lip: 78, 81 13 311, 308, 402 14 178
=========  =====  ===========================================================

Single FaceMesh vertices stand in for points that 2D-FAN places on the silhouette (the jaw) or between
vertices, so LMD on this subset is comparable across our methods but not numerically equal to 2D-FAN's.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

NUM_MEDIAPIPE_LANDMARKS = 478

MEDIAPIPE_TO_IBUG68 = np.array(
    [
        # jaw 0-16
        127,
        234,
        132,
        58,
        172,
        150,
        149,
        148,
        152,
        377,
        378,
        379,
        397,
        288,
        361,
        454,
        356,
        # brows 17-26
        70,
        63,
        105,
        66,
        107,
        336,
        296,
        334,
        293,
        300,
        # nose 27-35
        168,
        197,
        5,
        4,
        75,
        97,
        2,
        326,
        305,
        # eyes 36-47
        33,
        160,
        158,
        133,
        153,
        144,
        362,
        385,
        387,
        263,
        373,
        380,
        # outer lip 48-59
        61,
        40,
        37,
        0,
        267,
        270,
        291,
        321,
        314,
        17,
        84,
        91,
        # inner lip 60-67
        78,
        81,
        13,
        311,
        308,
        402,
        14,
        178,
    ],
    dtype=np.int64,
)

IBUG68_MOUTH = np.arange(48, 68)  # 20 mouth points (outer 48-59, inner 60-67), as LMDMeter uses
IBUG68_JAW = np.arange(0, 17)


def to_ibug68(points: np.ndarray) -> np.ndarray:
    """[..., 478, 2] MediaPipe points -> [..., 68, 2] iBUG-68 points (NaN stays NaN)."""
    return np.asarray(points)[..., MEDIAPIPE_TO_IBUG68, :]


def detect_landmarks(
    frames: np.ndarray,
    *,
    static_image_mode: bool = False,
    min_detection_confidence: float = 0.5,
    min_tracking_confidence: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Detect one face per frame with MediaPipe FaceMesh.

    Args:
        frames: [T, H, W, 3] uint8 RGB.
        static_image_mode: False (default) tracks from frame to frame as a video; True detects in
            every frame independently (slower, no temporal dependence).

    Returns:
        points: [T, 478, 2] float32 pixels (x, y), NaN where no face was found.
        detected: [T] bool.
    """
    import mediapipe as mp

    from gsbench.native_log import quiet_native_stderr

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be [T,H,W,3] uint8 RGB, got {frames.shape} {frames.dtype}")
    num, height, width = frames.shape[:3]
    points = np.full((num, NUM_MEDIAPIPE_LANDMARKS, 2), np.nan, np.float32)
    detected = np.zeros(num, bool)
    scale = np.array([width, height], np.float32)
    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_native_stderr())  # MediaPipe's start-up warnings, per graph
        mesh = stack.enter_context(
            mp.solutions.face_mesh.FaceMesh(
                static_image_mode=static_image_mode,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
        )
        for t in range(num):
            result = mesh.process(np.ascontiguousarray(frames[t]))
            faces = result.multi_face_landmarks
            if not faces:
                continue
            xy = _normalized_xy(faces[0])
            if len(xy) != NUM_MEDIAPIPE_LANDMARKS:
                continue
            points[t] = xy * scale
            detected[t] = True
    return points, detected


# A NormalizedLandmarkList as FaceMesh returns it, on the protobuf wire: per landmark the field-1 tag
# (0x0A), the length 15, then x, y, z as fixed32 fields (tags 0x0D, 0x15, 0x1D): 17 bytes each.
_LANDMARK_RECORD = 17
_LANDMARK_TAGS = {0: 0x0A, 1: 15, 2: 0x0D, 7: 0x15, 12: 0x1D}


def _normalized_xy(landmark_list) -> np.ndarray:
    """``[N, 2] float32`` normalized (x, y) of a ``NormalizedLandmarkList``.

    Reads the serialized message with numpy when every landmark has exactly the x/y/z layout above
    (what FaceMesh emits): the per-attribute Python access it replaces cost ~10% of the landmark
    stage. Any other layout (visibility/presence set, a protobuf change) takes the attribute path;
    both give the same float32 values."""
    data = np.frombuffer(landmark_list.SerializeToString(), np.uint8)
    if data.size and data.size % _LANDMARK_RECORD == 0:
        records = data.reshape(-1, _LANDMARK_RECORD)
        if all(np.all(records[:, column] == tag) for column, tag in _LANDMARK_TAGS.items()):
            x = records[:, 3:7].copy().view("<f4")[:, 0]
            y = records[:, 8:12].copy().view("<f4")[:, 0]
            return np.stack([x, y], axis=1).astype(np.float32)
    return np.array([(lm.x, lm.y) for lm in landmark_list.landmark], np.float32).reshape(-1, 2)


def mediapipe_embedding_path() -> Path:
    """The shipped MediaPipe embedding of ``gsbench-head`` (built by scripts/build_mediapipe_embedding.py)."""
    return Path(__file__).parent / "head" / "gsbench_head_mediapipe_embedding.json"


def _faces_digest(head_model) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(head_model.faces, np.int64).tobytes()).hexdigest()


def save_mediapipe_embedding(
    path: str | Path, head_model, faces_idx: np.ndarray, bary_coords: np.ndarray, **provenance
) -> None:
    """Write a fixed MediaPipe embedding (faces [478], barycentrics [478, 3]) of ``head_model`` as JSON,
    with the hash of the model's triangles that :func:`load_mediapipe_embedding` checks."""
    from gsbench.io import write_json

    write_json(
        Path(path),
        {
            "format": "gsbench-mediapipe-embedding",
            "version": 1,
            "head_model": head_model.name,
            "faces_sha256": _faces_digest(head_model),
            "num_vertices": head_model.num_vertices,
            **provenance,
            "landmark_indices": list(range(NUM_MEDIAPIPE_LANDMARKS)),
            "lmk_face_idx": np.asarray(faces_idx, np.int64).tolist(),
            "lmk_b_coords": np.round(np.asarray(bary_coords, np.float64), 6).tolist(),
        },
    )


def load_mediapipe_embedding(
    head_model, path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Fixed (face index [478], barycentrics [478, 3]) of every MediaPipe point on ``head_model``.

    Like FLAME's ``mediapipe_landmark_embedding.npz`` (same key names), but for all 478 points. With
    ``path`` None: the shipped file when ``head_model`` is ``gsbench-head``, else None (no fixed
    embedding known; the tracker then embeds the points per subject). A file that does not match the
    model's triangles raises :class:`InputError`.
    """
    import json

    from gsbench.errors import InputError

    if path is None:
        if head_model.name != "gsbench-head":
            return None
        path = mediapipe_embedding_path()
    path = Path(path)
    fix = "regenerate it with `.venv/bin/python scripts/build_mediapipe_embedding.py`"
    try:
        data = json.loads(path.read_text())
        faces = np.asarray(data["lmk_face_idx"], np.int64)
        bary = np.asarray(data["lmk_b_coords"], np.float64)
        digest = str(data["faces_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"cannot read the MediaPipe embedding ({error})", path=path, fix=fix) from None
    if digest != _faces_digest(head_model):
        raise InputError(f"built for other triangles than {head_model.name}'s", path=path, fix=fix)
    if faces.shape != (NUM_MEDIAPIPE_LANDMARKS,) or bary.shape != (NUM_MEDIAPIPE_LANDMARKS, 3):
        raise InputError(f"expected 478 points, got {faces.shape} / {bary.shape}", path=path, fix=fix)
    if faces.min() < 0 or faces.max() >= len(head_model.faces) or not np.isfinite(bary).all():
        raise InputError("face index out of range or non-finite barycentrics", path=path, fix=fix)
    return faces, bary / bary.sum(1, keepdims=True)


def mediapipe_embedding_noise(path: str | Path | None = None) -> np.ndarray | None:
    """[478] per-point median reprojection error (pixels) recorded in a fixed embedding file by its
    build (``median_residual_px``; NaN where unknown), or None when the file has none."""
    import json

    data = json.loads(Path(path or mediapipe_embedding_path()).read_text())
    values = data.get("median_residual_px")
    if values is None or len(values) != NUM_MEDIAPIPE_LANDMARKS:
        return None
    return np.array([np.nan if v is None else float(v) for v in values])
