"""A small raw rig session written in the rig.yaml layout, with known truth, for ingest tests.

Three cameras on an arc, a ChArUco calibration take (the board held still in several poses, claps on
the camera mics), two takes of a bright disc moving over a textured background with speech-like
master audio, sub-frame per-camera start offsets (camera frame k shows master time
k / fps + offset), and background plates. Independent of ``gsbench synth`` so that the ingest tests
do not depend on it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from charuco_render import BOARD, board_texture, camera_rays, look_at, render_board

from gsbench.ffmpeg import ffmpeg_exe
from gsbench.media import write_wav

FS = 16000
FPS = 25.0
SIZE = 192


@dataclass
class TruthCamera:
    id: str
    K: np.ndarray
    dist: np.ndarray
    world_to_cam: np.ndarray
    offset_s: float


def make_cameras() -> list[TruthCamera]:
    cameras = []
    offsets = [0.013, -0.0171, 0.0062]  # sub-frame starts (multiples of 1/16000 s for the mic tracks)
    for index, azimuth in enumerate(np.radians([-28.0, 0.0, 26.0])):
        focal = SIZE * 1.25 * (1 + 0.015 * index)
        K = np.array(
            [[focal, 0, SIZE / 2 - 0.5 + 1.5 * index], [0, focal, SIZE / 2 - 0.5 - index], [0, 0, 1]]
        )
        dist = np.array([-0.06 + 0.02 * index, 0.03, 0.0, 0.0, 0.0])
        centre = 0.62 * np.array([np.sin(azimuth), 0.08 * (index - 1), np.cos(azimuth)])
        cameras.append(
            TruthCamera(f"cam{index:02d}", K, dist, look_at(centre), round(offsets[index] * FS) / FS)
        )
    return cameras


def encode(path: Path, frames: np.ndarray, audio: np.ndarray | None, fps: float = FPS) -> None:
    """H.264 mp4 (+ AAC camera-mic track) through the ffmpeg binary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames.shape[1:3]
    args = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        f"{fps}",
        "-i",
        "pipe:0",
    ]
    wav = None
    if audio is not None:
        wav = path.with_suffix(".tmp.wav")
        write_wav(wav, audio, FS)
        args += ["-i", str(wav)]
    args += ["-c:v", "libx264", "-crf", "8", "-preset", "fast", "-pix_fmt", "yuv420p"]
    if audio is not None:
        args += ["-c:a", "aac", "-b:a", "128k"]
    subprocess.run([*args, str(path)], input=frames.tobytes(), check=True)
    if wav is not None:
        wav.unlink()


def speech_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    n = int(seconds * FS)
    envelope = np.clip(np.sin(2 * np.pi * 3.3 * np.arange(n) / FS + rng.uniform(0, 6)), 0, None) ** 2
    return (0.3 * rng.normal(size=n) * envelope).astype(np.float32)


def camera_mic(master: np.ndarray, offset_s: float, rng: np.random.Generator) -> np.ndarray:
    """Sample n of the camera mic holds master sample n + offset * FS."""
    shift = int(round(offset_s * FS))
    index = np.arange(len(master)) + shift
    valid = (index >= 0) & (index < len(master))
    track = np.zeros(len(master), np.float32)
    track[valid] = master[index[valid]]
    return 0.7 * track + rng.normal(0, 0.003, len(track)).astype(np.float32)


def board_holds(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """``board_to_world [4,4]`` per hold: the printed side faces the cameras (+z), varied tilts."""
    half = np.array(
        [BOARD.squares_x * BOARD.square_length_m / 2, BOARD.squares_y * BOARD.square_length_m / 2, 0]
    )
    poses = []
    for index in range(count):
        azimuth = 0.7 * np.sin(2 * np.pi * index / count * 1.5)
        tilt = 0.6 * np.cos(2 * np.pi * index / count * 2.5) + rng.uniform(-0.1, 0.1)
        roll = rng.uniform(-0.4, 0.4)
        rotation = (
            cv2.Rodrigues(np.array([tilt, azimuth, 0.0]))[0]
            @ cv2.Rodrigues(np.array([0, 0, roll]))[0]
            @ np.diag([1.0, -1.0, -1.0])
        )  # board y down the print, board z into the board (-z world)
        pose = np.eye(4)
        pose[:3, :3] = rotation
        depth = 0.12 * np.sin(2 * np.pi * index / count * 3.5)  # towards / away from the cameras
        pose[:3, 3] = rng.normal(0, 0.02, 3) + [0, 0, depth] - rotation @ half
        poses.append(pose)
    return poses


def board_pose_at(
    poses: list[np.ndarray], position: float, hold_frames: int, gap_frames: int
) -> np.ndarray | None:
    """Board pose at a time in frames: each pose held ``hold_frames``, then a linear glide (translation
    and rotation vector) to the next one during ``gap_frames``; None outside the sequence."""
    slot, phase = divmod(position, hold_frames + gap_frames)
    slot = int(slot)
    if slot < 0 or slot >= len(poses):
        return None
    if phase < hold_frames or slot == len(poses) - 1:
        return poses[slot]
    s = (phase - hold_frames) / gap_frames
    a, b = poses[slot], poses[slot + 1]
    delta = cv2.Rodrigues(b[:3, :3] @ a[:3, :3].T)[0]
    pose = np.eye(4)
    pose[:3, :3] = cv2.Rodrigues(delta * s)[0] @ a[:3, :3]
    pose[:3, 3] = (1 - s) * a[:3, 3] + s * b[:3, 3]
    return pose


def background_texture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 200, (12, 12, 3)).astype(np.float32)
    return cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def scene_frame(plate: np.ndarray, master_time: float) -> np.ndarray:
    """A bright disc sliding across the plate: a foreground whose position encodes time."""
    frame = plate.copy()
    x = SIZE * (0.3 + 0.4 * master_time)
    y = SIZE * (0.5 + 0.1 * np.sin(4 * master_time))
    cv2.circle(
        frame,
        (int(round(x * 16)), int(round(y * 16))),
        int(SIZE * 0.15 * 16),
        (250, 240, 230),
        -1,
        lineType=cv2.LINE_AA,
        shift=4,
    )
    return frame


def write_session(root: Path, seed: int = 0, take_seconds: float = 1.2, holds: int = 14) -> dict:
    """Write the session into ``root``; returns the truth (cameras, offsets, take ids)."""
    rng = np.random.default_rng(seed)
    cameras = make_cameras()
    texture = board_texture()
    hold_frames, gap_frames = 6, 4
    poses = board_holds(rng, holds)
    num_cal = holds * (hold_frames + gap_frames) + 4
    claps = np.zeros(int(num_cal / FPS * FS), np.float32)
    for clap in (0.2, 0.2 + 0.4 * num_cal / FPS):
        start = int(clap * FS)
        claps[start : start + 1600] += 0.6 * np.exp(-np.arange(1600) / 180.0) * rng.normal(0, 1, 1600)
    for camera in cameras:
        rays = camera_rays(camera.K, camera.dist, SIZE, SIZE)
        frames = np.full((num_cal, SIZE, SIZE, 3), 90, np.uint8)
        for k in range(num_cal):
            t = k / FPS + camera.offset_s  # master time of this frame
            pose = board_pose_at(poses, t * FPS - 2, hold_frames, gap_frames)
            if pose is not None:
                frames[k] = render_board(
                    texture, camera.world_to_cam @ pose, camera.K, camera.dist, SIZE, SIZE, rays=rays
                )
        noisy = np.clip(frames + rng.normal(0, 1.5, frames.shape), 0, 255).astype(np.uint8)
        encode(root / "calibration" / f"{camera.id}.mp4", noisy, camera_mic(claps, camera.offset_s, rng))

    takes = []
    plates = {}
    for camera in cameras:
        plate = background_texture(seed + int(camera.id[-2:]))
        plates[camera.id] = plate
        (root / "background").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "background" / f"{camera.id}.png"), cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))
    for take_index in range(2):
        take_id = f"s01_t{take_index:02d}"
        takes.append({"id": take_id, "subject": "s01"})
        master = speech_like(rng, take_seconds)
        write_wav(root / "takes" / take_id / "audio.wav", master + rng.normal(0, 0.002, len(master)), FS)
        num_frames = int(take_seconds * FPS)
        for camera in cameras:
            frames = np.stack(
                [scene_frame(plates[camera.id], k / FPS + camera.offset_s) for k in range(num_frames)]
            )
            encode(
                root / "takes" / take_id / f"{camera.id}.mp4",
                frames,
                camera_mic(master, camera.offset_s, rng),
            )
    rig = {
        "schema_version": 1, "name": "factory", "fps": FPS, "frontal_camera": "cam01",
        "audio": {"sample_rate": FS, "master": "audio.wav"},
        "cameras": [{"id": c.id, "video": f"{c.id}.mp4"} for c in cameras],
        "takes": takes,
        "calibration": {"folder": "calibration", "board": {
            "type": "charuco", "squares_x": BOARD.squares_x, "squares_y": BOARD.squares_y,
            "square_length_m": BOARD.square_length_m, "marker_length_m": BOARD.marker_length_m,
            "dictionary": BOARD.dictionary}},
        "background": "background",
    }  # fmt: skip
    (root / "rig.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))
    return {"cameras": {c.id: c for c in cameras}, "takes": [t["id"] for t in takes], "fps": FPS}
