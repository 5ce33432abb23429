"""Fixtures for the harness tests: a tiny dataset in the docs/interfaces.md layout, test-only methods.

The tiny dataset is built here (no dependency on synth/ingest): 2 subjects x 4 sequences, 3 cameras
(frontal ``cam01``), 12 frames of 48x64 at 25 fps. Each frame shows a per-camera background gradient
and an elliptic "head" placed where the tracked head translation projects, with a dark mouth whose
opening follows the audio envelope of that frame, so audio and image are correlated as in speech. The
ground-truth landmarks are the known points of that drawn face (:func:`face_landmarks`), not noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatars.methods.base import Method, RenderOutput, RenderRequest, TrainStats
from gsbench.io import save_npz, write_json

SAMPLE_RATE = 16000


def _look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """OpenCV world_to_cam of a camera at ``eye`` looking at ``target`` (y down)."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, np.array([0.0, -1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    world_to_cam = np.eye(4)
    world_to_cam[:3, :3] = rotation
    world_to_cam[:3, 3] = -rotation @ eye
    return world_to_cam


def _write_wav(path: Path, audio: np.ndarray) -> None:
    import wave

    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(SAMPLE_RATE)
        handle.writeframes(pcm.tobytes())


def speech_like_audio(envelope: np.ndarray, pitches: np.ndarray, fps: float) -> np.ndarray:
    """Harmonic tones, one pitch and loudness per video frame: ``[T * 16000 / fps]`` float32."""
    per_frame = int(round(SAMPLE_RATE / fps))
    t = np.arange(per_frame * envelope.size) / SAMPLE_RATE
    amplitude = np.repeat(envelope, per_frame)
    pitch = np.repeat(pitches, per_frame)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    tone = sum(np.sin(k * phase) / k for k in (1, 2, 3, 5))
    return (0.25 * amplitude * tone + 0.002 * np.sin(2 * np.pi * 50 * t)).astype(np.float32)


def face_landmarks(camera: dict, translation: np.ndarray, opening: float) -> np.ndarray:
    """[478, 2] MediaPipe-indexed landmarks of the face :func:`draw_frame` draws (pixels).

    A geometric face with known points, not detections: the iBUG-68 points (through
    ``MEDIAPIPE_TO_IBUG68``) lie on the drawn head -- jaw on its lower outline, brows, nose and eyes at fixed
    places, the 12 outer lip points (48-59) on the outline of the drawn mouth (its opening follows the
    frame's audio envelope) and the 8 inner ones (60-67) at 0.6 of it; the other MediaPipe points lie
    evenly on an ellipse at 0.8 of the head outline.
    """
    from tracking.landmarks import MEDIAPIPE_TO_IBUG68

    height, width = camera["height"], camera["width"]
    K, world_to_cam = np.asarray(camera["K"]), np.asarray(camera["world_to_cam"])
    cam = world_to_cam[:3, :3] @ translation + world_to_cam[:3, 3]
    u, v = (K @ cam)[:2] / (K @ cam)[2]
    ry, rx = 0.32 * height, 0.22 * width

    def ring(count: int, start: float, scale_x: float, scale_y: float, centre=(0.0, 0.0), span=2 * np.pi):
        angles = start + span * np.arange(count) / (count if span == 2 * np.pi else count - 1)
        return np.stack([centre[0] + scale_x * np.cos(angles), centre[1] + scale_y * np.sin(angles)], 1)

    mouth_y, mouth_half_height = 0.45, 0.05 + 0.25 * opening  # draw_frame's mouth, in head radii
    ibug = np.concatenate(
        [
            ring(17, np.pi, 0.95, 0.95, span=-np.pi),  # jaw 0-16: left, chin, right
            np.stack([np.linspace(-0.6, 0.6, 10), np.full(10, -0.45)], 1),  # brows 17-26
            np.stack([np.zeros(4), np.linspace(-0.3, 0.1, 4)], 1),  # nose bridge 27-30
            np.stack([np.linspace(-0.2, 0.2, 5), np.full(5, 0.18)], 1),  # nostrils 31-35
            ring(6, np.pi, 0.12, 0.05, centre=(-0.35, -0.25)),  # eyes 36-41, 42-47
            ring(6, np.pi, 0.12, 0.05, centre=(0.35, -0.25)),
            ring(12, np.pi, 0.45, mouth_half_height, centre=(0.0, mouth_y)),  # outer lips 48-59
            ring(8, np.pi, 0.6 * 0.45, 0.6 * mouth_half_height, centre=(0.0, mouth_y)),  # inner 60-67
        ]
    )
    points = ring(478, 0.0, 0.8, 0.8)
    points[MEDIAPIPE_TO_IBUG68] = ibug
    return (points * [rx, ry] + [u, v]).astype(np.float32)


def draw_frame(
    camera: dict, translation: np.ndarray, opening: float, shade: float
) -> tuple[np.ndarray, np.ndarray]:
    height, width = camera["height"], camera["width"]
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.float32)
    image[..., 0] = 0.2 + 0.5 * xx / width
    image[..., 1] = 0.3 + 0.4 * yy / height
    image[..., 2] = 0.6 - 0.3 * xx / width
    K, world_to_cam = np.asarray(camera["K"]), np.asarray(camera["world_to_cam"])
    cam = world_to_cam[:3, :3] @ translation + world_to_cam[:3, 3]
    u, v = (K @ cam)[:2] / (K @ cam)[2]
    ry, rx = 0.32 * height, 0.22 * width
    head = ((xx - u) / rx) ** 2 + ((yy - v) / ry) ** 2 <= 1.0
    image[head] = np.array([0.85, 0.65, 0.55]) * shade
    mouth = ((xx - u) / (0.45 * rx)) ** 2 + (
        (yy - (v + 0.45 * ry)) / (0.05 * ry + 0.25 * ry * opening)
    ) ** 2 <= 1
    image[mouth & head] = [0.25, 0.05, 0.08]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), head


def write_tiny_dataset(
    root: Path,
    *,
    subjects: tuple[str, ...] = ("s01", "s02"),
    sequences_per_subject: int = 4,
    num_cameras: int = 3,
    num_frames: int = 12,
    size: tuple[int, int] = (48, 64),
    fps: float = 25.0,
    seed: int = 0,
    name: str = "tiny",
    test_sequences_per_subject: int = 1,
    sequence_frames: dict[str, int] | None = None,
) -> Path:
    """Write a valid dataset folder (schema_version 1) and return ``root``.

    Per subject, the last ``test_sequences_per_subject`` sequences are test, the one before them val, the
    rest train; ``sequence_frames`` gives some sequences another length than ``num_frames``."""
    rng = np.random.default_rng(seed)
    default_frames = num_frames
    height, width = size
    camera_ids = [f"cam{i:02d}" for i in range(num_cameras)]
    frontal = camera_ids[num_cameras // 2]
    cameras = {}
    for index, camera_id in enumerate(camera_ids):
        angle = np.deg2rad(25.0 * (index - num_cameras // 2))
        eye = np.array([np.sin(angle), 0.0, -np.cos(angle)])  # 1 m from the head, in front of it
        K = [[1.2 * width, 0.0, width / 2], [0.0, 1.2 * width, height / 2], [0.0, 0.0, 1.0]]
        cameras[camera_id] = {
            "K": K,
            "world_to_cam": _look_at(eye, np.zeros(3)).tolist(),
            "width": width,
            "height": height,
        }
    sequences, splits = {}, {}
    for subject_index, subject in enumerate(subjects):
        ids = [f"{subject}_t{k:02d}" for k in range(sequences_per_subject)]
        num_test = test_sequences_per_subject
        splits[subject] = {
            "train": ids[: -1 - num_test],
            "val": ids[-1 - num_test : -num_test],
            "test": ids[-num_test:],
        }
        shade = 1.0 - 0.2 * subject_index
        for seq in ids:
            folder = root / "sequences" / seq
            num_frames = (sequence_frames or {}).get(seq, default_frames)
            envelope = rng.choice([0.0, 0.3, 0.6, 1.0], size=num_frames)
            pitches = rng.choice([140.0, 220.0, 330.0], size=num_frames)
            folder.mkdir(parents=True, exist_ok=True)
            _write_wav(folder / "audio.wav", speech_like_audio(envelope, pitches, fps))
            translation = np.stack(
                [
                    0.01 * rng.standard_normal(num_frames),
                    0.01 * rng.standard_normal(num_frames),
                    np.zeros(num_frames),
                ],
                axis=1,
            )
            save_npz(
                folder / "flame.npz",
                expr=rng.standard_normal((num_frames, 10)).astype(np.float32) * 0.1,
                jaw_pose=np.stack([0.3 * envelope, np.zeros(num_frames), np.zeros(num_frames)], 1).astype(
                    np.float32
                ),
                neck_pose=np.zeros((num_frames, 3), np.float32),
                eyes_pose=np.zeros((num_frames, 6), np.float32),
                rotation=(0.02 * rng.standard_normal((num_frames, 3))).astype(np.float32),
                translation=translation.astype(np.float32),
                shape=np.zeros(20, np.float32),
            )
            landmarks = {}
            for camera_id in camera_ids:
                (folder / "images" / camera_id).mkdir(parents=True, exist_ok=True)
                (folder / "masks" / camera_id).mkdir(parents=True, exist_ok=True)
                for frame in range(num_frames):
                    image, mask = draw_frame(cameras[camera_id], translation[frame], envelope[frame], shade)
                    cv2.imwrite(
                        str(folder / "images" / camera_id / f"{frame:05d}.jpg"),
                        image[:, :, ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 95],
                    )
                    cv2.imwrite(
                        str(folder / "masks" / camera_id / f"{frame:05d}.png"), mask.astype(np.uint8) * 255
                    )
                landmarks[camera_id] = np.stack(
                    [
                        face_landmarks(cameras[camera_id], translation[f], envelope[f])
                        for f in range(num_frames)
                    ]
                )
                landmarks[f"{camera_id}_detected"] = np.ones(num_frames, bool)
            save_npz(folder / "landmarks.npz", **landmarks)
            sequences[seq] = {"subject": subject, "num_frames": num_frames, "duration_s": num_frames / fps}
    write_json(root / "cameras.json", cameras)
    write_json(
        root / "dataset.json",
        {
            "schema_version": 1,
            "name": name,
            "fps": fps,
            "image_size": [height, width],
            "frontal_camera": frontal,
            "cameras": camera_ids,
            "subjects": list(subjects),
            "sequences": sequences,
            "splits": splits,
            "split_seed": seed,
            "provenance": {
                "gsbench_version": "test",
                "source": "tests/benchmark/conftest.py",
                "inputs_sha256": {},
                "stages": {},
            },
        },
    )
    return root


@pytest.fixture(scope="session")
def tiny_dataset_writer():
    """:func:`write_tiny_dataset`, for tests that need another shape of dataset."""
    return write_tiny_dataset


@pytest.fixture(scope="session")
def tiny_dataset_master(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("datasets") / "tiny")


@pytest.fixture
def tiny_dataset(tiny_dataset_master, tmp_path) -> Path:
    """A private copy (tests may corrupt it)."""
    import shutil

    return Path(shutil.copytree(tiny_dataset_master, tmp_path / "tiny"))


@pytest.fixture
def edit_dataset_json():
    """``edit(root, **changes)``: overwrite top-level keys of a dataset's dataset.json."""

    def edit(root: Path, **changes) -> None:
        path = root / "dataset.json"
        meta = json.loads(path.read_text())
        meta.update(changes)
        path.write_text(json.dumps(meta))

    return edit


class ExplodingMethod(Method):
    """Test-only: training always raises (a broken method must not stop the others)."""

    name = "exploding-test"
    description = "test-only method whose train() raises"
    protocols = ("mono-front",)

    def train(self, train_view, budget, workdir):
        raise RuntimeError("boom: this test method always fails")

    def render(self, request: RenderRequest) -> RenderOutput:  # pragma: no cover - never trained
        raise AssertionError

    def save(self, path):  # pragma: no cover
        pass

    def load(self, path):  # pragma: no cover
        pass


class PeekingMethod(Method):
    """Test-only: tries to read the test images from the render request (must fail with MethodError)."""

    name = "peeking-test"
    description = "test-only method that asks for test images"
    protocols = ("mono-front",)

    def train(self, train_view, budget, workdir):
        return TrainStats()

    def render(self, request: RenderRequest) -> RenderOutput:
        frames = request.images  # forbidden: raises MethodError
        return RenderOutput(frames, frames[..., 0])

    def save(self, path):
        (Path(path) / "nothing.txt").write_text("no state")

    def load(self, path):
        pass


class OracleMethod(Method):
    """Test-only oracle: gets the test expressions (its rows must be marked and unranked)."""

    name = "oracle-test"
    description = "test-only oracle: a flat grey head whose brightness follows the test jaw opening"
    protocols = ("mono-front",)
    oracle = True

    def train(self, train_view, budget, workdir):
        return TrainStats()

    def render(self, request: RenderRequest) -> RenderOutput:
        jaw = request.oracle_flame["jaw_pose"][:, 0]
        shape = (request.num_frames, request.camera.height, request.camera.width)
        rgb = np.broadcast_to((0.5 + jaw)[:, None, None, None], (*shape, 3)).astype(np.float32)
        return RenderOutput(np.ascontiguousarray(rgb), np.ones(shape, np.float32))

    def save(self, path):
        (Path(path) / "nothing.txt").write_text("no state")

    def load(self, path):
        pass


TEST_METHODS = (ExplodingMethod, PeekingMethod, OracleMethod)


@pytest.fixture(scope="module")
def registered_test_methods():
    """Register the test-only methods as built-ins while a test module runs."""
    from avatars.methods import BUILTIN_METHODS

    with pytest.MonkeyPatch.context() as patch:
        for cls in TEST_METHODS:
            patch.setitem(BUILTIN_METHODS, cls.name, f"{cls.__module__}:{cls.__name__}")
        yield {cls.name: cls for cls in TEST_METHODS}
