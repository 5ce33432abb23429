"""``sync: hardware`` in rig.yaml (issue 26): cameras triggered together, no camera microphones, the
master audio aligned by a given offset. Without it such a session fails at sync."""

import json
import subprocess

import pytest
import yaml
from session_factory import write_session

from capture_tools.ingest import ingest
from capture_tools.rig import load_rig
from gsbench.errors import ConfigError, StageError
from gsbench.ffmpeg import ffmpeg_exe


@pytest.fixture(scope="module")
def silent_session(tmp_path_factory):
    """The factory session with every camera's microphone track removed (a NeRSemble-like rig)."""
    root = tmp_path_factory.mktemp("hardware")
    truth = write_session(root, take_seconds=1.0, holds=6)
    for take in truth["takes"]:
        for camera in truth["cameras"]:
            video = root / "takes" / take / f"{camera}.mp4"
            muted = video.with_name(f"{camera}.muted.mp4")
            subprocess.run(
                [ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(video), "-an", "-c", "copy", str(muted)],
                check=True,
            )
            muted.replace(video)
    return root, truth


def _set_sync(root, sync) -> None:
    rig = yaml.safe_load((root / "rig.yaml").read_text())
    rig.pop("sync", None)
    if sync is not None:
        rig["sync"] = sync
    (root / "rig.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))


def test_hardware_sync_gives_every_camera_the_given_offset(silent_session, tmp_path):
    root, truth = silent_session
    _set_sync(root, {"mode": "hardware", "audio_offset_s": 0.02})
    ingest(root, tmp_path / "dataset", stages=["probe", "sync"])
    result = json.loads((tmp_path / "dataset" / "reports" / "sync.json").read_text())["result"]
    for take in truth["takes"]:
        cameras = result["takes"][take]["cameras"]
        assert set(cameras) == set(truth["cameras"])
        for entry in cameras.values():
            assert entry["offset_s"] == pytest.approx(0.02)
            assert entry["offset_frames"] == pytest.approx(0.02 * truth["fps"])
            assert entry["method"] == "hardware (given offset)"


def test_the_same_session_without_sync_hardware_fails_at_sync(silent_session, tmp_path):
    root, _ = silent_session
    _set_sync(root, None)
    with pytest.raises(StageError, match="no camera-mic track and no visual event"):
        ingest(root, tmp_path / "dataset", stages=["probe", "sync"])


@pytest.mark.parametrize(
    ("sync", "message"),
    [
        ({"mode": "genlock"}, "unknown sync mode 'genlock'"),
        ({"mode": "audio", "audio_offset_s": 0.1}, "applies to mode: hardware only"),
        ({"mode": "hardware", "offset": 0.1}, "sync.offset"),
    ],
)
def test_bad_sync_settings_name_the_key(silent_session, sync, message):
    root, _ = silent_session
    _set_sync(root, sync)
    try:
        with pytest.raises(ConfigError, match=message) as error:
            load_rig(root)
        assert "rig.yaml" in str(error.value)
    finally:
        _set_sync(root, None)


def test_sync_hardware_as_a_plain_string(silent_session):
    root, _ = silent_session
    _set_sync(root, "hardware")
    try:
        rig = load_rig(root)
        assert rig.sync_mode == "hardware" and rig.audio_offset_s is None
    finally:
        _set_sync(root, None)
