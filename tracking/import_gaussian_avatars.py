"""Import the GaussianAvatars / VHAP layout into a gsbench dataset: the inverse of
tracking/export_gaussian_avatars.py (see its docstring for the layout).

``SRC`` is one subject folder (with ``transforms.json``) or a folder of them. Per subject:

* cameras from the frames' ``transform_matrix`` (OpenGL camera-to-world) and ``fl_x, fl_y, cx, cy,
  w, h``, taken back to OpenCV world-to-camera; ``world_alignment.json`` (when present) is undone, so
  an export with ``--recentre`` comes back in the original world;
* sequences from each frame's ``sequence`` (else the first folder of ``file_path``), frames ordered by
  ``timestep_index``; FLAME parameters from ``flame_param_path`` (one npz per timestep);
* images (``file_path``, any format cv2 reads) as JPEG, masks (``fg_mask_path``) as 0/255 PNG;
* the split: ``sequences_test.txt`` (else the sequences of ``transforms_test.json``) are test, the rest
  train; the frontal camera is the one of ``transforms_val.json`` (GaussianAvatars' novel-view split);
* audio: ``<seq>/audio.wav`` when the folder has it (our export writes it). A sequence without audio is
  refused: every protocol drives the avatar by audio (NeRSemble/VHAP exports carry none);
* landmarks: MediaPipe FaceMesh on the imported images (``landmarks=False`` skips it; the dataset is
  then incomplete for the benchmark, which needs them for LMD).

All subjects must share the cameras (one cameras.json per dataset).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from gsbench.dataset import (
    FLAME_FRAME_KEYS,
    SCHEMA_VERSION,
    audio_path,
    flame_path,
    image_path,
    landmarks_path,
    mask_path,
    write_cameras_json,
    write_dataset_json,
    write_flame,
    write_landmarks,
)
from gsbench.errors import InputError
from gsbench.io import folder_lock, load_npz
from gsbench.progress import log, track
from tracking.export_gaussian_avatars import opengl_cam_to_world_to_opencv_world_to_cam


def _subject_dirs(src: Path) -> list[Path]:
    if (src / "transforms.json").is_file():
        return [src]
    found = sorted(p for p in src.iterdir() if p.is_dir() and (p / "transforms.json").is_file())
    if not found:
        raise InputError(
            "no transforms.json here or in a sub-folder",
            path=src,
            fix="pass a GaussianAvatars subject folder (VHAP export) or a folder of them",
        )
    return found


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read ({error})", path=path) from None


def import_gaussian_avatars(src: str | Path, out: str | Path, *, landmarks: bool = True) -> dict:
    """Write the gsbench dataset layout at ``out`` from the GaussianAvatars folder(s) at ``src``."""
    from capture_tools.ingest import _check_output

    src, out = Path(src).resolve(), Path(out).resolve()
    subjects = _subject_dirs(src)
    plans = [_plan_subject(folder) for folder in subjects]
    cameras = plans[0]["cameras"]
    for plan in plans[1:]:
        if set(plan["cameras"]) != set(cameras) or any(
            not np.allclose(plan["cameras"][c]["world_to_cam"], cameras[c]["world_to_cam"], atol=1e-6)
            for c in cameras
        ):
            raise InputError(
                "cameras differ from the first subject's",
                path=plan["folder"] / "transforms.json",
                fix="import subjects recorded with different cameras into separate datasets",
            )
    _check_output(out)
    (out / ".ingest").mkdir(parents=True, exist_ok=True)
    with folder_lock(out / ".ingest" / "lock", f"gsbench import into {out}"):
        return _write(out, src, plans, landmarks)


def _plan_subject(folder: Path) -> dict:
    db = _read(folder / "transforms.json")
    alignment = np.eye(4)
    if (folder / "world_alignment.json").is_file():
        alignment = np.asarray(_read(folder / "world_alignment.json")["dataset_world_to_export_world"])
    cameras: dict[str, dict] = {}
    sequences: dict[str, dict[int, dict]] = {}
    for item in db.get("frames", []):
        camera = str(item.get("camera_id", f"cam{int(item['camera_index']):02d}"))
        if camera not in cameras:
            K = [[item["fl_x"], 0.0, item["cx"]], [0.0, item["fl_y"], item["cy"]], [0.0, 0.0, 1.0]]
            world_to_cam = opengl_cam_to_world_to_opencv_world_to_cam(item["transform_matrix"]) @ alignment
            cameras[camera] = {
                "K": K,
                "world_to_cam": world_to_cam.tolist(),
                "width": int(item["w"]),
                "height": int(item["h"]),
            }
        sequence = str(item.get("sequence") or Path(item["file_path"]).parts[0])
        sequences.setdefault(sequence, {}).setdefault(int(item["timestep_index"]), {})[camera] = item
    if not sequences:
        raise InputError("transforms.json lists no frames", path=folder / "transforms.json")
    test_file = folder / "sequences_test.txt"
    if test_file.is_file():
        test = [line.strip() for line in test_file.read_text().splitlines() if line.strip()]
    elif (folder / "transforms_test.json").is_file():
        test = sorted({str(i.get("sequence")) for i in _read(folder / "transforms_test.json")["frames"]})
    else:
        test = []
    frontal = None
    if (folder / "transforms_val.json").is_file():
        val = _read(folder / "transforms_val.json").get("frames", [])
        if val:
            frontal = str(val[0].get("camera_id", f"cam{int(val[0]['camera_index']):02d}"))
    camera_ids = sorted(cameras)
    return {
        "folder": folder,
        "subject": folder.name,
        "cameras": cameras,
        "camera_ids": camera_ids,
        "frontal": frontal or camera_ids[len(camera_ids) // 2],
        "sequences": sequences,
        "test": [s for s in test if s in sequences],
        "translation_shift": alignment[:3, 3],
    }


def _write(out: Path, src: Path, plans: list[dict], landmarks: bool) -> dict:
    from capture_tools import frames as fr
    from capture_tools import masks as mk

    for name in ("sequences", "reports"):
        shutil.rmtree(out / name, ignore_errors=True)
    camera_ids = plans[0]["camera_ids"]
    sequences_meta: dict[str, dict] = {}
    splits = {}
    fps = 25.0
    for plan in plans:
        folder = plan["folder"]
        for sequence, timesteps in sorted(plan["sequences"].items()):
            audio = folder / sequence / "audio.wav"
            if not audio.is_file():
                raise InputError(
                    f"sequence {sequence} has no audio",
                    path=audio,
                    fix="put the sequence's 16 kHz recording there (the protocols are driven by audio)",
                )
            order = sorted(timesteps)
            flames = []
            for t, step in enumerate(track(order, f"import {sequence}")):
                items = timesteps[step]
                missing = sorted(set(camera_ids) - set(items))
                if missing:
                    raise InputError(
                        f"timestep {step} of {sequence} lacks cameras {missing}",
                        path=folder / "transforms.json",
                    )
                first = items[camera_ids[0]]
                flames.append(load_npz(folder / first["flame_param_path"]))
                for camera in camera_ids:
                    item = items[camera]
                    image = fr.read_image(folder / item["file_path"])
                    fr.write_jpeg(image_path(out, sequence, camera, t), image, 95)
                    if item.get("fg_mask_path"):
                        mask = cv2.imread(str(folder / item["fg_mask_path"]), cv2.IMREAD_GRAYSCALE)
                        if mask is None:
                            raise InputError("cannot read mask", path=folder / item["fg_mask_path"])
                        mk.write_mask(mask_path(out, sequence, camera, t), mask > 127)
            flame = {
                key: np.concatenate([np.asarray(f[key]).reshape(1, -1) for f in flames])
                for key in FLAME_FRAME_KEYS
            }
            flame["translation"] = flame["translation"] - plan["translation_shift"][None]
            flame["shape"] = np.asarray(flames[0]["shape"]).reshape(-1)
            write_flame(flame_path(out, sequence), flame)
            shutil.copyfile(audio, audio_path(out, sequence))
            sequences_meta[sequence] = {
                "subject": plan["subject"],
                "num_frames": len(order),
                "duration_s": len(order) / fps,
            }
            if landmarks:
                _detect(out, sequence, camera_ids, len(order))
        names = sorted(plan["sequences"])
        splits[plan["subject"]] = {
            "train": [s for s in names if s not in plan["test"]],
            "val": [],
            "test": list(plan["test"]),
        }
    write_cameras_json(out, plans[0]["cameras"])
    height, width = plans[0]["cameras"][camera_ids[0]]["height"], plans[0]["cameras"][camera_ids[0]]["width"]
    dataset = {
        "schema_version": SCHEMA_VERSION,
        "name": out.name,
        "fps": fps,  # the layout stores no frame rate; 25 fps (NeRSemble/VHAP exports are resampled to it)
        "image_size": [height, width],
        "frontal_camera": plans[0]["frontal"],
        "cameras": camera_ids,
        "subjects": [p["subject"] for p in plans],
        "sequences": sequences_meta,
        "splits": splits,
        "split_seed": None,
        "provenance": {"source": str(src), "format": "gaussian-avatars"},
    }
    write_dataset_json(out, dataset)
    log(f"imported {len(sequences_meta)} sequences of {len(plans)} subject(s)")
    return {"sequences": len(sequences_meta), "subjects": dataset["subjects"]}


def _detect(out: Path, sequence: str, camera_ids: list[str], num_frames: int) -> None:
    from capture_tools import frames as fr
    from tracking.landmarks import detect_landmarks

    landmarks = {}
    for camera in camera_ids:
        images = np.stack([fr.read_image(image_path(out, sequence, camera, t)) for t in range(num_frames)])
        landmarks[camera] = detect_landmarks(images)
    write_landmarks(landmarks_path(out, sequence), landmarks)
