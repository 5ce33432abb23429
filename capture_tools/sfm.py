"""Structure-from-motion calibration fallback (pycolmap) for sessions without a calibration take.

Images: a few synchronized instants of the first take, every camera (one folder per camera, so COLMAP
gives each camera one set of intrinsics: ``CameraMode.PER_FOLDER``, ``OPENCV`` model). SIFT features on
the CPU, exhaustive matching, incremental mapping; the static studio behind the subject carries most
matches. Each camera's pose is the mean over its registered instants (the rig does not move).

Scale: SfM is up to a similarity; ``baseline`` in rig.yaml (the measured distance between two camera
centres) fixes the metric scale. The world frame is then the one of the ChArUco path
(:func:`capture_tools.calibrate.rig_world_from_ref`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from capture_tools.calibrate import CameraCalibration, _mean_pose, rig_world_from_ref
from capture_tools.rig import BaselineSpec
from gsbench.errors import ConfigError, StageError


def sfm_calibrate(
    images_by_camera: dict[str, np.ndarray],
    baseline: BaselineSpec | None,
    frontal: str,
    rig_file: Path,
    video_paths: dict[str, str],
) -> tuple[dict[str, CameraCalibration], dict]:
    """``images_by_camera[camera]``: ``[N, H, W, 3]`` RGB frames of N synchronized instants."""
    import pycolmap

    if baseline is None:
        raise ConfigError(
            "key 'baseline': the session has no calibration take, and structure from motion needs a known "
            "distance between two cameras for the metric scale",
            path=rig_file,
            fix="add baseline: {camera_a: ..., camera_b: ..., distance_m: ...} or a ChArUco calibration take",
        )
    with tempfile.TemporaryDirectory(prefix="gsbench-sfm-") as tmp:
        work = Path(tmp)
        image_root = work / "images"
        names: dict[str, str] = {}
        for camera, frames in images_by_camera.items():
            (image_root / camera).mkdir(parents=True)
            for index, frame in enumerate(frames):
                name = f"{camera}/{index:03d}.png"
                cv2.imwrite(str(image_root / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                names[name] = camera
        database = work / "database.db"
        reader = pycolmap.ImageReaderOptions()
        reader.camera_model = "OPENCV"
        pycolmap.extract_features(
            database,
            image_root,
            camera_mode=pycolmap.CameraMode.PER_FOLDER,
            reader_options=reader,
            device=pycolmap.Device.cpu,
        )
        pycolmap.match_exhaustive(database, device=pycolmap.Device.cpu)
        (work / "sparse").mkdir()
        reconstructions = pycolmap.incremental_mapping(database, image_root, work / "sparse")
    if not reconstructions:
        raise StageError(
            "structure from motion registered no images",
            path=rig_file,
            fix="record a ChArUco calibration take (see docs/interfaces.md)",
        )
    reconstruction = max(reconstructions.values(), key=lambda r: r.num_reg_images())

    poses: dict[str, list[np.ndarray]] = {c: [] for c in images_by_camera}
    intrinsics: dict[str, np.ndarray] = {}
    squared: dict[str, list[float]] = {c: [] for c in images_by_camera}
    for image in reconstruction.images.values():
        if not image.has_pose:
            continue
        camera = names[image.name]
        pose = np.eye(4)
        pose[:3, :] = image.cam_from_world().matrix()
        poses[camera].append(pose)
        model = reconstruction.cameras[image.camera_id]
        intrinsics[camera] = np.asarray(model.params, np.float64)
        for point in image.points2D:
            if point.has_point3D():
                projected = model.img_from_cam(
                    image.cam_from_world() * reconstruction.points3D[point.point3D_id].xyz
                )
                if projected is not None:  # None: behind the camera
                    squared[camera].append(float(np.sum(np.square(projected - point.xy))))
    missing = [c for c, p in poses.items() if not p]
    if missing:
        raise StageError(
            f"camera {missing[0]}: structure from motion could not register it",
            path=video_paths[missing[0]],
            fix="record a ChArUco calibration take (see docs/interfaces.md)",
        )
    cam_from_world = {c: _mean_pose(p) for c, p in poses.items()}
    centre = {c: -m[:3, :3].T @ m[:3, 3] for c, m in cam_from_world.items()}
    distance = float(np.linalg.norm(centre[baseline.camera_a] - centre[baseline.camera_b]))
    if distance <= 0:
        raise StageError("baseline cameras coincide in the reconstruction", path=rig_file)
    scale = baseline.distance_m / distance
    ref_from_world = cam_from_world[frontal]
    cam_from_ref = {}
    for camera, pose in cam_from_world.items():
        relative = pose @ np.linalg.inv(ref_from_world)
        relative[:3, 3] *= scale
        cam_from_ref[camera] = relative
    world = rig_world_from_ref(cam_from_ref, frontal)
    calibrations = {}
    for camera, frames in images_by_camera.items():
        fx, fy, cx, cy, k1, k2, p1, p2 = intrinsics[camera]
        height, width = frames.shape[1:3]
        calibrations[camera] = CameraCalibration(
            camera_id=camera, width=width, height=height,
            K=np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]),
            dist=np.array([k1, k2, p1, p2, 0.0]), world_to_cam=cam_from_ref[camera] @ world,
            num_views=len(poses[camera]),
            rms_px=float(np.sqrt(np.mean(squared[camera]))) if squared[camera] else float("nan"),
        )  # fmt: skip
    diagnostics = {
        "method": "structure from motion (pycolmap)",
        "registered_images": reconstruction.num_reg_images(),
        "points3D": reconstruction.num_points3D(),
        "scale_from_baseline": scale,
    }
    return calibrations, diagnostics
