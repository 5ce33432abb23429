"""Issue 21 (capture side): probe refuses streams that would silently shorten a take, rig.yaml's audio
rate is checked, YAML errors keep their line, and ingest does not touch folders it does not own."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from session_factory import FPS, FS, encode, speech_like

from capture_tools.ingest import ingest
from capture_tools.rig import load_rig
from gsbench.errors import ConfigError, InputError, MediaError
from gsbench.ffmpeg import ffmpeg_exe
from gsbench.media import probe_video, write_wav

NUM_FRAMES = 37
CAMERAS = ("cam00", "cam01", "cam02")


def faststart(path: Path) -> None:
    """Move the mp4 index to the front (as `gsbench synth` and many cameras write): a copy cut short
    then still opens, with fewer frames."""
    tmp = path.with_suffix(".fs.mp4")
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(path), "-c", "copy", "-movflags", "+faststart",
         str(tmp)], check=True,
    )  # fmt: skip
    tmp.replace(path)


@pytest.fixture(scope="module")
def mini_session(tmp_path_factory) -> Path:
    """Three cameras, one take of 37 frames, 16 kHz master audio, no calibration: enough for probe."""
    root = tmp_path_factory.mktemp("mini")
    rng = np.random.default_rng(0)
    seconds = NUM_FRAMES / FPS
    master = speech_like(rng, seconds)
    write_wav(root / "takes/t0/audio.wav", master, FS)
    for camera in CAMERAS:
        frames = rng.integers(0, 255, (NUM_FRAMES, 64, 64, 3), dtype=np.uint8)
        encode(root / "takes/t0" / f"{camera}.mp4", frames, master)
        faststart(root / "takes/t0" / f"{camera}.mp4")
    rig = {
        "name": "mini", "fps": FPS, "frontal_camera": "cam01",
        "audio": {"sample_rate": FS, "master": "audio.wav"},
        "cameras": [{"id": c, "video": f"{c}.mp4"} for c in CAMERAS],
        "takes": [{"id": "t0", "subject": "s01"}],
    }  # fmt: skip
    (root / "rig.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))
    return root


@pytest.fixture
def session(mini_session, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(mini_session, tmp_path / "session"))


def test_intact_session_passes_probe(session, tmp_path):
    summary = ingest(session, tmp_path / "out", stages=["probe"])
    assert summary.ran == ["probe"]


def test_video_cut_to_half_is_refused_naming_the_file(session, tmp_path):
    video = session / "takes/t0/cam02.mp4"
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated or corrupt") as error:
        ingest(session, tmp_path / "out", stages=["probe"])
    assert str(video) in str(error.value) and "camera cam02, take t0" in str(error.value)
    assert f"declares {NUM_FRAMES}" in str(error.value)  # the count in its index


def test_reencoded_short_copy_is_refused_against_the_other_cameras(session, tmp_path):
    """A partial copy that was re-muxed has a consistent header: only the other cameras show it is short."""
    video = session / "takes/t0/cam00.mp4"
    short = video.with_suffix(".short.mp4")
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video), "-frames:v", "19", "-c", "copy", "-an",
         str(short)], check=True,
    )  # fmt: skip
    short.replace(video)
    assert probe_video(video).num_frames == 19  # the file alone looks fine
    with pytest.raises(MediaError, match=f"19 frames, the other cameras of the take t0 have {NUM_FRAMES}"):
        ingest(session, tmp_path / "out", stages=["probe"])


@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_image_renamed_mp4_is_refused(session, tmp_path, kind):
    video = session / "takes/t0/cam01.mp4"
    image = tmp_path / f"frame.{kind}"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    video.write_bytes(image.read_bytes())
    with pytest.raises(MediaError, match="is a still image") as error:
        ingest(session, tmp_path / "out", stages=["probe"])
    assert str(video) in str(error.value)


def test_single_frame_video_is_refused(tmp_path):
    video = tmp_path / "one.mp4"
    encode(video, np.zeros((1, 64, 64, 3), np.uint8), None)
    with pytest.raises(MediaError, match="1 frame") as error:
        probe_video(video)
    assert str(video) in str(error.value)


def _set_rate(session: Path, rate: int, declared: int) -> None:
    rng = np.random.default_rng(1)
    write_wav(session / "takes/t0/audio.wav", speech_like(rng, NUM_FRAMES / FPS)[:: FS // rate], rate)
    rig = yaml.safe_load((session / "rig.yaml").read_text())
    rig["audio"]["sample_rate"] = declared
    (session / "rig.yaml").write_text(yaml.safe_dump(rig, sort_keys=False))


def test_master_audio_rate_must_match_rig_yaml(session, tmp_path):
    _set_rate(session, 8000, declared=16000)
    with pytest.raises(MediaError, match="master audio is 8000 Hz, rig.yaml says audio.sample_rate: 16000"):
        ingest(session, tmp_path / "out", stages=["probe"])


def test_master_audio_below_16k_is_warned_about(session, tmp_path, capsys):
    _set_rate(session, 8000, declared=8000)
    ingest(session, tmp_path / "out", stages=["probe"])
    err = " ".join(capsys.readouterr().err.split())
    assert "warning:" in err and "8000 Hz, below the 16000 Hz" in err and "audio.wav" in err


def test_rig_yaml_syntax_error_keeps_line_and_column(session):
    text = (session / "rig.yaml").read_text().replace("takes:\n- id: t0", "takes:\n- id: t0\n  bad: [1, 2")
    (session / "rig.yaml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_rig(session)
    line = text.splitlines().index("  bad: [1, 2") + 1
    assert f"line {line + 1}, column" in str(error.value) or f"line {line}, column" in str(error.value)


def test_ingest_refuses_a_folder_with_unrelated_files(session, tmp_path):
    out = tmp_path / "mine"
    (out / "sequences/t0/images").mkdir(parents=True)
    keep = out / "sequences/t0/images/holiday.jpg"
    keep.write_bytes(b"not ours")
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(InputError, match="not a gsbench dataset"):
        ingest(session, out, stages=["probe"])
    assert keep.read_bytes() == b"not ours" and (out / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "sequences"]


# ---------------------------------------------------------------- worker processes
SLEEPY_INGEST = r"""
import os, sys, time
from pathlib import Path
from benchmark.cli import main
from capture_tools import ingest as ingest_mod
from capture_tools.ingest import run_jobs

def sleepy(ctx):
    executor = ctx.executor()
    for future in [executor.submit(time.sleep, 0.5) for _ in range(2)]:  # both workers start
        future.result()
    pids = " ".join(str(pid) for pid in executor._processes)
    Path(sys.argv[3]).write_text(pids)
    # one long job, then short ones: the second worker ends up idle, waiting for work (as in a stage
    # whose last cameras are still running)
    list(run_jobs(ctx, time.sleep, [30.0] + [0.01] * 7, "sleepy"))
    return {}

ingest_mod.register_stage(ingest_mod.Stage("sleepy", sleepy, lambda ctx: {}, lambda p: {}))
main(["--quiet", "ingest", sys.argv[1], "-o", sys.argv[2], "--stages", "sleepy", "--workers", "2"])
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _start_sleepy_ingest(mini_session, tmp_path):
    import os
    import sys
    import time

    pid_file = tmp_path / "workers.txt"
    process = subprocess.Popen(
        [sys.executable, "-c", SLEEPY_INGEST, str(mini_session), str(tmp_path / "out"), str(pid_file)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives a command
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text()):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)
    workers = [int(pid) for pid in pid_file.read_text().split()]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    return process, workers


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    import time

    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


def test_sigkilled_ingest_leaves_no_worker_alive(mini_session, tmp_path):
    import signal

    process, workers = _start_sleepy_ingest(mini_session, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    survivors = _wait_gone(workers, 10.0)  # they sleep 30 s: only their parent's death stops them
    for pid in survivors:
        __import__("os").kill(pid, signal.SIGKILL)
    assert survivors == []


def test_ctrl_c_stops_ingest_and_its_workers_with_one_line(mini_session, tmp_path):
    import os
    import signal
    import time

    process, workers = _start_sleepy_ingest(mini_session, tmp_path)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and [line for line in err.splitlines() if line.strip()] == ["aborted"]
    assert _wait_gone(workers, 10.0) == []


def test_ingest_into_an_unwritable_folder_is_one_line(session, tmp_path, capsys):
    from benchmark.cli import main

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(SystemExit) as exit_:
        main(["--quiet", "ingest", str(session), "-o", str(blocker / "dataset"), "--stages", "probe"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert str(blocker / "dataset") in err


def test_second_ingest_into_the_same_folder_says_already_running(session, tmp_path):
    import os

    from gsbench.errors import BusyError
    from gsbench.io import folder_lock

    out = tmp_path / "out"
    with folder_lock(out / ".ingest" / "lock", "another ingest"):
        with pytest.raises(BusyError, match=f"already running, PID {os.getpid()}"):
            ingest(session, out, stages=["probe"])
    assert not (out / "reports").exists()
