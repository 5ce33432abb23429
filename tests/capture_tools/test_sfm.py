"""Structure-from-motion calibration fallback (capture_tools/sfm.py)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from capture_tools.rig import BaselineSpec
from capture_tools.sfm import SfmParams, _rig_adjustment, _robust_mean_pose, _robust_similarity, sfm_calibrate
from gsbench.errors import StageError


def _pose(rotvec_deg, translation) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(np.radians(rotvec_deg)).as_matrix()
    pose[:3, 3] = translation
    return pose


def test_robust_mean_pose_ignores_a_misregistered_instant():
    rng = np.random.default_rng(0)
    true = _pose([10, -20, 5], [0.1, 0.2, 1.0])
    poses = [_pose(rng.normal(0, 0.05, 3), rng.normal(0, 1e-4, 3)) @ true for _ in range(7)]
    poses.append(_pose([0, 8, 0], [0, 0, 0]) @ true)  # one instant registered 8 degrees off
    mean = _robust_mean_pose(poses, max_deviation_deg=1.0)
    angle = np.degrees(Rotation.from_matrix(mean[:3, :3] @ true[:3, :3].T).magnitude())
    assert angle < 0.1
    assert np.linalg.norm(mean[:3, 3] - true[:3, 3]) < 1e-3


def test_robust_similarity_recovers_the_transform_despite_one_outlier():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(16, 3))
    rotation = Rotation.from_rotvec([0.3, -0.2, 0.9]).as_matrix()
    target = 2.5 * source @ rotation.T + np.array([1.0, -2.0, 0.5])
    target[3] += 5.0  # a camera misregistered at this instant
    similarity = _robust_similarity(source, target)
    assert np.allclose(similarity[:, :3], 2.5 * rotation, atol=1e-6)
    assert np.allclose(similarity[:, 3], [1.0, -2.0, 0.5], atol=1e-6)


def _look_at(centre: np.ndarray) -> np.ndarray:
    """``cam_from_world [4,4]`` of a camera at ``centre`` looking at the origin (y down)."""
    forward = -centre / np.linalg.norm(centre)
    right = np.cross(forward, [0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    rotation = np.stack([right, np.cross(forward, right), forward])
    return np.vstack([np.hstack([rotation, (-rotation @ centre)[:, None]]), [0, 0, 0, 1]])


def _project(cam_from_world, focal, k1, points, size=256):
    in_camera = points @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
    normalized = in_camera[:, :2] / in_camera[:, 2:]
    radial = 1 + k1 * np.sum(normalized**2, axis=1, keepdims=True)
    return focal * normalized * radial + size / 2


def test_rig_adjustment_recovers_poses_and_intrinsics_shared_over_instants():
    """Five fixed cameras, three instants with different points (the subject moves); each instant's
    reconstruction is exact in its own frame, the initial rig poses are off by ~1 degree and the focal
    lengths by 5 %: the joint adjustment recovers rotations, focal lengths and k1."""
    import pycolmap

    rng = np.random.default_rng(0)
    names = [f"cam{i}" for i in range(5)]
    true_pose = {
        c: _look_at(2.0 * np.array([np.sin(a), 0.3 * np.cos(3 * a), np.cos(a)]))
        for c, a in zip(names, np.radians([-50, -25, 0, 25, 50]), strict=True)
    }
    true_focal = {c: 300.0 + 10 * i for i, c in enumerate(names)}
    true_k1 = {c: -0.1 + 0.05 * i for i, c in enumerate(names)}
    instants = []
    for _ in range(3):
        points = rng.uniform(-0.5, 0.5, (80, 3))
        reconstruction = pycolmap.Reconstruction()
        observed = {}
        for index, c in enumerate(names):
            camera = pycolmap.Camera.create_from_model_name(index + 1, "SIMPLE_PINHOLE", 300.0, 256, 256)
            reconstruction.add_camera_with_trivial_rig(camera)
            observed[c] = _project(true_pose[c], true_focal[c], true_k1[c], points)
            image = pycolmap.Image(
                name=f"{c}.png", keypoints=observed[c], camera_id=index + 1, image_id=index + 1
            )
            reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(true_pose[c][:3, :]))
        for k, xyz in enumerate(points):
            track = pycolmap.Track([pycolmap.TrackElement(i + 1, k) for i in range(len(names))])
            reconstruction.add_point3D(xyz, track)
        instants.append(reconstruction)
    rig_from_world = np.linalg.inv(true_pose["cam0"])
    initial = {c: _pose(rng.normal(0, 0.6, 3), 0) @ true_pose[c] @ rig_from_world for c in names}
    initial["cam0"] = np.eye(4)
    focal = {c: 1.05 * true_focal[c] for c in names}
    pose, params, squared, _ = _rig_adjustment(instants, initial, focal, (256, 256), "cam0", SfmParams())
    for c in names:
        truth = true_pose[c] @ rig_from_world
        angle = np.degrees(Rotation.from_matrix(pose[c][:3, :3] @ truth[:3, :3].T).magnitude())
        assert angle < 0.01, c
        assert params[c][0] == pytest.approx(true_focal[c], rel=1e-3)
        assert params[c][1:3] == pytest.approx([128, 128])  # principal point not refined
        assert params[c][3] == pytest.approx(true_k1[c], abs=1e-3)
        assert np.sqrt(np.mean(squared[c])) < 0.01


def test_featureless_views_give_a_clear_error(tmp_path):
    images = {f"cam{i}": np.full((2, 64, 64, 3), 128, np.uint8) for i in range(3)}
    baseline = BaselineSpec(camera_a="cam0", camera_b="cam1", distance_m=0.5)
    videos = {c: f"takes/t0/{c}.mp4" for c in images}
    with pytest.raises(StageError) as error:
        sfm_calibrate(images, baseline, "cam0", tmp_path / "rig.yaml", videos)
    assert "structure from motion registered no images" in str(error.value)
    assert "rig.yaml" in str(error.value) and "ChArUco calibration take" in str(error.value)


@pytest.mark.slow
def test_sfm_fallback_registers_every_camera_of_the_default_rig(tmp_path):
    """One short take of the default preset's 16-camera rig, no calibration take: every camera is
    registered and the median rotation error after similarity alignment is below 1 degree (issue 4's
    target, 0.5 degree for the worst camera, is not met: see capture_tools/sfm.py)."""
    import sys
    from pathlib import Path

    from capture_tools.ingest import ingest
    from capture_tools.synth.presets import get_preset
    from capture_tools.synth.session import generate_session

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from ingest import camera_errors

    preset = dataclasses.replace(
        get_preset("default"), num_subjects=1, takes_per_subject=1, calibration_duration_s=1.0
    )
    session = tmp_path / "session"
    generate_session(session, preset=preset, seed=0)
    truth = json.loads((session / "ground_truth" / "cameras.json").read_text())
    rig = yaml.safe_load((session / "rig.yaml").read_text())
    rig.pop("calibration")
    centres = {
        c: -np.asarray(v["world_to_cam"])[:3, :3].T @ np.asarray(v["world_to_cam"])[:3, 3]
        for c, v in truth.items()
    }
    rig["baseline"] = {
        "camera_a": "cam00",
        "camera_b": "cam11",
        "distance_m": float(np.linalg.norm(centres["cam00"] - centres["cam11"])),
    }
    (session / "rig.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))
    out = tmp_path / "dataset"
    ingest(session, out, stages=["probe", "sync", "calibrate"])
    result = json.loads((out / "reports" / "calibration.json").read_text())["result"]
    assert result["method"] == "sfm" and sorted(result["cameras"]) == sorted(truth)
    errors = camera_errors(result["cameras"], truth, with_scale=True)
    assert np.median(errors["rotation_deg"]) < 1.0
    assert abs(errors["scale"] - 1) < 0.1  # metric scale from the baseline (measured 0.91-0.96)
