"""Export a tracked dataset in the GaussianAvatars / VHAP layout, so their code trains on our data.

One folder per subject (GaussianAvatars trains one avatar per subject)::

    OUT/<subject>/
      transforms_train.json  transforms_val.json  transforms_test.json  transforms.json (all frames)
      canonical_flame_param.npz            # zero pose, jaw_pose = [[0.3, 0, 0]], the subject's shape
      world_alignment.json                 # 4x4 applied to our world (identity unless --recentre)
      sequences_trainval.txt  sequences_test.txt
      <seq>/images/<t:05d>_<cam:02d>.png   # t = global timestep index, cam = camera index
      <seq>/fg_masks/<t:05d>_<cam:02d>.png
      <seq>/flame_param/<t:05d>.npz        # (1, ...) arrays, shape (S,)

Splits follow GaussianAvatars: the dataset's train + val sequences form "trainval", whose frontal
camera is the novel-view ``val`` split and the other cameras ``train``; the test sequences (all
cameras) are ``test``. ``timestep_index`` counts frames over all of a subject's sequences, as
VHAP's ``combine_nerf_datasets`` does, so every timestep has one flame_param file.

Cameras: ``transform_matrix`` is camera-to-world in the OpenGL/Blender convention (x right, y up,
z backward), i.e. ``inv(world_to_cam)`` with its y and z columns negated; every frame also carries
``cx, cy, fl_x, fl_y, w, h, camera_angle_x, camera_angle_y`` (GaussianAvatars reads only the angles
and size, ignoring the principal point: GaussianAvatars issue #45; the fields are correct for tools
that do read them).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np

from gsbench.dataset import (
    FLAME_FRAME_KEYS,
    Camera,
    DatasetMeta,
    audio_path,
    flame_path,
    image_path,
    mask_path,
    read_cameras_json,
    read_dataset_json,
    read_flame,
)
from gsbench.errors import InputError
from gsbench.io import atomic_path, save_npz, write_json, write_text
from gsbench.progress import track

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def opencv_world_to_cam_to_opengl_cam_to_world(world_to_cam: np.ndarray) -> np.ndarray:
    """[4,4] OpenCV world->camera -> [4,4] OpenGL camera->world (NeRF ``transform_matrix``)."""
    return np.linalg.inv(world_to_cam) @ OPENGL_FROM_OPENCV


def opengl_cam_to_world_to_opencv_world_to_cam(transform_matrix: np.ndarray) -> np.ndarray:
    """Inverse of :func:`opencv_world_to_cam_to_opengl_cam_to_world` (what GaussianAvatars does on load)."""
    return np.linalg.inv(np.asarray(transform_matrix, np.float64) @ OPENGL_FROM_OPENCV)


def export_gaussian_avatars(
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    subjects: list[str] | None = None,
    recentre: bool = False,
    copy_images: bool = True,
) -> dict[str, dict]:
    """Write the GaussianAvatars layout for each subject; returns per-subject frame counts and paths.

    ``recentre`` moves the world origin to the mean tracked head translation (VHAP's habit); the
    4x4 applied is saved in world_alignment.json either way. ``copy_images=False`` writes only the
    JSON and FLAME files (for tests and quick checks).
    """
    root = Path(dataset_dir)
    out = Path(out_dir)
    meta = read_dataset_json(root)
    camera_ids = list(meta.camera_ids)
    cameras = read_cameras_json(root, camera_ids)
    by_subject = meta.sequences_by_subject()
    unknown = sorted(set(subjects or []) - set(by_subject))
    if unknown:
        raise InputError(f"unknown subjects {unknown}", path=meta.path, fix=f"use {sorted(by_subject)}")
    summary = {}
    for subject in sorted(subjects or by_subject):
        test = list(meta.splits[subject].test)
        trainval = [s for s in by_subject[subject] if s not in test]
        summary[subject] = _export_subject(
            root,
            out / subject,
            meta,
            cameras,
            camera_ids,
            meta.frontal_camera,
            trainval,
            test,
            recentre,
            copy_images,
        )
    return summary


def _export_subject(
    root: Path,
    out: Path,
    meta: DatasetMeta,
    cameras: dict[str, Camera],
    camera_ids: list[str],
    frontal: str,
    trainval: list[str],
    test: list[str],
    recentre: bool,
    copy_images: bool,
) -> dict:
    sequences = trainval + test
    flames = {s: read_flame(flame_path(root, s), meta.sequences[s].num_frames) for s in sequences}
    alignment = np.eye(4)
    if recentre:
        alignment[:3, 3] = -np.concatenate([flames[s]["translation"] for s in sequences]).mean(0)
    write_json(
        out / "world_alignment.json",
        {
            "dataset_world_to_export_world": alignment,
            "note": "x_export = M @ x_dataset; FLAME translation and camera poses are both moved by M",
        },
    )
    shape = np.asarray(flames[sequences[0]]["shape"], np.float32)
    first = flames[sequences[0]]
    canonical = {
        "translation": np.zeros((1, 3), np.float32),
        "rotation": np.zeros((1, 3), np.float32),
        "neck_pose": np.zeros((1, 3), np.float32),
        "jaw_pose": np.array([[0.3, 0.0, 0.0]], np.float32),
        "eyes_pose": np.zeros((1, 6), np.float32),
        "shape": shape,
        "expr": np.zeros((1, first["expr"].shape[1]), np.float32),
    }
    if "static_offset" in first:
        canonical["static_offset"] = np.asarray(first["static_offset"], np.float32).reshape(1, -1, 3)
    save_npz(out / "canonical_flame_param.npz", **canonical)
    frames: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    timestep = 0
    jobs = []
    for sequence in sequences:
        flame = flames[sequence]
        audio = audio_path(root, sequence)
        if audio.is_file():  # the layout has no audio; carried so that an import gets it back
            (out / sequence).mkdir(parents=True, exist_ok=True)
            with atomic_path(out / sequence / "audio.wav") as tmp:
                shutil.copyfile(audio, tmp)
        num_frames = meta.sequences[sequence].num_frames
        for t in range(num_frames):
            param_path = f"{sequence}/flame_param/{timestep:05d}.npz"
            params = {key: np.asarray(flame[key][t : t + 1], np.float32) for key in FLAME_FRAME_KEYS}
            params["translation"] = params["translation"] + alignment[:3, 3].astype(np.float32)
            params["shape"] = shape
            if "static_offset" in flame:
                params["static_offset"] = np.asarray(flame["static_offset"], np.float32).reshape(1, -1, 3)
            save_npz(out / param_path, **params)
            for camera_index, cam in enumerate(camera_ids):
                camera = cameras[cam]
                intrinsics, width, height = camera.K, camera.width, camera.height
                transform = alignment @ opencv_world_to_cam_to_opengl_cam_to_world(camera.world_to_cam)
                name = f"{timestep:05d}_{camera_index:02d}.png"
                item = {
                    "timestep_index": timestep,
                    "timestep_index_original": t,
                    "timestep_id": f"{sequence}/{t:05d}",
                    "sequence": sequence,
                    "camera_index": camera_index,
                    "camera_id": cam,
                    "cx": float(intrinsics[0, 2]),
                    "cy": float(intrinsics[1, 2]),
                    "fl_x": float(intrinsics[0, 0]),
                    "fl_y": float(intrinsics[1, 1]),
                    "h": height,
                    "w": width,
                    "camera_angle_x": 2 * math.atan(width / (2 * intrinsics[0, 0])),
                    "camera_angle_y": 2 * math.atan(height / (2 * intrinsics[1, 1])),
                    "transform_matrix": transform.tolist(),
                    "file_path": f"{sequence}/images/{name}",
                    "fg_mask_path": f"{sequence}/fg_masks/{name}",
                    "flame_param_path": param_path,
                }
                division = "test" if sequence in test else ("val" if cam == frontal else "train")
                frames[division].append(item)
                jobs.append(
                    (
                        image_path(root, sequence, cam, t),
                        out / item["file_path"],
                        mask_path(root, sequence, cam, t),
                        out / item["fg_mask_path"],
                    )
                )
            timestep += 1
    if copy_images:
        for image_src, image_dst, mask_src, mask_dst in track(jobs, f"export: {out.name} images"):
            _convert(image_src, image_dst, cv2.IMREAD_COLOR)
            _convert(mask_src, mask_dst, cv2.IMREAD_GRAYSCALE)
    all_frames = frames["train"] + frames["val"] + frames["test"]
    for division, items in (*frames.items(), ("all", all_frames)):
        db = _shared_intrinsics(items or all_frames)
        db["frames"] = items
        db["timestep_indices"] = sorted({item["timestep_index"] for item in items})
        db["camera_indices"] = sorted({item["camera_index"] for item in items})
        name = "transforms.json" if division == "all" else f"transforms_{division}.json"
        write_json(out / name, db)
    write_text(out / "sequences_trainval.txt", "".join(f"{s}\n" for s in trainval))
    write_text(out / "sequences_test.txt", "".join(f"{s}\n" for s in test))
    return {
        "folder": str(out),
        "timesteps": timestep,
        **{division: len(items) for division, items in frames.items()},
    }


def _shared_intrinsics(items: list[dict]) -> dict:
    """Top-level intrinsics (as VHAP writes them, for NeRF tools that expect shared ones)."""
    if not items:
        return {}
    last = items[-1]
    return {
        key: last[key] for key in ("cx", "cy", "fl_x", "fl_y", "h", "w", "camera_angle_x", "camera_angle_y")
    }


def _convert(src: Path, dst: Path, flag: int) -> None:
    if not src.is_file():
        raise InputError("image not found", path=src, fix="re-run the ingest frames/masks stages")
    if src.suffix.lower() == dst.suffix.lower():
        dst.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
        return
    image = cv2.imread(str(src), flag)
    if image is None:
        raise InputError("cannot decode image", path=src, fix="re-run the ingest frames/masks stages")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"cannot write {dst}")


def read_gaussian_avatars_cameras(subject_dir: str | Path, division: str = "all") -> dict[int, dict]:
    """Cameras of an exported subject as GaussianAvatars reads them: camera_index -> {world_to_cam (OpenCV),
    K, width, height, camera_id}."""
    name = "transforms.json" if division == "all" else f"transforms_{division}.json"
    db = json.loads((Path(subject_dir) / name).read_text())
    out: dict[int, dict] = {}
    for frame in db["frames"]:
        k = np.array([[frame["fl_x"], 0, frame["cx"]], [0, frame["fl_y"], frame["cy"]], [0, 0, 1]])
        out[int(frame["camera_index"])] = {
            "world_to_cam": opengl_cam_to_world_to_opencv_world_to_cam(frame["transform_matrix"]),
            "K": k,
            "width": int(frame["w"]),
            "height": int(frame["h"]),
            "camera_id": frame["camera_id"],
        }
    return out
