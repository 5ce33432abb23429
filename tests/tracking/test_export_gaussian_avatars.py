"""GaussianAvatars/VHAP export: layout, fields, and the round trip of cameras and FLAME parameters."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from gsbench.errors import InputError
from gsbench.io import save_npz
from tracking.export_gaussian_avatars import export_gaussian_avatars, read_gaussian_avatars_cameras
from tracking.fit.model import posed_vertices
from tracking.fit.solver import FRAME_KEYS
from tracking.fit.synthetic import build_toy_head, write_synthetic_dataset

FIELDS = {
    "timestep_index",
    "camera_index",
    "camera_id",
    "cx",
    "cy",
    "fl_x",
    "fl_y",
    "w",
    "h",
    "camera_angle_x",
    "camera_angle_y",
    "transform_matrix",
    "file_path",
    "fg_mask_path",
    "flame_param_path",
}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A dataset with images, masks and flame.npz (the true parameters stand in for a tracking result)."""
    root = tmp_path_factory.mktemp("dataset")
    syn = write_synthetic_dataset(
        root,
        head=build_toy_head(seed=1),
        num_frames=3,
        num_cameras=4,
        write_images=True,
        seed=3,
        subjects={"s01": ["s01_t00", "s01_t01", "s01_t02"]},
    )
    for sequence, params in syn.params.items():
        save_npz(
            root / "sequences" / sequence / "flame.npz",
            **{k: np.asarray(v, np.float32) for k, v in params.items()},
        )
    return syn


def _ga_world_to_cam(frame: dict) -> np.ndarray:
    """What GaussianAvatars' readCamerasFromTransforms does with a frame (scene/dataset_readers.py)."""
    c2w = np.array(frame["transform_matrix"])
    c2w[:3, 1:3] *= -1
    return np.linalg.inv(c2w)


@pytest.mark.parametrize("recentre", [False, True])
def test_export_round_trips_cameras_and_flame(tmp_path, tracked, recentre):
    root = tracked.root
    out = tmp_path / "ga"
    summary = export_gaussian_avatars(root, out, recentre=recentre)
    subject_dir = out / "s01"
    assert summary["s01"]["timesteps"] == 9
    meta = json.loads((root / "dataset.json").read_text())
    cameras = json.loads((root / "cameras.json").read_text())
    alignment = np.array(
        json.loads((subject_dir / "world_alignment.json").read_text())["dataset_world_to_export_world"]
    )
    if not recentre:
        np.testing.assert_array_equal(alignment, np.eye(4))
    divisions = {
        d: json.loads((subject_dir / f"transforms_{d}.json").read_text()) for d in ("train", "val", "test")
    }
    # GaussianAvatars' split: frontal camera of train/val sequences is val, test sequences are test
    assert {f["camera_id"] for f in divisions["val"]["frames"]} == {meta["frontal_camera"]}
    assert meta["frontal_camera"] not in {f["camera_id"] for f in divisions["train"]["frames"]}
    assert {f["sequence"] for f in divisions["test"]["frames"]} == set(meta["splits"]["s01"]["test"])
    all_frames = [f for d in divisions.values() for f in d["frames"]]
    assert len(all_frames) == 9 * 4
    assert sorted({f["timestep_index"] for f in all_frames}) == list(range(9))
    model = tracked.head_model
    for frame in all_frames:
        assert FIELDS <= set(frame)
        cam = cameras[frame["camera_id"]]
        k = np.array(cam["K"])
        # cameras: GaussianAvatars' reading gives back our world_to_cam (in the export's world)
        expected = np.array(cam["world_to_cam"]) @ np.linalg.inv(alignment)
        np.testing.assert_allclose(_ga_world_to_cam(frame), expected, atol=1e-9)
        assert (frame["fl_x"], frame["fl_y"], frame["cx"], frame["cy"]) == (
            k[0, 0],
            k[1, 1],
            k[0, 2],
            k[1, 2],
        )
        assert frame["camera_angle_x"] == pytest.approx(2 * math.atan(cam["width"] / (2 * k[0, 0])))
        assert (frame["w"], frame["h"]) == (cam["width"], cam["height"])
        assert cv2.imread(str(subject_dir / frame["file_path"])).shape == (cam["height"], cam["width"], 3)
        assert cv2.imread(str(subject_dir / frame["fg_mask_path"]), cv2.IMREAD_GRAYSCALE).max() == 255
    # FLAME: per-frame (1, ...) arrays equal to flame.npz, and the posed head projects to the same pixels
    for frame in divisions["test"]["frames"][:4] + divisions["train"]["frames"][:4]:
        with np.load(subject_dir / frame["flame_param_path"]) as data:
            exported = {key: data[key] for key in data.files}
        truth = tracked.params[frame["sequence"]]
        t = frame["timestep_index_original"]
        for key in FRAME_KEYS:
            assert exported[key].shape == (1, truth[key].shape[1])
        np.testing.assert_allclose(exported["shape"], truth["shape"], atol=1e-6)
        for key in ("expr", "jaw_pose", "neck_pose", "eyes_pose", "rotation"):
            np.testing.assert_allclose(exported[key][0], truth[key][t], atol=1e-6)
        original = posed_vertices(
            model, {k: truth[k][t : t + 1] for k in FRAME_KEYS} | {"shape": truth["shape"]}
        )[0]
        moved = posed_vertices(model, exported)[0]
        cam = cameras[frame["camera_id"]]
        k = np.array(cam["K"])

        def pixels(points, world_to_cam, k=k):
            uvw = (points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]) @ k.T
            return uvw[:, :2] / uvw[:, 2:]

        np.testing.assert_allclose(
            pixels(moved, _ga_world_to_cam(frame)), pixels(original, np.array(cam["world_to_cam"])), atol=1e-3
        )
    with np.load(subject_dir / "canonical_flame_param.npz") as canonical:
        np.testing.assert_allclose(canonical["jaw_pose"], [[0.3, 0.0, 0.0]])
        assert canonical["expr"].shape == (1, model.num_expr)
    cams = read_gaussian_avatars_cameras(subject_dir)
    assert [cams[i]["camera_id"] for i in sorted(cams)] == meta["cameras"]


def test_export_without_tracking_names_the_missing_file(tmp_path):
    write_synthetic_dataset(
        tmp_path / "d",
        head=build_toy_head(seed=2),
        num_frames=2,
        num_cameras=3,
        seed=0,
        subjects={"s01": ["s01_t00"]},
    )
    with pytest.raises(InputError, match="flame.npz") as error:
        export_gaussian_avatars(tmp_path / "d", tmp_path / "out", copy_images=False)
    assert "gsbench track" in str(error.value)
