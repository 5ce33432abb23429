"""gsbench.dataset: the dataset contract's names, paths and file readers/writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gsbench import dataset as ds
from gsbench.errors import ConfigError, InputError


def _look_at(eye: np.ndarray) -> np.ndarray:
    """OpenCV world_to_cam of a camera at ``eye`` looking at the origin (y down)."""
    forward = -eye / np.linalg.norm(eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    world_to_cam = np.eye(4)
    world_to_cam[:3, :3], world_to_cam[:3, 3] = rotation, -rotation @ eye
    return world_to_cam


def _meta(**changes) -> dict:
    meta = {
        "schema_version": 1,
        "name": "d",
        "fps": 25.0,
        "image_size": [48, 64],
        "frontal_camera": "cam01",
        "cameras": ["cam00", "cam01"],
        "subjects": ["s01"],
        "sequences": {
            "s01_t00": {"subject": "s01", "num_frames": 4, "duration_s": 0.16},
            "s01_t01": {"subject": "s01", "num_frames": 3},
        },
        "splits": {"s01": {"train": ["s01_t00"], "val": [], "test": ["s01_t01"]}},
        "split_seed": 0,
        "provenance": {"source": "test"},
        "kind": "extra keys are kept",
    }
    meta.update(changes)
    return meta


def test_dataset_json_round_trip(tmp_path):
    ds.write_dataset_json(tmp_path, _meta())
    assert (tmp_path / "dataset.json").read_text() == json.dumps(_meta(), indent=2) + "\n"
    meta = ds.read_dataset_json(tmp_path)
    assert (meta.name, meta.fps, meta.image_size, meta.frontal_camera) == ("d", 25.0, (48, 64), "cam01")
    assert meta.camera_ids == ("cam00", "cam01") and meta.subjects == ("s01",)
    assert meta.sequences["s01_t00"] == ds.SequenceInfo("s01_t00", "s01", 4, 0.16)
    assert meta.sequences["s01_t01"].duration_s == 3 / 25.0  # from num_frames / fps when absent
    assert meta.splits["s01"] == ds.Split(("s01_t00",), (), ("s01_t01",))
    assert meta.sequences_by_subject() == {"s01": ["s01_t00", "s01_t01"]}
    assert meta.raw["kind"] == "extra keys are kept" and meta.path == tmp_path / "dataset.json"
    ds.check_benchmark_splits(meta)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": 2}, "schema_version 2 is not supported"),
        ({"fps": "25"}, "'fps' must be int or float"),
        ({"frontal_camera": "cam09"}, "frontal_camera 'cam09' is not in 'cameras'"),
        ({"image_size": [48]}, "image_size must be \\[height, width\\]"),
        ({"splits": {"s01": {"train": ["s01_t09"]}}}, "unknown sequence 's01_t09'"),
        ({"splits": {}}, "missing key splits.'s01'"),
    ],
)
def test_dataset_json_errors_name_the_key(tmp_path, changes, message):
    ds.write_dataset_json(tmp_path, _meta(**changes))
    with pytest.raises(ConfigError, match=message) as error:
        ds.read_dataset_json(tmp_path)
    assert str(tmp_path / "dataset.json") in str(error.value)


def test_benchmark_splits_need_train_and_test(tmp_path):
    """A tracking-only dataset may have a subject without a test sequence; the benchmark may not."""
    ds.write_dataset_json(tmp_path, _meta(splits={"s01": {"train": ["s01_t00", "s01_t01"], "test": []}}))
    meta = ds.read_dataset_json(tmp_path)
    with pytest.raises(ConfigError, match="needs at least one train and one test"):
        ds.check_benchmark_splits(meta)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        ds.read_dataset_json(tmp_path / "none")
    with pytest.raises(InputError, match="not found"):
        ds.read_dataset_json(tmp_path)
    (tmp_path / "dataset.json").write_text('{"schema_version": 1,')
    with pytest.raises(ConfigError, match="is not valid JSON"):
        ds.read_dataset_json(tmp_path)


def test_cameras_round_trip_and_projection(tmp_path):
    K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    camera = ds.Camera("cam00", K, _look_at(np.array([0.0, 0.0, 2.0])), 64, 48)
    ds.write_cameras_json(tmp_path, {"cam00": camera, "cam01": camera.to_json()})
    read = ds.read_cameras_json(tmp_path, ["cam01", "cam00"])
    assert list(read) == ["cam01", "cam00"]
    assert np.array_equal(read["cam00"].K, K) and np.allclose(read["cam00"].world_to_cam, camera.world_to_cam)
    # the origin is on the optical axis: the principal point; 0.1 m to the world's +x at 2 m: f * 0.1 / 2 px
    pixels = read["cam00"].project(np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]]))
    assert np.allclose(pixels[0], [32, 24]) and np.isclose(abs(pixels[1, 0] - 32), 5.0)
    with pytest.raises(ConfigError, match="camera 'cam02' \\(listed in dataset.json\\) is missing"):
        ds.read_cameras_json(tmp_path, ["cam02"])


def test_cameras_json_refuses_non_rigid_and_non_finite(tmp_path):
    entry = ds.Camera("c", np.eye(3) * 50, np.eye(4), 8, 8).to_json()
    entry["world_to_cam"][0][0] = 2.0
    ds.write_cameras_json(tmp_path, {"c": entry})
    with pytest.raises(InputError, match="not a rigid transform") as error:
        ds.read_cameras_json(tmp_path, ["c"])
    assert "cameras.json" in str(error.value)
    entry["world_to_cam"][0][0], entry["K"][0][0] = 1.0, float("nan")
    ds.write_cameras_json(tmp_path, {"c": entry})
    with pytest.raises(InputError, match="NaN/inf"):
        ds.read_cameras_json(tmp_path, ["c"])


def _flame(num_frames: int) -> dict[str, np.ndarray]:
    sizes = {"expr": 10, "jaw_pose": 3, "neck_pose": 3, "eyes_pose": 6, "rotation": 3, "translation": 3}
    rng = np.random.default_rng(0)
    params = {key: rng.normal(size=(num_frames, size)).astype(np.float32) for key, size in sizes.items()}
    return params | {"shape": np.zeros(20, np.float32)}


def test_flame_keys_follow_gaussian_avatars():
    assert ds.FLAME_FRAME_KEYS == ("expr", "jaw_pose", "neck_pose", "eyes_pose", "rotation", "translation")
    assert ds.PROTOCOL_NAMES == ("mono-front", "multiview", "cross-id")


def test_flame_round_trip_and_errors(tmp_path):
    path = ds.flame_path(tmp_path, "s01_t00")
    assert path == tmp_path / "sequences" / "s01_t00" / "flame.npz"
    with pytest.raises(InputError, match="gsbench track"):
        ds.read_flame(path)
    params = _flame(5)
    ds.write_flame(path, params)
    read = ds.read_flame(path, 5)
    assert set(read) == set(params) and all(np.array_equal(read[k], params[k]) for k in params)
    with pytest.raises(InputError, match="expr has 5 frames, dataset.json says 6"):
        ds.read_flame(path, 6)
    with pytest.raises(ValueError, match="lack \\['shape'\\]"):
        ds.write_flame(path, {k: v for k, v in params.items() if k != "shape"})
    np.savez(path, **{k: v for k, v in params.items() if k != "eyes_pose"})
    with pytest.raises(InputError, match="flame.npz lacks \\['eyes_pose'\\]"):
        ds.read_flame(path)
    path.write_bytes(b"PK\x03\x04 cut")
    with pytest.raises(InputError, match="truncated or corrupt"):
        ds.read_flame(path)


def test_landmarks_round_trip_and_errors(tmp_path):
    path = ds.landmarks_path(tmp_path, "s")
    points = np.random.default_rng(1).uniform(0, 64, (4, 478, 2))
    detected = np.array([True, False, True, True])
    points[1] = np.nan
    ds.write_landmarks(path, {"cam00": (points, detected)})
    read_points, read_detected = ds.read_landmarks(path, ["cam00"], 4)["cam00"]
    assert read_points.dtype == np.float32 and np.allclose(read_points[detected], points[detected], atol=1e-4)
    assert np.isnan(read_points[1]).all() and np.array_equal(read_detected, detected)
    with pytest.raises(InputError, match="expected \\[5,478,2\\] points"):
        ds.read_landmarks(path, ["cam00"], 5)
    with pytest.raises(InputError, match="no entry 'cam01'"):
        ds.read_landmarks(path, ["cam01"])
    ds.write_landmarks(path, {"cam00": (points, np.ones(4, bool))})
    with pytest.raises(InputError, match="NaN landmarks in frames flagged as detected \\(first: \\[1\\]\\)"):
        ds.read_landmarks(path, ["cam00"])


def test_paths_follow_the_layout():
    root = Path("/d")
    assert ds.image_path(root, "s", "cam00", 7) == root / "sequences/s/images/cam00/00007.jpg"
    assert ds.mask_path(root, "s", "cam00", 7) == root / "sequences/s/masks/cam00/00007.png"
    assert ds.audio_path(root, "s") == root / "sequences/s/audio.wav"
    assert ds.background_path(root, "cam00") == root / "backgrounds/cam00.png"
