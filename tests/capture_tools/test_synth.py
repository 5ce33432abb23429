"""``gsbench synth``: the tiny preset end to end, checked against its own ground truth."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess

import cv2
import numpy as np
import pytest
from scipy.io import wavfile

from capture_tools.synth import PRESETS, generate_session
from capture_tools.synth.scene import BoardSpec
from gsbench.errors import InputError
from gsbench.ffmpeg import ffmpeg_exe
from gsbench.media import read_audio, read_video


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "session"
    summary = generate_session(root, preset="tiny", seed=0, workers=1)
    return root, summary


def _cameras(root):
    return json.loads((root / "ground_truth" / "cameras.json").read_text())


def _probe(path):
    """(fps, has_audio) parsed from ``ffmpeg -i`` (no ffprobe here)."""
    text = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    fps = float(re.search(r"([\d.]+) fps", text).group(1))
    return fps, "Audio: aac" in text


def test_layout_and_rig_yaml_load(tiny):
    from capture_tools.rig import load_rig

    root, summary = tiny
    rig = load_rig(root)
    assert rig.camera_ids == summary.cameras and rig.frontal_camera == summary.frontal_camera
    assert [take.id for take in rig.takes] == summary.takes
    assert (
        rig.calibration is not None and rig.calibration.board.dictionary == PRESETS["tiny"].board.dictionary
    )
    for take in summary.takes:
        assert rig.take_audio(take).is_file()
        for camera in summary.cameras:
            assert rig.take_video(take, camera).is_file()
            assert (root / "ground_truth" / "takes" / take / "flame.npz").is_file()
    for camera in summary.cameras:
        assert rig.calibration_video(camera).is_file()
        assert rig.background_plate(camera) is not None
    assert (root / "contact_sheet.png").is_file()


def test_every_mp4_decodes_with_frames_fps_and_audio(tiny):
    root, summary = tiny
    fps = PRESETS["tiny"].fps
    videos = [
        (root / "calibration" / f"{c}.mp4", int(round(PRESETS["tiny"].calibration_duration_s * fps)))
        for c in summary.cameras
    ]
    for take in summary.takes:
        flame = np.load(root / "ground_truth" / "takes" / take / "flame.npz")
        videos += [(root / "takes" / take / f"{c}.mp4", len(flame["frame_times_s"])) for c in summary.cameras]
    for path, expected_frames in videos:
        frames = read_video(path)[0]
        assert frames.shape == (expected_frames, 128, 128, 3), path
        video_fps, has_audio = _probe(path)
        assert video_fps == fps and has_audio, path
        audio = read_audio(path)
        assert abs(len(audio) - expected_frames / fps * 16000) <= 1100, path  # AAC pads < 1 frame of 1024


def test_camera_audio_offset_recovered_by_cross_correlation(tiny):
    root, summary = tiny
    cameras = _cameras(root)
    take = summary.takes[0]
    rate, master = wavfile.read(root / "takes" / take / "audio.wav")
    assert rate == 16000 and master.dtype == np.int16
    master = master.astype(np.float64) / 32768.0
    offsets = []
    for camera_id in summary.cameras:
        mic = read_audio(root / "takes" / take / f"{camera_id}.mp4")[: len(master)].astype(np.float64)
        spectrum = np.fft.rfft(master, 2 * len(master)) * np.conj(np.fft.rfft(mic, 2 * len(master)))
        correlation = np.fft.irfft(spectrum)
        lag = int(np.argmax(correlation))
        lag = lag - 2 * len(master) if lag > len(master) else lag  # mic[n] = master[n + lag]
        expected = round(cameras[camera_id]["time_offset_s"] * 16000)
        assert lag == expected, camera_id
        offsets.append(expected)
    assert len(set(offsets)) > 1  # the cameras really start at different times


def test_gt_landmarks_project_onto_the_rendered_face(tiny):
    """Landmarks of the GT FLAME parameters (reference FlameLayer, interpolated to each camera's frame
    times) projected through the GT cameras with distortion land on the face; mouth corners on lips."""
    import torch

    from tracking.flame import FlameLayer
    from tracking.head import build_default_head

    root, summary = tiny
    cameras = _cameras(root)
    flame = FlameLayer(build_default_head(seed=0))
    take = summary.takes[0]
    params = dict(np.load(root / "ground_truth" / "takes" / take / "flame.npz"))
    master_times = params["frame_times_s"]
    keys = ("expr", "jaw_pose", "neck_pose", "eyes_pose", "rotation", "translation")
    plate_distance, lip_hits, lip_count, corner_hits, corner_count = [], 0, 0, 0, 0
    for camera_id in summary.cameras:
        camera = cameras[camera_id]
        frames = read_video(root / "takes" / take / f"{camera_id}.mp4")[0].astype(np.float32)
        plate = cv2.cvtColor(cv2.imread(str(root / "background" / f"{camera_id}.png")), cv2.COLOR_BGR2RGB)
        times = master_times + camera["time_offset_s"]
        for k in range(0, len(frames), 4):
            interpolated = {
                key: np.stack(
                    [
                        np.interp(times[k], master_times, params[key][:, i])
                        for i in range(params[key].shape[1])
                    ]
                )[None]
                for key in keys
            }
            with torch.no_grad():
                landmarks = (
                    flame(
                        shape=torch.as_tensor(params["shape"]),
                        **{key: torch.as_tensor(v, dtype=torch.float32) for key, v in interpolated.items()},
                    )
                    .landmarks[0]
                    .numpy()
                )
            world_to_cam = np.asarray(camera["world_to_cam"])
            rvec, _ = cv2.Rodrigues(world_to_cam[:3, :3])
            pixels, _ = cv2.projectPoints(
                landmarks.astype(np.float64),
                rvec,
                world_to_cam[:3, 3],
                np.asarray(camera["K"]),
                np.asarray(camera["dist"]),
            )
            pixels = np.round(pixels.reshape(-1, 2)).astype(int)
            assert np.all((pixels >= 0) & (pixels < 128))
            frame = frames[k]
            plate_distance += list(
                np.abs(frame[pixels[:, 1], pixels[:, 0]] - plate[pixels[:, 1], pixels[:, 0]]).sum(1)
            )
            if abs(camera["azimuth_deg"]) < 30:
                redness = frame[..., 0] / (frame[..., 1] + 1)
                cheek = redness[pixels[2, 1], (pixels[2, 0] + pixels[48, 0]) // 2]  # skin beside the mouth
                # mouth corners: a lip-coloured pixel within 2 px (lips are ~6 px tall at 128 px)
                for corner in (48, 54):
                    x, y = pixels[corner]
                    corner_hits += redness[y - 2 : y + 3, x - 2 : x + 3].max() > 1.12 * cheek
                    corner_count += 1
                # vermilion midpoints: between the outer and inner lip contour of each lip
                for outer, inner in ((51, 62), (57, 66)):
                    x, y = np.round((pixels[outer] + pixels[inner]) / 2).astype(int)
                    lip_hits += redness[y, x] > 1.12 * cheek
                    lip_count += 1
    # the head covers the background at the landmarks (JPEG-free but noisy: 20 levels summed over RGB)
    assert np.mean(np.asarray(plate_distance) > 20) > 0.95
    assert lip_count > 0 and lip_hits / lip_count > 0.9
    assert corner_hits / corner_count > 0.8


def test_mouth_follows_the_phoneme_timeline(tiny):
    """Bilabial closures close the jaw; open vowels open it (coarticulated, not per-frame lookups)."""
    root, summary = tiny
    closed, open_ = [], []
    for take in summary.takes:
        params = np.load(root / "ground_truth" / "takes" / take / "flame.npz")
        phonemes = json.loads((root / "ground_truth" / "takes" / take / "phonemes.json").read_text())
        times, jaw = params["frame_times_s"], params["jaw_pose"][:, 0]
        for p in phonemes["phonemes"]:
            inside = (times >= p["start_s"]) & (times < p["end_s"])
            if not np.any(inside):
                continue
            if "lip_closure_s" in p:
                a, b = p["lip_closure_s"]
                closed += list(jaw[(times >= a) & (times <= b)])
            elif p["viseme"]["jaw"] >= 0.17:  # open vowels
                open_ += list(jaw[inside])
        assert np.all(np.diff(times) > 0)
    assert closed and open_
    assert max(closed) < 0.03 and np.median(open_) > 0.12


def test_calibration_board_detected_where_ground_truth_says(tiny):
    """ChArUco corners detected in the calibration video match the GT board pose projected through the
    GT camera (with distortion) to under a pixel."""
    root, summary = tiny
    cameras = _cameras(root)
    spec = PRESETS["tiny"].board
    board = spec.cv_board()
    detector = cv2.aruco.CharucoDetector(board)
    poses = np.load(root / "ground_truth" / "calibration" / "board_poses.npz")
    corners_3d = board.getChessboardCorners()
    errors, frames_with_board = [], 0
    camera_id = summary.frontal_camera
    camera = cameras[camera_id]
    world_to_cam = np.asarray(camera["world_to_cam"])
    rvec, _ = cv2.Rodrigues(world_to_cam[:3, :3])
    for k, frame in enumerate(read_video(root / "calibration" / f"{camera_id}.mp4")[0]):
        corners, ids, _, _ = detector.detectBoard(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))
        if ids is None or len(ids) < 4:
            continue
        frames_with_board += 1
        board_to_world = poses[f"{camera_id}_board_to_world"][k]
        points = corners_3d[ids.reshape(-1)] @ board_to_world[:3, :3].T + board_to_world[:3, 3]
        expected, _ = cv2.projectPoints(
            points.astype(np.float64),
            rvec,
            world_to_cam[:3, 3],
            np.asarray(camera["K"]),
            np.asarray(camera["dist"]),
        )
        errors += list(np.linalg.norm(expected.reshape(-1, 2) - corners.reshape(-1, 2), axis=1))
    assert frames_with_board >= 10
    # OpenCV 4.11's ChArUco corners carry a ~0.3-0.4 px (+x, +y) bias even on an area-downsampled
    # board image, so the bound is a pixel, not the renderer's own (exact) precision
    assert np.median(errors) < 1.0 and np.percentile(errors, 95) < 2.0


_MICRO = dataclasses.replace(
    PRESETS["tiny"],
    name="micro",
    num_cameras=2,
    width=64,
    height=64,
    take_duration_s=(0.6, 0.6),
    takes_per_subject=1,
    calibration_duration_s=0.4,
    board=BoardSpec(
        squares_x=4, squares_y=3, square_length_m=0.06, marker_length_m=0.045, dictionary="DICT_4X4_50"
    ),
)


def test_same_seed_same_bytes(tmp_path):
    """Same seed, same files, whether rendered in this process or by a pool of worker processes."""
    first = generate_session(tmp_path / "a", preset=_MICRO, seed=7, workers=1)
    second = generate_session(tmp_path / "b", preset=_MICRO, seed=7, workers=2)
    files_a = sorted(p.relative_to(first.root) for p in first.root.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(second.root) for p in second.root.rglob("*") if p.is_file())
    assert files_a == files_b
    for relative in files_a:
        if relative.name == "rig.yaml":  # carries the folder name
            continue
        if relative.suffix == ".mp4":
            assert np.array_equal(read_video(first.root / relative)[0], read_video(second.root / relative)[0])
        assert (first.root / relative).read_bytes() == (second.root / relative).read_bytes(), relative
    other = generate_session(tmp_path / "c", preset=_MICRO, seed=8, workers=1)
    take = other.takes[0]
    assert (other.root / "ground_truth" / "takes" / take / "flame.npz").read_bytes() != (
        first.root / "ground_truth" / "takes" / take / "flame.npz"
    ).read_bytes()


def test_bad_arguments_give_clear_errors(tmp_path):
    with pytest.raises(InputError, match="unknown synth preset 'huge'.*tiny, default, full"):
        generate_session(tmp_path / "x", preset="huge")
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    with pytest.raises(InputError, match="not a folder"):
        generate_session(a_file, preset="tiny")
    with pytest.raises(InputError, match="cannot write"):
        generate_session(a_file / "session", preset="tiny")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        generate_session(busy, preset="tiny")
    assert (busy / "thesis.tex").read_text() == "keep me"


def test_cli_reports_one_line_error(tmp_path):
    from benchmark.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["synth", str(tmp_path / "x"), "--preset", "huge"])
    assert exit_info.value.code == 1
