"""End-to-end ingest on a small generated session (session_factory), and every bad input of issue 4."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from session_factory import FPS, FS, SIZE, camera_mic, encode, write_session

from benchmark.cli import main
from capture_tools.calibrate import rotation_angle
from capture_tools.frames import FrameParams
from capture_tools.ingest import IngestParams, ingest, parse_stages, split_sequences
from gsbench.errors import ConfigError, InputError, StageError
from gsbench.media import read_audio, read_frames

PARAMS = IngestParams(frames=FrameParams(size=(96, 96)))
# The factory sessions show a ChArUco board but no face, so these tests cover the stages up to landmarks;
# the track stage runs in test_ingest_synth.py on the synthetic head.
NO_TRACK = ["probe", "sync", "calibrate", "frames", "masks", "landmarks"]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    root = tmp_path_factory.mktemp("session")
    return root, write_session(root)


@pytest.fixture(scope="module")
def dataset(session, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset")
    summary = ingest(session[0], out, PARAMS, stages=NO_TRACK)
    return out, summary


def report(out, stage):
    return json.loads((out / "reports" / f"{stage}.json").read_text())["result"]


def test_all_stages_run_and_write_the_dataset_layout(dataset, session):
    out, summary = dataset
    assert summary.ran == ["probe", "sync", "calibrate", "frames", "masks", "landmarks"]
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["schema_version"] == 1 and meta["fps"] == FPS and meta["image_size"] == [96, 96]
    assert meta["cameras"] == ["cam00", "cam01", "cam02"] and meta["frontal_camera"] == "cam01"
    assert meta["splits"] == {"s01": {"train": ["s01_t01"], "val": [], "test": ["s01_t00"]}} or meta[
        "splits"
    ] == {"s01": {"train": ["s01_t00"], "val": [], "test": ["s01_t01"]}}
    assert set(meta["provenance"]["stages"]) == set(summary.ran)
    assert meta["provenance"]["inputs_sha256"]["takes/s01_t00/cam00.mp4"]
    cameras = json.loads((out / "cameras.json").read_text())
    assert cameras["cam00"]["width"] == 96 and np.asarray(cameras["cam00"]["K"]).shape == (3, 3)
    for seq, info in meta["sequences"].items():
        frames = info["num_frames"]
        assert frames == 30 and info["duration_s"] == pytest.approx(frames / FPS)
        for camera in meta["cameras"]:
            images = sorted((out / "sequences" / seq / "images" / camera).glob("*.jpg"))
            masks = sorted((out / "sequences" / seq / "masks" / camera).glob("*.png"))
            assert len(images) == len(masks) == frames
        landmarks = np.load(out / "sequences" / seq / "landmarks.npz")
        assert landmarks["cam00"].shape == (frames, 478, 2) and landmarks["cam00_detected"].shape == (frames,)
        audio = read_audio(out / "sequences" / seq / "audio.wav")
        assert abs(len(audio) - frames / FPS * FS) <= 1
    assert (out / "reports" / "sync.png").exists() and (out / "reports" / "calibration.png").exists()


def test_sync_matches_the_true_offsets(dataset, session):
    out, _ = dataset
    truth = session[1]["cameras"]
    for take in report(out, "sync")["takes"].values():
        for camera, result in take["cameras"].items():
            assert abs(result["offset_s"] - truth[camera].offset_s) * FPS < 0.02
            assert result["method"] == "audio" and result["confidence"] > 0.8


def test_calibration_matches_the_true_rig(dataset, session):
    out, _ = dataset
    truth = session[1]["cameras"]
    result = report(out, "calibration")
    assert result["rms_px"] < 0.35
    poses = {c: np.asarray(v["world_to_cam"]) for c, v in result["cameras"].items()}
    for camera, true in truth.items():
        estimate = poses[camera] @ np.linalg.inv(poses["cam01"])
        expected = true.world_to_cam @ np.linalg.inv(truth["cam01"].world_to_cam)
        assert np.degrees(rotation_angle(estimate[:3, :3].T @ expected[:3, :3])) < 0.6
        centre_error = np.linalg.inv(estimate)[:3, 3] - np.linalg.inv(expected)[:3, 3]
        assert np.linalg.norm(centre_error) < 0.006
        assert abs(result["cameras"][camera]["K"][0][0] / true.K[0, 0] - 1) < 0.006


def test_masks_cover_the_moving_disc(dataset):
    out, _ = dataset
    coverage = report(out, "masks")["foreground_fraction"]
    disc = np.pi * 0.15**2  # disc radius 0.15 of the image side
    for take in coverage.values():
        for fraction in take.values():
            assert 0.6 * disc < fraction < 1.5 * disc


def test_second_run_is_up_to_date_and_force_reruns_only_selected(dataset, session):
    out, _ = dataset
    again = ingest(session[0], out, PARAMS, stages=NO_TRACK)
    assert again.ran == [] and len(again.skipped) == 6
    forced = ingest(session[0], out, PARAMS, stages=["masks"], force=True)
    assert forced.ran == ["masks"]


def test_stage_selection_syntax_and_split_rule():
    assert parse_stages("frames-") == ["frames", "masks", "backgrounds", "landmarks", "track"]
    assert parse_stages("-sync,landmarks") == ["probe", "sync", "landmarks"]
    with pytest.raises(InputError, match="unknown stage 'flow'"):
        parse_stages("flow")
    sequences = {f"s01_t{i:02d}": {"subject": "s01"} for i in range(12)}
    split = split_sequences(sequences, seed=3)["s01"]
    assert (len(split["test"]), len(split["val"]), len(split["train"])) == (2, 1, 9)
    assert split == split_sequences(sequences, seed=3)["s01"]
    assert split != split_sequences(sequences, seed=4)["s01"]


# ---------------------------------------------------------------- bad inputs
@pytest.fixture
def broken(session, dataset, tmp_path):
    """A copy of the session and of its finished dataset, to break and repair."""
    root = tmp_path / "session"
    out = tmp_path / "dataset"
    shutil.copytree(session[0], root)
    shutil.copytree(dataset[0], out)
    return root, out


def snapshot(out):
    return {
        p.relative_to(out): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".ingest" not in p.parts and p.suffix in (".json", ".npz", ".wav")
    }


def cli_error(capsys, root, out):
    with pytest.raises(SystemExit) as exit_:
        main(["--quiet", "ingest", str(root), "-o", str(out)])
    assert exit_.value.code != 0
    message = capsys.readouterr().err.strip()
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message
    return message


def reencode(path, *, fps=FPS, size=None, audio="keep", frames=None):
    frames = read_frames(path, SIZE, SIZE) if frames is None else frames
    if size is not None:
        frames = frames[:, : size[1], : size[0]]
    mic = read_audio(path, FS) if isinstance(audio, str) else audio
    encode(path, np.ascontiguousarray(frames), mic, fps=fps)


def unchanged_except_probe(before, out):
    after = snapshot(out)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= {Path("reports/probe.json")}, changed


def test_missing_camera_file_then_resume(broken, capsys, session):
    root, out = broken
    video = root / "takes/s01_t01/cam02.mp4"
    saved = video.read_bytes()
    video.unlink()
    before = snapshot(out)
    message = cli_error(capsys, root, out)
    assert "camera cam02, take s01_t01" in message and str(video) in message
    unchanged_except_probe(before, out)
    video.write_bytes(saved)
    # everything after probe is still valid
    assert ingest(root, out, PARAMS, stages=NO_TRACK).ran == ["probe"]


def test_truncated_video(broken, capsys):
    root, out = broken
    video = root / "takes/s01_t00/cam01.mp4"
    video.write_bytes(video.read_bytes()[:5000])
    message = cli_error(capsys, root, out)
    assert "camera cam01, take s01_t00" in message and "cam01.mp4" in message


@pytest.mark.parametrize(
    ("change", "expected"), [({"fps": 30.0}, "frame rate 30"), ({"size": (160, 160)}, "resolution 160x160")]
)
def test_camera_with_different_fps_or_resolution(broken, capsys, change, expected):
    root, out = broken
    reencode(root / "takes/s01_t00/cam00.mp4", **change)
    message = cli_error(capsys, root, out)
    assert expected in message and "camera cam00, take s01_t00" in message


def test_take_without_master_audio(broken, capsys):
    root, out = broken
    (root / "takes/s01_t01/audio.wav").unlink()
    message = cli_error(capsys, root, out)
    assert "take s01_t01: master audio is missing" in message and "audio.wav" in message


def test_camera_without_audio_or_visual_event_then_resume(broken, capsys):
    root, out = broken
    video = root / "takes/s01_t00/cam02.mp4"
    saved = video.read_bytes()
    reencode(video, audio=None)
    before = snapshot(out)
    with pytest.raises(
        StageError, match="camera cam02, take s01_t00: no camera-mic track and no visual event"
    ):
        ingest(root, out, PARAMS, stages=NO_TRACK)
    unchanged_except_probe(before, out)
    video.write_bytes(saved)
    assert ingest(root, out, PARAMS, stages=NO_TRACK).ran == ["probe", "sync"]


def test_visual_event_synchronizes_a_camera_without_audio(broken):
    root, out = broken
    take = root / "takes/s01_t00"
    flash_s = 0.53
    from session_factory import make_cameras

    for camera in make_cameras():
        path = take / f"{camera.id}.mp4"
        frames = read_frames(path, SIZE, SIZE).astype(np.float32)
        # box exposure: frame k integrates master time [k, k + 1) / fps + offset
        start = np.arange(len(frames)) / FPS + camera.offset_s
        lit = np.clip((start + 1 / FPS - flash_s) * FPS, 0, 1)
        frames = np.clip(frames * 0.6 + 90 * lit[:, None, None, None], 0, 255).astype(np.uint8)
        reencode(path, frames=frames, audio=None if camera.id == "cam02" else "keep")
    ingest(root, out, PARAMS, stages=["probe", "sync"])
    result = report(out, "sync")["takes"]["s01_t00"]["cameras"]["cam02"]
    assert result["method"] == "visual"
    truth = {c.id: c for c in make_cameras()}
    assert abs(result["offset_s"] - truth["cam02"].offset_s) * FPS < 0.1


def test_sync_confidence_below_threshold(broken, capsys):
    root, out = broken
    rng = np.random.default_rng(5)
    reencode(root / "takes/s01_t01/cam00.mp4", audio=rng.normal(0, 0.1, int(1.2 * FS)).astype(np.float32))
    message = cli_error(capsys, root, out)
    assert "camera cam00, take s01_t01: sync confidence" in message and "below the threshold" in message


def test_too_few_board_detections_then_resume(broken, capsys, session):
    root, out = broken
    video = root / "calibration/cam02.mp4"
    saved = video.read_bytes()
    frames = read_frames(video, SIZE, SIZE).copy()
    frames[4:] = 90  # the board leaves the view after its first pose
    reencode(video, frames=frames)
    message = cli_error(capsys, root, out)
    assert "camera cam02: too few ChArUco board views" in message and str(video) in message
    assert json.loads((out / "reports/sync.json").read_text())  # earlier stage's report intact
    video.write_bytes(saved)
    assert ingest(root, out, PARAMS, stages=NO_TRACK).ran == ["probe", "calibrate"]


def test_unreadable_rig_key(broken, capsys):
    root, out = broken
    rig = yaml.safe_load((root / "rig.yaml").read_text())
    rig["fps"] = "twenty-five"
    (root / "rig.yaml").write_text(yaml.safe_dump(rig))
    message = cli_error(capsys, root, out)
    assert "key 'fps'" in message and str(root / "rig.yaml") in message
    with pytest.raises(ConfigError):
        ingest(root, out, PARAMS, stages=NO_TRACK)


def test_mic_helper_matches_the_timing_model():
    master = np.arange(100, dtype=np.float32)
    shifted = camera_mic(master, 5 / FS, np.random.default_rng(0))
    assert abs(shifted[10] - 0.7 * 15) < 0.05


def test_session_without_calibration_needs_a_baseline_for_sfm(broken, capsys):
    root, out = broken
    rig = yaml.safe_load((root / "rig.yaml").read_text())
    rig.pop("calibration")
    (root / "rig.yaml").write_text(yaml.safe_dump(rig))
    message = cli_error(capsys, root, out)
    assert "key 'baseline'" in message and "structure from motion" in message
    assert json.loads((out / "reports/sync.json").read_text())  # sync (unchanged inputs) kept its output


def test_worker_pool_keeps_job_order_and_raises_the_first_failure(tmp_path):
    from capture_tools.ingest import Context, run_jobs

    # builtins pickle by name, so the spawned workers import nothing of the test
    ctx = Context(rig=None, out=tmp_path, params=IngestParams(workers=2))
    try:
        jobs = [{str(k): k for k in range(n)} for n in range(12)]
        assert list(run_jobs(ctx, len, jobs, "test")) == list(range(12))
        executor = ctx.executor()
        assert list(run_jobs(ctx, sorted, jobs[:9], "test")) == [sorted(job) for job in jobs[:9]]
        assert ctx.executor() is executor  # one pool per ingest run, shared by the stages
        with pytest.raises(TypeError):
            list(run_jobs(ctx, int, [{}] * 10, "test"))  # int(dict) fails in the worker
    finally:
        ctx.close()


def test_deleted_frame_makes_ingest_redo_what_run_asks_for(broken):
    """Issue 21: `run` said "re-run ingest" and ingest said "up to date" (it looked at the last frame)."""
    from benchmark.dataset import FIX_REINGEST, load_dataset

    root, out = broken
    image = out / "sequences/s01_t00/images/cam01/00007.jpg"
    mask = out / "sequences/s01_t01/masks/cam02/00003.png"
    saved_image, saved_mask = image.read_bytes(), mask.read_bytes()
    image.unlink()
    mask.unlink()
    for sequence in (out / "sequences").iterdir():  # these tests stop before tracking
        (sequence / "flame.npz").write_bytes(b"")
    with pytest.raises(InputError) as error:
        load_dataset(out)
    assert str(image) in str(error.value) and FIX_REINGEST in str(error.value)
    summary = ingest(root, out, PARAMS, stages=NO_TRACK)
    assert summary.ran == ["frames", "masks"]
    assert image.read_bytes() == saved_image and mask.read_bytes() == saved_mask
