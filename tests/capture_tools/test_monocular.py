"""Monocular video ingest (issue 26): sequence cutting, the field's split, face-track crops, masks,
the background plate, and bad input (each one clear error naming the file, nothing written)."""

import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from capture_tools import monocular as mono
from gsbench.errors import ConfigError, InputError, MediaError
from gsbench.ffmpeg import ffmpeg_exe

P = mono.MonocularParams()


def _tone_with_pauses(pauses_s: list[tuple[float, float]], duration_s: float, rate: int = 16000):
    t = np.arange(int(duration_s * rate)) / rate
    audio = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    for start, stop in pauses_s:
        audio[int(start * rate) : int(stop * rate)] = 0.0
    return audio.astype(np.float32)


def test_pause_cuts_fall_in_the_middle_of_each_pause():
    audio = _tone_with_pauses([(3.0, 3.4), (7.0, 7.2), (9.0, 9.05)], 12.0)
    cuts = mono.pause_cuts(audio, 16000, 25.0, P)
    # 0.05 s is shorter than min_pause_s (0.15 s): not a pause
    assert cuts == [round(3.2 * 25), round(7.1 * 25)]


def test_segments_cut_at_pauses_within_2_to_10_s():
    fps = 25.0
    # pauses at 1 s (too early: would leave < 2 s), 4 s, 5 s (too close to 4), 30 s; 40 s long
    cuts = [25, 100, 125, 750]
    pieces = mono.segment(0, 1000, cuts, fps, P)
    assert pieces[0] == (0, 100)  # the first pause leaving >= 2 s on both sides
    assert pieces[1] == (100, 350)  # no pause within 10 s: cut at 10 s
    assert all(pieces[i][1] == pieces[i + 1][0] for i in range(len(pieces) - 1))
    assert pieces[-1][1] == 1000
    lengths = [b - a for a, b in pieces]
    assert max(lengths) <= 250 and min(lengths) >= 50


def test_the_fields_split_is_the_last_eleventh_of_the_frames():
    audio = _tone_with_pauses([(2.5, 2.8), (5.5, 5.8)], 12.0)
    num_frames = 300
    pieces, test_start = mono.plan_sequences(num_frames, audio, P)
    assert test_start == round(300 * 10 / 11) == 273
    assert any(a == test_start for a, _ in pieces)  # a sequence starts exactly there
    assert [a for a, _ in pieces][0] == 0 and pieces[-1][1] == num_frames


def test_crop_follows_the_smoothed_track_and_stays_inside():
    num = 50
    boxes = np.zeros((num, 4))
    centre_x = np.linspace(100, 500, num)  # the face moves right, out to the border
    boxes[:, 0], boxes[:, 2] = centre_x - 50, centre_x + 50
    boxes[:, 1], boxes[:, 3] = 150, 250
    boxes[10] = np.nan  # a frame without a face is interpolated
    crops = mono.crop_boxes(boxes, 640, 360, P, 25.0)
    assert (crops[:, 2] == 200).all()  # side = crop_scale (2) x face side (100)
    assert (crops[:, 0] >= 0).all() and (crops[:, 0] + 200 <= 640).all()
    assert (crops[:, 1] == 100).all()  # centred on y = 200
    middle = crops[20:30, 0] + 100
    assert np.abs(middle - centre_x[20:30]).max() < 3  # a linear track survives the smoothing


def test_background_plate_is_the_median_where_no_person_is_seen():
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    frames, people = [], []
    for k in range(12):
        frame = background.copy()
        person = np.zeros((40, 60), bool)
        person[5:35, 5 + 4 * k : 15 + 4 * k] = True  # a block walking across
        frame[person] = 255 - frame[person]
        frames.append(frame)
        people.append(person)
    plate, inpainted = mono.background_plate(np.stack(frames), np.stack(people))
    seen = inpainted < 1.0
    assert seen
    # away from the borders of the walk every pixel was free in some frame: the plate is exact there
    assert np.array_equal(plate[:, 30:40], background[:, 30:40])


def test_head_mask_cuts_the_torso_below_the_chin():
    person = np.zeros((100, 100), bool)
    person[10:100, 30:70] = True  # head and torso as one blob
    face = np.array([[40, 20], [60, 20], [60, 50], [40, 50]], float)  # chin at y = 50, top at 20
    mask = mono.head_mask(person, face, margin=0.1)
    assert mask[10:53].any() and not mask[54:].any()  # cut at 50 + 0.1 x 30
    assert mask[25, 50]


def test_multiview_is_refused_on_a_one_camera_dataset():
    from benchmark.protocols import PROTOCOLS, check_protocol

    dataset = SimpleNamespace(
        camera_ids=("front",), name="video", root=Path("/data/video"), frontal_camera="front"
    )
    with pytest.raises(ConfigError, match="multiview needs cameras other than"):
        check_protocol(dataset, "multiview")
    assert PROTOCOLS["mono-front"].train_cameras(dataset) == ("front",)
    with pytest.raises(ConfigError, match="monocular"):
        PROTOCOLS["cross-id"].train_cameras(dataset, "multiview")


# ------------------------------------------------------------------------------------ bad input
def _video(path: Path, size: str = "64x64", audio: bool = True) -> Path:
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
               "-i", f"color=c=gray:s={size}:d=1:r=25"]  # fmt: skip
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=16000", "-shortest"]
    command += ["-c:v", "libx264", "-pix_fmt", "yuv420p"] + (["-c:a", "aac"] if audio else []) + [str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path


@pytest.fixture
def earlier_dataset(tmp_path):
    """An output folder from an earlier ingest: what is in it must survive a failed run."""
    out = tmp_path / "dataset"
    (out / ".ingest").mkdir(parents=True)
    (out / "dataset.json").write_text('{"earlier": true}')
    return out


def _assert_untouched(out: Path) -> None:
    assert (out / "dataset.json").read_text() == '{"earlier": true}'
    assert sorted(p.name for p in out.iterdir()) == [".ingest", "dataset.json"]


def test_video_without_audio_is_refused_naming_the_file(tmp_path, earlier_dataset):
    video = _video(tmp_path / "silent.mp4", audio=False)
    with pytest.raises(MediaError, match="no audio track") as error:
        mono.ingest_videos([video], earlier_dataset)
    assert str(video) in str(error.value)
    _assert_untouched(earlier_dataset)


def test_a_file_that_is_not_a_video_is_refused_naming_it(tmp_path, earlier_dataset):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n")
    with pytest.raises(MediaError, match="not a video") as error:
        mono.ingest_videos([fake], earlier_dataset)
    assert str(fake) in str(error.value)
    _assert_untouched(earlier_dataset)


def test_a_folder_mixing_frame_sizes_names_the_odd_file(tmp_path, earlier_dataset):
    folder = tmp_path / "videos"
    folder.mkdir()
    _video(folder / "a.mp4", "64x64")
    odd = _video(folder / "b.mp4", "80x64")
    with pytest.raises(MediaError, match="frame size 80x64 differs from the 64x64 of a.mp4") as error:
        mono.ingest_videos([folder], earlier_dataset)
    assert str(odd) in str(error.value) and "--crop" in str(error.value)
    _assert_untouched(earlier_dataset)


def test_a_video_without_a_face_is_refused_naming_it(tmp_path, earlier_dataset):
    video = _video(tmp_path / "wall.mp4")
    with pytest.raises(MediaError, match="no face found") as error:
        mono.ingest_videos([video], earlier_dataset)
    assert str(video) in str(error.value)
    _assert_untouched(earlier_dataset)


def test_an_empty_folder_or_missing_file_is_an_input_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no video file"):
        mono.collect_videos([tmp_path / "empty"])
    with pytest.raises(InputError, match="not found"):
        mono.collect_videos([tmp_path / "missing.mp4"])


def test_video_input_is_told_from_a_rig_session(tmp_path):
    session = tmp_path / "session"
    session.mkdir()
    (session / "rig.yaml").write_text("name: x\n")
    assert not mono.is_video_input([session])
    assert mono.is_video_input([tmp_path / "a.mp4", tmp_path / "b.mp4"])
    assert mono.subject_ids([Path("a b.mp4"), Path("x/a b.mov")]) == ["a_b", "a_b_2"]
