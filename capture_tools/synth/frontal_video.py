"""A synthetic session's frontal camera as one monocular talking-head video (test data of issue 26).

``write_frontal_video(session, subject, path)`` concatenates the frontal camera's recordings of the
subject's takes, with the camera's own microphone track, into one mp4 (h264 + AAC). Each frame is
undistorted to an ideal pinhole with the principal point at the image centre and focal length
``(fx + fy) / 2`` of the true camera, which is what monocular ingest assumes (no lens model, centred
principal point), so the ground truth is exact: the returned dict holds that K, the true
world_to_cam, and the true FLAME parameters of every frame (``ground_truth/takes/<take>/flame.npz``
rows; the camera's clock is at most a few ms off the master's, below a frame).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from gsbench import media
from gsbench.dataset import FLAME_FRAME_KEYS


def write_frontal_video(
    session: str | Path, subject: str, path: str | Path, max_takes: int | None = None, crf: int = 16
) -> dict:
    import cv2

    session = Path(session)
    truth_dir = session / "ground_truth"
    info = json.loads((truth_dir / "session.json").read_text())
    camera = info["frontal_camera"]
    fps = float(info["preset"]["fps"])
    cameras = json.loads((truth_dir / "cameras.json").read_text())[camera]
    K, dist = np.asarray(cameras["K"], np.float64), np.asarray(cameras["dist"], np.float64)
    width, height = int(cameras["width"]), int(cameras["height"])
    focal = float((K[0, 0] + K[1, 1]) / 2)
    ideal = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float64)
    map_x, map_y = cv2.initUndistortRectifyMap(K, dist, None, ideal, (width, height), cv2.CV_32FC1)
    takes = [t for t in info["takes"] if t.startswith(f"{subject}_")][:max_takes]
    if not takes:
        raise ValueError(f"no take of subject {subject!r} in {session}")
    frames, audio, flame, take_ranges = [], [], {k: [] for k in FLAME_FRAME_KEYS}, {}
    count = 0
    for take in takes:
        video = session / "takes" / take / f"{camera}.mp4"
        probe = media.probe_video(video)
        raw = media.read_frames(video, probe.width, probe.height)
        sound = media.read_audio(video, 16000)
        with np.load(truth_dir / "takes" / take / "flame.npz") as data:
            truth = {key: data[key] for key in data.files}
        num = min(len(raw), len(truth["rotation"]), int(len(sound) / 16000 * fps))
        frames.extend(cv2.remap(f, map_x, map_y, cv2.INTER_LINEAR) for f in raw[:num])
        samples = int(round(num / fps * 16000))
        audio.append(np.pad(sound[:samples], (0, max(0, samples - len(sound)))))
        for key in FLAME_FRAME_KEYS:
            flame[key].append(truth[key][:num])
        shape = truth["shape"]
        take_ranges[take] = [count, count + num]
        count += num
    encoding = dataclasses.replace(media.CAMERA_ENCODING, crf=crf)
    media.write_video(path, np.stack(frames), fps, np.concatenate(audio), encoding=encoding)
    return {
        "K": ideal,
        "world_to_cam": np.asarray(cameras["world_to_cam"], np.float64),
        "width": width,
        "height": height,
        "fps": fps,
        "focal": focal,
        "flame": {key: np.concatenate(v) for key, v in flame.items()} | {"shape": shape},
        "takes": take_ranges,
        "num_frames": count,
    }
