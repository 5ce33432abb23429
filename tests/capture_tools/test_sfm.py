"""Structure-from-motion calibration fallback (capture_tools/sfm.py)."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from capture_tools.rig import BaselineSpec, CameraIntrinsics, IntrinsicsSpec
from capture_tools.sfm import (
    SfmParams,
    _rig_adjustment,
    _robust_mean_pose,
    _robust_similarity,
    known_camera,
    sfm_calibrate,
)
from gsbench.errors import ConfigError, StageError


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
    cameras = {
        c: pycolmap.Camera.create_from_model_name(0, "SIMPLE_RADIAL", 1.05 * true_focal[c], 256, 256)
        for c in names
    }
    pose, params, squared, _ = _rig_adjustment(instants, initial, cameras, "cam0", SfmParams())
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


def test_known_camera_projects_like_opencv():
    """FULL_OPENCV with k4..k6 = 0 is OpenCV's 5-term model: same pixels as cv2.projectPoints, and
    cam_from_img inverts it."""
    K = np.array([[691.0, 0.0, 136.4], [0.0, 690.6, 121.3], [0.0, 0.0, 1.0]])
    dist = np.array([-0.29, -0.15, 0.001, -0.002, 0.05])
    rng = np.random.default_rng(0)
    in_camera = np.c_[rng.uniform(-0.2, 0.2, (50, 2)), np.ones(50)]
    camera = known_camera(K, dist, 256, 256)
    expected = cv2.projectPoints(in_camera, np.zeros(3), np.zeros(3), K, dist)[0][:, 0]
    assert np.abs(camera.img_from_cam(in_camera) - expected).max() < 1e-9
    assert np.abs(camera.cam_from_img(expected) - in_camera[:, :2]).max() < 1e-8


def _distorted_instants(names, true_pose, K, dist, rng, num_instants=3):
    """Per instant a pycolmap reconstruction of random points seen by every camera through its OpenCV
    ``K``, ``dist`` (keypoints as the lens puts them), exact in its own frame."""
    import pycolmap

    instants = []
    for _ in range(num_instants):
        points = rng.uniform(-0.5, 0.5, (80, 3))
        reconstruction = pycolmap.Reconstruction()
        for index, c in enumerate(names):
            camera = known_camera(K[c], dist[c], 256, 256)
            camera.camera_id = index + 1
            reconstruction.add_camera_with_trivial_rig(camera)
            rvec = cv2.Rodrigues(true_pose[c][:3, :3])[0]
            observed = cv2.projectPoints(points, rvec, true_pose[c][:3, 3], K[c], dist[c])[0][:, 0]
            image = pycolmap.Image(
                name=f"{c}.png", keypoints=observed, camera_id=index + 1, image_id=index + 1
            )
            reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(true_pose[c][:3, :]))
        for k, xyz in enumerate(points):
            track = pycolmap.Track([pycolmap.TrackElement(i + 1, k) for i in range(len(names))])
            reconstruction.add_point3D(xyz, track)
        instants.append(reconstruction)
    return instants


def test_rig_adjustment_with_known_intrinsics_moves_only_the_poses():
    """Known intrinsics with strong distortion and off-centre principal points (FULL_OPENCV), initial
    rig poses off by ~1 degree: the poses are recovered and the intrinsics come back bit for bit."""
    rng = np.random.default_rng(2)
    names = [f"cam{i}" for i in range(5)]
    true_pose = {
        c: _look_at(2.0 * np.array([np.sin(a), 0.3 * np.cos(3 * a), np.cos(a)]))
        for c, a in zip(names, np.radians([-50, -25, 0, 25, 50]), strict=True)
    }
    K = {
        c: np.array([[300.0 + 10 * i, 0, 120.0 + 4 * i], [0, 302.0 + 9 * i, 135.0 - 3 * i], [0, 0, 1]])
        for i, c in enumerate(names)
    }
    dist = {c: np.array([-0.3 + 0.05 * i, 0.12, 0.002, -0.001, 0.03]) for i, c in enumerate(names)}
    instants = _distorted_instants(names, true_pose, K, dist, rng)
    rig_from_world = np.linalg.inv(true_pose["cam0"])
    initial = {c: _pose(rng.normal(0, 0.6, 3), 0) @ true_pose[c] @ rig_from_world for c in names}
    initial["cam0"] = np.eye(4)
    known = {c: known_camera(K[c], dist[c], 256, 256) for c in names}
    pose, params, squared, diagnostics = _rig_adjustment(
        instants, initial, known, "cam0", SfmParams(), refine_intrinsics=False
    )
    assert "poses only (intrinsics fixed)" in diagnostics["joint_adjustment"]
    for c in names:
        truth = true_pose[c] @ rig_from_world
        angle = np.degrees(Rotation.from_matrix(pose[c][:3, :3] @ truth[:3, :3].T).magnitude())
        assert angle < 0.01, c
        assert np.array_equal(params[c], known[c].params), c
        assert np.sqrt(np.mean(squared[c])) < 0.01


def _box_scene(seed: int = 0):
    """Five cameras on a 60 degree arc around a randomly textured cube (a different texture per face) in
    front of a textured wall, two instants with the cube turned differently, rendered by ray casting
    through each camera's distorted lens (off-centre principal points, k1 k2 p1 p2): per camera
    ``[2, 256, 256, 3]`` images, ``world_to_cam``, ``K`` and ``dist``."""
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(seed)

    def texture(size=256):
        layers = [
            cv2.resize(rng.uniform(0, 1, (size // s, size // s)), (size, size), interpolation=cv2.INTER_CUBIC)
            for s in (4, 8, 16, 32)
        ]
        t = np.sum(layers, axis=0)
        return (t - t.min()) / (t.max() - t.min())

    names = [f"cam{i}" for i in range(5)]
    world_to_cam = {
        c: _look_at(1.6 * np.array([np.sin(a), 0.15 * np.cos(2 * a + 1), np.cos(a)]))
        for c, a in zip(names, np.radians([-30, -15, 0, 15, 30]), strict=True)
    }
    K = {
        c: np.array([[330.0 + 5 * i, 0, 120.0 + 4 * i], [0, 331.0 + 5 * i, 132.0 - 3 * i], [0, 0, 1]])
        for i, c in enumerate(names)
    }
    dist = {c: np.array([-0.2 + 0.02 * i, 0.1, 0.001, -0.001, 0.0]) for i, c in enumerate(names)}
    cube_faces, wall_faces = [texture() for _ in range(6)], [texture() for _ in range(6)]
    wall = np.eye(4)
    wall[2, 3] = -1.5
    boxes_per_instant = []  # (world_from_box, half extents, face textures)
    for turn in (0.5, 0.9):
        cube = np.eye(4)
        cube[:3, :3] = Rotation.from_rotvec([0.3, turn, 0.1]).as_matrix()
        boxes_per_instant.append(
            [(cube, np.full(3, 0.35), cube_faces), (wall, np.array([2.0, 2.0, 0.05]), wall_faces)]
        )
    u, v = np.meshgrid(np.arange(256.0), np.arange(256.0))
    images = {}
    for c in names:
        rays = cv2.undistortPoints(np.stack([u.ravel(), v.ravel()], 1)[:, None], K[c], dist[c])[:, 0]
        rotation, translation = world_to_cam[c][:3, :3], world_to_cam[c][:3, 3]
        origin, directions = -rotation.T @ translation, np.c_[rays, np.ones(len(rays))] @ rotation
        views = []
        for boxes in boxes_per_instant:
            depth, value = np.full(len(directions), np.inf), np.zeros(len(directions))
            for world_from_box, half, faces in boxes:
                box_from_world = np.linalg.inv(world_from_box)
                o = box_from_world[:3, :3] @ origin + box_from_world[:3, 3]
                d = directions @ box_from_world[:3, :3].T
                for axis in range(3):
                    a, b = [k for k in range(3) if k != axis]
                    for face, sign in enumerate((-1, 1)):
                        with np.errstate(divide="ignore", invalid="ignore"):
                            t = (sign * half[axis] - o[axis]) / d[:, axis]
                            p = o + t[:, None] * d
                        hit = (
                            (t > 0)
                            & (t < depth)
                            & (np.abs(p[:, a]) <= half[a])
                            & (np.abs(p[:, b]) <= half[b])
                        )
                        pixel = (p[hit][:, [b, a]] / half[[b, a]] * 0.5 + 0.5) * 255
                        value[hit] = map_coordinates(faces[2 * axis + face], pixel.T, order=1)
                        depth[hit] = t[hit]
            views.append(np.repeat((value.reshape(256, 256, 1) * 255).astype(np.uint8), 3, axis=2))
        images[c] = np.stack(views)
    return images, world_to_cam, K, dist


def _known_spec(K, dist, path) -> IntrinsicsSpec:
    cameras = {
        c: CameraIntrinsics(
            K=tuple(map(tuple, K[c].tolist())), dist=tuple(dist[c].tolist()), width=256, height=256
        )
        for c in K
    }
    return IntrinsicsSpec(path=path, sha256="0" * 64, cameras=cameras)


def test_known_intrinsics_are_carried_unchanged_and_the_poses_recovered(tmp_path):
    """End to end (SIFT, matching, mapping, joint adjustment) on rendered views of a textured box with
    known distorted intrinsics: every camera registered, its K and dist exactly the given ones, rotation
    error after similarity alignment below 0.1 degree, metric scale from the baseline."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
    from ingest import camera_errors

    images, world_to_cam, K, dist = _box_scene()
    centre = {c: -m[:3, :3].T @ m[:3, 3] for c, m in world_to_cam.items()}
    baseline = BaselineSpec("cam0", "cam4", float(np.linalg.norm(centre["cam0"] - centre["cam4"])))
    spec = _known_spec(K, dist, tmp_path / "calibration.json")
    videos = {c: f"takes/t0/{c}.mp4" for c in images}
    calibrations, diagnostics = sfm_calibrate(
        images, baseline, "cam2", tmp_path / "rig.yaml", videos, intrinsics=spec
    )
    assert diagnostics["intrinsics"] == f"from {tmp_path / 'calibration.json'} (fixed)"
    assert diagnostics["registered_per_instant"] == [5, 5]
    for c in images:
        assert np.array_equal(calibrations[c].K, K[c]) and np.array_equal(calibrations[c].dist, dist[c]), c
    estimated = {c: calibrations[c].to_dict() for c in images}
    truth = {c: {"K": K[c], "world_to_cam": world_to_cam[c]} for c in images}
    errors = camera_errors(estimated, truth, with_scale=True)
    assert errors["rotation_deg"].max() < 0.1  # measured 0.05
    assert abs(errors["scale"] - 1) < 0.01
    assert max(calibrations[c].rms_px for c in images) < 0.5


def test_known_intrinsics_of_another_image_size_give_a_clear_error(tmp_path):
    images = {f"cam{i}": np.zeros((1, 64, 80, 3), np.uint8) for i in range(3)}
    K = {c: np.array([[100.0, 0, 40], [0, 100, 32], [0, 0, 1]]) for c in images}
    spec = _known_spec(K, {c: np.zeros(5) for c in images}, tmp_path / "calibration.json")  # 256x256
    baseline = BaselineSpec(camera_a="cam0", camera_b="cam1", distance_m=0.5)
    videos = {c: f"takes/t0/{c}.mp4" for c in images}
    with pytest.raises(ConfigError) as error:
        sfm_calibrate(images, baseline, "cam0", tmp_path / "rig.yaml", videos, intrinsics=spec)
    message = str(error.value)
    assert str(tmp_path / "calibration.json") in message and "camera cam0" in message
    assert "256x256" in message and "takes/t0/cam0.mp4 is 80x64" in message


def test_calibrate_resume_key_follows_the_intrinsics_file(tmp_path):
    """The SfM branch's stage inputs carry the intrinsics file's sha256 (a changed file re-runs the
    calibrate stage) and nothing when the rig has no intrinsics key (existing datasets resume)."""
    import types

    from capture_tools.rig import load_rig
    from capture_tools.stages.calibrate import inputs as _calibrate_inputs

    rig = {
        "fps": 25,
        "frontal_camera": "cam0",
        "audio": {"sample_rate": 16000, "master": "audio.wav"},
        "cameras": [{"id": "cam0", "video": "cam0.mp4"}, {"id": "cam1", "video": "cam1.mp4"}],
        "takes": [{"id": "t0", "subject": "s01"}],
    }
    entry = {"K": [[300.0, 0, 128], [0, 300, 128], [0, 0, 1]], "dist": [0.0] * 5, "width": 256, "height": 256}
    (tmp_path / "cal.json").write_text(json.dumps({"cam0": entry, "cam1": entry}))
    results = {"probe": {"videos": {"takes/t0/cam0": {"sha256": "a"}}}, "sync": {"takes": {"t0": {}}}}

    def inputs(data):
        (tmp_path / "rig.yaml").write_text(yaml.safe_dump(data))
        return _calibrate_inputs(types.SimpleNamespace(rig=load_rig(tmp_path), results=results))["sfm"]

    plain = inputs(rig)
    assert "intrinsics_sha256" not in plain
    first = inputs(dict(rig, intrinsics="cal.json"))
    (tmp_path / "cal.json").write_text(
        json.dumps({"cam0": entry, "cam1": dict(entry, dist=[0.1, 0, 0, 0, 0])})
    )
    second = inputs(dict(rig, intrinsics="cal.json"))
    assert first["intrinsics_sha256"] != second["intrinsics_sha256"]
    assert {k: v for k, v in first.items() if k != "intrinsics_sha256"} == plain


def test_calibrate_resume_key_follows_the_instant_choice(tmp_path, monkeypatch):
    """The SfM branch's stage inputs carry the instant choice and, for the stillness pass, every take's
    sync and videos (a changed take re-runs calibrate); evenly spaced over the first take: that take's
    only. "auto" resolves to the stillness pass with known intrinsics, to the first take without."""
    import types

    from capture_tools.rig import load_rig
    from capture_tools.sfm import InstantChoice
    from capture_tools.stages import calibrate as stages

    rig = {
        "fps": 25,
        "frontal_camera": "cam0",
        "audio": {"sample_rate": 16000, "master": "audio.wav"},
        "cameras": [{"id": "cam0", "video": "cam0.mp4"}],
        "takes": [{"id": "t0", "subject": "s01"}, {"id": "t1", "subject": "s01"}],
    }
    entry = {"K": [[300.0, 0, 128], [0, 300, 128], [0, 0, 1]], "dist": [0.0] * 5, "width": 256, "height": 256}
    (tmp_path / "cal.json").write_text(json.dumps({"cam0": entry}))
    videos = {"takes/t0/cam0": {"sha256": "a"}, "takes/t1/cam0": {"sha256": "b"}}
    results = {"probe": {"videos": videos}, "sync": {"takes": {"t0": {"x": 0}, "t1": {"x": 1}}}}

    def inputs(data, choice):
        monkeypatch.setattr(stages, "SFM_INSTANTS", choice)
        (tmp_path / "rig.yaml").write_text(yaml.safe_dump(data))
        return stages.inputs(types.SimpleNamespace(rig=load_rig(tmp_path), results=results))["sfm"]

    still = inputs(rig, InstantChoice(mode="still"))
    assert still["instants"]["mode"] == "still" and sorted(still["sync"]) == ["t0", "t1"]
    assert still["videos"] == {"takes/t0/cam0": "a", "takes/t1/cam0": "b"}
    first = inputs(rig, InstantChoice(mode="first_take"))
    assert sorted(first["sync"]) == ["t0"] and first["videos"] == {"takes/t0/cam0": "a"}
    assert inputs(rig, InstantChoice(mode="still", per_take=3))["instants"] != still["instants"]
    assert sorted(inputs(rig, InstantChoice())["sync"]) == ["t0"]  # auto, from scratch
    assert sorted(inputs(dict(rig, intrinsics="cal.json"), InstantChoice())["sync"]) == ["t0", "t1"]


@pytest.mark.slow
def test_sfm_fallback_registers_every_camera_of_the_default_rig(tmp_path):
    """One short take of the default preset's 16-camera rig, no calibration take: every camera is
    registered and the median rotation error after similarity alignment is below 1 degree (issue 4's
    target, 0.5 degree for the worst camera, is not met: see docs/measurements.md); then with known
    intrinsics given in rig.yaml."""
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

    # Known-intrinsics mode through rig.yaml: the true intrinsics (written here from ground truth, without
    # extrinsics) re-run the calibrate stage (its key follows the file) and come out unchanged.
    known = {c: {k: v[k] for k in ("K", "dist", "width", "height")} for c, v in truth.items()}
    (tmp_path / "known.json").write_text(json.dumps(known))
    rig["intrinsics"] = "../known.json"
    (session / "rig.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))
    ingest(session, out, stages=["probe", "sync", "calibrate"])
    result = json.loads((out / "reports" / "calibration.json").read_text())["result"]
    assert result["diagnostics"]["intrinsics"] == f"from {(tmp_path / 'known.json').resolve()} (fixed)"
    for camera, values in known.items():
        assert np.array_equal(result["cameras"][camera]["K"], values["K"]), camera
        assert np.array_equal(result["cameras"][camera]["dist"], values["dist"]), camera
    errors = camera_errors(result["cameras"], truth, with_scale=True)
    assert np.median(errors["rotation_deg"]) < 0.3


def _disc_frame(centre_x: float, width: int = 64, height: int = 48) -> np.ndarray:
    """A bright disc (radius 8 px, smooth edge) at ``centre_x`` over a fixed texture, ``[H, W]`` float."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    texture = 40 + 20 * np.sin(0.7 * x) * np.cos(0.5 * y)
    disc = np.clip(8.5 - np.hypot(x - centre_x, y - height / 2), 0, 1)
    return texture * (1 - disc) + 220 * disc


def _held_positions(num_frames: int, holds: list[int], speed: float = 2.0) -> np.ndarray:
    """Disc x per frame: moving at ``speed`` px per frame, except that it stands still over frames
    ``h - 1 .. h + 1`` for each ``h`` in ``holds``."""
    steps = np.full(num_frames - 1, speed)
    for hold in holds:
        steps[hold - 1 : hold + 1] = 0  # steps into frames h and h + 1
    return 10 + np.concatenate([[0], np.cumsum(steps)]) % 40


def test_still_instants_are_the_frames_where_the_scene_stops():
    """Synthetic frame stacks with known still frames: frame_motion is 0 exactly where the disc stands
    still on both sides and grows with its speed; the selection takes those frames, at most per_take
    from one take, and draws on the take's other still frames only when more instants are asked for
    than the takes give under that cap."""
    from capture_tools.sfm import InstantChoice, frame_motion, select_still_instants

    stacks = {
        "t0": np.stack([_disc_frame(x) for x in _held_positions(30, [6, 14, 23])]),
        "t1": np.stack([_disc_frame(x) for x in _held_positions(30, [17])]),
    }
    scores = {take: frame_motion(stack) for take, stack in stacks.items()}
    for take, holds in (("t0", [6, 14, 23]), ("t1", [17])):
        assert np.all(scores[take][holds] == 0), take
        moving = np.setdiff1d(np.arange(30), [h + d for h in holds for d in (-1, 0, 1)])
        assert scores[take][moving].min() > 1.0, take  # grey levels per frame, the disc 2 px per frame
    slow = frame_motion(np.stack([_disc_frame(x) for x in 10 + 0.5 * np.arange(30)]))
    fast = frame_motion(np.stack([_disc_frame(x) for x in 10 + 1.5 * np.arange(30)]))
    assert np.all(fast[1:-1] > 2 * slow[1:-1])

    choice = InstantChoice(count=3, per_take=2, min_gap_frames=3)
    assert select_still_instants(scores, choice) == [("t0", 6), ("t0", 14), ("t1", 17)]
    # a fourth instant: t1's second (moving) frame comes before t0's third hold, the cap spreads the
    # instants over the takes; a fifth lifts the cap and takes that hold
    fourth = select_still_instants(scores, dataclasses.replace(choice, count=4))
    assert [take for take, _ in fourth] == ["t0", "t0", "t1", "t1"] and ("t0", 23) not in fourth
    fifth = select_still_instants(scores, dataclasses.replace(choice, count=5))
    assert set(fourth) < set(fifth) and ("t0", 23) in fifth
    # instants of one take stay min_gap_frames apart even when the cap is lifted
    picked = select_still_instants({"t0": scores["t0"]}, dataclasses.replace(choice, count=7))
    indices = [index for _, index in picked]
    assert len(picked) == 7 and np.all(np.diff(indices) >= 3)
    assert {6, 14, 23} <= set(indices)


def test_candidate_instants_minimise_the_spread_of_the_cameras_frame_times():
    """Cameras at sub-frame phases 0.1, 0.2, 0.35 and 0.7 frame: the shortest arc holding all is
    0.1 .. 0.7 (the widest gap, 0.7 -> 1.1, left out), so the frames nearest to each instant span 0.6
    frame (a grid at phase 0 would mix 0.7 - 1 = -0.3 with 0.35: 0.65), each within 0.3 frame of it, and
    every instant has a frame in every camera."""
    from capture_tools.sfm import candidate_instants

    fps = 25.0
    offsets_s = np.array([0.1, 0.35, -0.3, 1.2]) / fps  # phases 0.1, 0.35, 0.7, 0.2
    num_frames = np.array([20, 20, 21, 18])
    times, frames, spread = candidate_instants(offsets_s, num_frames, fps)
    assert spread == pytest.approx(0.6)
    frame_times = offsets_s[None, :] + frames / fps  # [M, C]
    span = (frame_times.max(1) - frame_times.min(1)) * fps
    assert np.allclose(span, 0.6)
    assert np.all(np.abs(frame_times - times[:, None]) * fps <= 0.3 + 1e-9)
    assert np.all((frames >= 0) & (frames < num_frames))
    assert np.allclose(np.diff(times) * fps, 1)
    # every instant covered by all cameras is there: master frames 1.4 .. 18.4 (the last camera's frames
    # are at 1.2 .. 18.2, the others cover those instants)
    assert np.allclose(times * fps, np.arange(1.4, 18.5))
    same_phase, _, zero = candidate_instants(np.zeros(3), np.array([5, 5, 5]), fps)
    assert zero == 0 and np.allclose(same_phase * fps, np.arange(5))


def test_stage_picks_the_still_instants_of_the_videos(tmp_path):
    """The calibrate stage's stillness pass on encoded videos: three cameras at sub-frame offsets film
    a disc that stands still for 0.2 s around known master times; the instants chosen lie in those holds
    (codec noise and the offsets notwithstanding), at most two per take, and each camera's frame is the
    one nearest to the instant."""
    import types

    from session_factory import encode

    from capture_tools.sfm import InstantChoice
    from capture_tools.stages.calibrate import _still_instants

    fps, num_frames = 25.0, 30
    offsets_s = {"c0": 0.0, "c1": 0.013, "c2": -0.009}
    holds_s = {"ta": [0.3, 0.8], "tb": [0.5]}  # the disc stands still for +-0.1 s around each

    def position(t: np.ndarray, holds: list[float]) -> np.ndarray:
        moving = np.clip(t, 0, None).copy()
        for hold in holds:  # time spent standing still does not advance the disc
            moving -= np.clip(t - (hold - 0.1), 0, 0.2)
        return 10 + 60 * moving

    videos, sync = {}, {}
    for take, holds in holds_s.items():
        sync[take] = {"cameras": {}}
        for camera, offset in offsets_s.items():
            times = offset + np.arange(num_frames) / fps
            grey = np.stack([_disc_frame(x) for x in position(times, holds)])
            path = tmp_path / take / f"{camera}.mp4"
            encode(path, np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8), None, fps)
            videos[f"takes/{take}/{camera}"] = {
                "width": 64,
                "height": 48,
                "num_frames": num_frames,
                "fps": fps,
            }
            sync[take]["cameras"][camera] = {"offset_s": offset}
    rig = types.SimpleNamespace(
        camera_ids=list(offsets_s),
        frontal_camera="c0",
        baseline=BaselineSpec("c1", "c2", 1.0),
        takes=[types.SimpleNamespace(id=take) for take in holds_s],
        take_video=lambda take, camera: tmp_path / take / f"{camera}.mp4",
        rig_file=tmp_path / "rig.yaml",
    )
    ctx = types.SimpleNamespace(
        rig=rig,
        results={"probe": {"videos": videos}, "sync": {"takes": sync}},
        params=types.SimpleNamespace(workers=1),
    )
    instants = _still_instants(ctx, InstantChoice(count=3, per_take=2, min_gap_frames=3, motion_width=32))
    assert [i["take"] for i in instants] == ["ta", "ta", "tb"]
    for instant in instants:
        assert min(abs(instant["time_s"] - hold) for hold in holds_s[instant["take"]]) < 0.1, instant
        for camera, offset in offsets_s.items():
            assert abs(offset + instant["frames"][camera] / fps - instant["time_s"]) <= 0.5 / fps, camera
