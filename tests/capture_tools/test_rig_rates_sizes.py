"""Real rigs (issue 26): cameras at another rate than the dataset (50 fps resampled to 25) and larger
frames (2x) downscaled at extraction give the same dataset as the native session."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import yaml
from session_factory import SIZE, write_session

from capture_tools.frames import FrameParams, read_image
from capture_tools.ingest import IngestParams, ingest
from gsbench.ffmpeg import ffmpeg_exe

pytestmark = pytest.mark.slow
STAGES = ["probe", "sync", "calibrate", "frames"]


def _reencode(path, fps: float, size: int) -> None:
    out = path.with_name(path.stem + ".re" + path.suffix)
    filters = f"fps={fps:g},scale={size}:{size}:flags=bicubic"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(path), "-vf", filters, "-c:v", "libx264",
         "-crf", "8", "-preset", "fast", "-pix_fmt", "yuv420p", "-c:a", "copy", str(out)],
        check=True,
    )  # fmt: skip
    out.replace(path)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    root = tmp_path_factory.mktemp("rates")
    native = root / "native"
    truth = write_session(native, take_seconds=1.2, holds=8)
    fast = root / "fast_large"
    shutil.copytree(native, fast)
    for video in sorted(fast.rglob("*.mp4")):
        _reencode(video, 50.0, 2 * SIZE)
    rig = yaml.safe_load((fast / "rig.yaml").read_text())
    rig["fps"] = 50.0
    rig.pop("background", None)
    (fast / "rig.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))
    params = IngestParams(frames=FrameParams(fps=25.0, size=(96, 96)))
    ingest(native, root / "native_ds", params, stages=STAGES)
    ingest(fast, root / "fast_ds", params, stages=STAGES)
    return truth, root / "native_ds", root / "fast_ds"


def _result(out, stage):
    name = "calibration" if stage == "calibrate" else stage
    return json.loads((out / "reports" / f"{name}.json").read_text())["result"]


def test_50fps_2x_rig_gives_the_native_dataset(sessions):
    truth, native, fast = sessions
    frames_a, frames_b = _result(native, "frames"), _result(fast, "frames")
    assert frames_b["fps"] == 25.0 and frames_b["image_size"] == [96, 96]
    for take in truth["takes"]:
        assert frames_b["sequences"][take]["num_frames"] == frames_a["sequences"][take]["num_frames"]
        sync_a = _result(native, "sync")["takes"][take]["cameras"]
        sync_b = _result(fast, "sync")["takes"][take]["cameras"]
        for camera in truth["cameras"]:
            # the offset is the camera's own clock vs the master: a rate change does not move it
            assert sync_b[camera]["offset_s"] == pytest.approx(sync_a[camera]["offset_s"], abs=2e-3)
            assert sync_b[camera]["offset_frames"] == pytest.approx(2 * sync_b[camera]["offset_s"] * 25.0)
            for index in range(0, frames_a["sequences"][take]["num_frames"], 7):
                a = read_image(native / "sequences" / take / "images" / camera / f"{index:05d}.jpg")
                b = read_image(fast / "sequences" / take / "images" / camera / f"{index:05d}.jpg")
                assert np.abs(a.astype(int) - b.astype(int)).mean() < 4.0, (take, camera, index)
    cams_a = json.loads((native / "cameras.json").read_text())
    cams_b = json.loads((fast / "cameras.json").read_text())
    for camera in truth["cameras"]:
        # both calibrations scaled to the 96 px dataset: the same focal length within 2 %
        assert cams_b[camera]["K"][0][0] == pytest.approx(cams_a[camera]["K"][0][0], rel=0.02)


@pytest.fixture(scope="module")
def folder_dataset(tmp_path_factory):
    """A factory session whose cameras start together (as hardware-triggered ones do), ingested as
    written and again with every camera stored as an image folder (takes/<take>/<cam>/00000.jpg),
    without camera microphones, synchronised by ``sync: hardware``."""
    import dataclasses

    import session_factory

    root = tmp_path_factory.mktemp("folders")
    native = root / "native"
    original = session_factory.make_cameras
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            session_factory,
            "make_cameras",
            lambda: [dataclasses.replace(c, offset_s=0.0) for c in original()],
        )
        truth = session_factory.write_session(native, take_seconds=1.2, holds=8)
    folders = root / "folders"
    shutil.copytree(native, folders)
    for video in sorted(folders.rglob("*.mp4")):
        folder = video.with_suffix("")
        folder.mkdir()
        subprocess.run(
            [ffmpeg_exe(), "-loglevel", "error", "-i", str(video), "-start_number", "0", "-q:v", "1",
             str(folder / "%05d.jpg")],
            check=True,
        )  # fmt: skip
        video.unlink()
    rig = yaml.safe_load((folders / "rig.yaml").read_text())
    for camera in rig["cameras"]:
        camera["video"] = camera["id"]
    rig["sync"] = {"mode": "hardware", "audio_offset_s": 0.0}
    (folders / "rig.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))
    params = IngestParams(frames=FrameParams(size=(96, 96)))
    ingest(native, root / "native_ds", params, stages=STAGES)
    ingest(folders, root / "folders_ds", params, stages=STAGES)
    return truth, root / "native_ds", root / "folders_ds"


def test_image_folder_cameras_give_the_native_dataset(folder_dataset):
    truth, native, folders = folder_dataset
    probe = _result(folders, "probe")
    assert all(v["codec"] == "images" and not v["has_audio"] for v in probe["videos"].values())
    assert all(
        c["method"] == "hardware (given offset)"
        for take in _result(folders, "sync")["takes"].values()
        for c in take["cameras"].values()
    )
    frames_a, frames_b = _result(native, "frames"), _result(folders, "frames")
    for take in truth["takes"]:
        assert frames_b["sequences"][take]["num_frames"] == frames_a["sequences"][take]["num_frames"]
        for camera in truth["cameras"]:
            for index in range(0, frames_a["sequences"][take]["num_frames"], 7):
                a = read_image(native / "sequences" / take / "images" / camera / f"{index:05d}.jpg")
                b = read_image(folders / "sequences" / take / "images" / camera / f"{index:05d}.jpg")
                assert np.abs(a.astype(int) - b.astype(int)).mean() < 4.0, (take, camera, index)
    cams_a = json.loads((native / "cameras.json").read_text())
    cams_b = json.loads((folders / "cameras.json").read_text())
    for camera in truth["cameras"]:
        assert cams_b[camera]["K"][0][0] == pytest.approx(cams_a[camera]["K"][0][0], rel=0.02)
