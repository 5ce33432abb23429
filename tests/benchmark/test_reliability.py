"""Issue 21 (benchmark side): frame order in `gsbench metrics`, and no lost or clobbered job results
(per-job lock, failed --force keeps the good result, a complete checkpoint is reused)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.runner import RunOptions, plan_jobs, run_job
from gsbench.errors import MediaError
from gsbench.io import TEMP_MARKER, folder_lock
from gsbench.media import read_video_or_frames


# ---------------------------------------------------------------- gsbench metrics on frame folders
def _write_frames(folder: Path, frames: np.ndarray, name) -> None:
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{name(index)}.png"), frame)


@pytest.fixture
def noise_frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (37, 16, 16, 3), dtype=np.uint8)


def test_frame_folder_is_read_in_numeric_order(tmp_path, noise_frames):
    _write_frames(tmp_path / "pred", noise_frames, lambda i: f"frame_{i}")
    frames, _ = read_video_or_frames(tmp_path / "pred")
    np.testing.assert_array_equal(frames, noise_frames[..., ::-1])  # frame_10 is the 11th, not the 3rd


def test_metrics_cli_pairs_frame_n_with_frame_n(tmp_path, noise_frames, capsys):
    """Unpadded names against zero-padded ones, same pixels: PSNR must be infinite (identical pairs)."""
    _write_frames(tmp_path / "pred", noise_frames, lambda i: f"frame_{i}")
    _write_frames(tmp_path / "gt", noise_frames, lambda i: f"{i:05d}")
    main(["--quiet", "metrics", str(tmp_path / "pred"), str(tmp_path / "gt"), "--metric", "psnr", "--json"])
    result = json.loads(capsys.readouterr().out)["psnr"]
    assert result["status"] == "ok" and result["value"] == float("inf")


def test_frame_names_differing_only_in_padding_are_refused(tmp_path, noise_frames):
    _write_frames(tmp_path / "pred", noise_frames[:3], lambda i: f"frame_{i}")
    cv2.imwrite(str(tmp_path / "pred" / "frame_01.png"), noise_frames[3])
    with pytest.raises(MediaError, match="frame_01.png and frame_1.png|frame_1.png and frame_01.png"):
        read_video_or_frames(tmp_path / "pred")


# ---------------------------------------------------------------- job results
@pytest.fixture
def oracle_job(tiny_dataset, registered_test_methods, tmp_path):
    """One fast job (the test-only oracle, no videos) of the tiny dataset."""

    def make(force: bool = False, seed: int = 0):
        options = RunOptions(
            methods="oracle-test", protocols=("mono-front",), subjects=("s01",), budget="smoke",
            device="cpu", force=force, videos=False, seed=seed,
        )  # fmt: skip
        (job,) = plan_jobs(tiny_dataset, tmp_path / "runs", options).jobs
        return job

    return make


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_second_run_of_a_running_job_says_already_running_and_writes_nothing(oracle_job):
    import os

    job = oracle_job()
    run_dir = Path(job.run_dir)
    with folder_lock(run_dir / ".lock", "test"):  # another run holds the job
        outcome = run_job(job)
        assert outcome.status == "failed"
        assert f"already running, PID {os.getpid()}" in outcome.error
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]
    assert run_job(job).status == "ok"


def test_failed_force_rerun_keeps_the_good_results(oracle_job, registered_test_methods, monkeypatch):
    job = oracle_job()
    results = Path(job.run_dir) / "results.json"
    assert run_job(job).status == "ok"
    good = results.read_bytes()

    def broken(self, request):
        raise RuntimeError("render broke on the second attempt")

    with monkeypatch.context() as patch:
        patch.setattr(registered_test_methods["oracle-test"], "render", broken)
        outcome = run_job(oracle_job(force=True))
    assert outcome.status == "failed" and "render broke" in outcome.error
    assert results.read_bytes() == good
    failed = _json(Path(job.run_dir) / "results.failed.json")
    assert failed["status"] == "failed" and "render broke" in failed["error"]
    assert run_job(oracle_job(force=True)).status == "ok"  # a new good result replaces both
    assert _json(results)["status"] == "ok" and not (Path(job.run_dir) / "results.failed.json").exists()


def test_complete_checkpoint_is_reused_after_a_kill_during_scoring(
    oracle_job, registered_test_methods, monkeypatch
):
    cls = registered_test_methods["oracle-test"]
    calls = {"train": 0, "load": 0}
    original_train = cls.train

    def counting_train(self, *args):
        calls["train"] += 1
        return original_train(self, *args)

    def counting_load(self, path):
        calls["load"] += 1
        assert (Path(path) / "nothing.txt").read_text() == "no state"

    monkeypatch.setattr(cls, "train", counting_train)
    monkeypatch.setattr(cls, "load", counting_load)
    job = oracle_job()
    run_dir = Path(job.run_dir)
    assert run_job(job).status == "ok" and calls == {"train": 1, "load": 0}
    first = _json(run_dir / "results.json")
    # killed while scoring: checkpoint/ and checkpoint.json are there, results.json is not; the killed
    # attempt also left a staging folder and a half-written file behind
    (run_dir / "results.json").unlink()
    (run_dir / f".checkpoint{TEMP_MARKER}x1").mkdir()
    (run_dir / f".results.json{TEMP_MARKER}x2.json").write_text("{")
    assert run_job(job).status == "ok" and calls == {"train": 1, "load": 1}
    again = _json(run_dir / "results.json")
    assert again["metrics"] == first["metrics"]
    assert again["timing"]["train_seconds"] == first["timing"]["train_seconds"]
    assert not [p for p in run_dir.rglob("*") if TEMP_MARKER in p.name]
    # another training config (seed) does not reuse it
    (run_dir / "results.json").unlink()
    assert run_job(oracle_job(seed=1)).status == "ok" and calls["train"] == 2


# ---------------------------------------------------------------- OS errors are one line
def _one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_run_into_an_unwritable_runs_folder_is_one_line(
    tiny_dataset, registered_test_methods, tmp_path, capsys
):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs folder should be")
    err = _one_line_error(
        capsys,
        ["--quiet", "run", "--method", "oracle-test", "--data", str(tiny_dataset), "--runs", str(blocker),
         "--budget", "smoke", "--protocol", "mono-front", "--subject", "s01", "--no-videos"],
    )  # fmt: skip
    assert str(blocker) in err and "Not a directory" in err


def test_publish_into_an_unwritable_folder_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    from gsbench.io import write_json

    runs = tmp_path / "runs"
    write_json(
        runs / "ds/mono-front/m/a/results.json",
        {"schema": "gsbench.results", "schema_version": 1, "status": "ok",
         "dataset": {"name": "ds", "hash": "h"}, "protocol": "mono-front", "method": "m", "subject": "a",
         "metrics": {}},
    )  # fmt: skip
    out = tmp_path / "boards"

    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("leaderboards.publish.write_text", full_disk)
    err = _one_line_error(
        capsys, ["--quiet", "leaderboard", "publish", "--runs", str(runs), "--out", str(out)]
    )
    assert (
        str(out / "ds" / "mono-front.csv") in err
        and "No space left on device" in err
        and "disk is full" in err
    )


def test_permission_error_names_the_path(tmp_path, capsys, monkeypatch):
    import errno

    target = tmp_path / "head"

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(target / "gsbench-head.obj"))

    monkeypatch.setattr("tracking.head.build_default_head", denied)
    err = _one_line_error(capsys, ["--quiet", "head", "export", str(target)])
    assert f"{target / 'gsbench-head.obj'}: Permission denied" in err and "writable" in err


def test_truncated_flame_npz_fails_the_job_naming_the_file(tiny_dataset, oracle_job):
    flame = tiny_dataset / "sequences" / "s01_t03" / "flame.npz"  # s01's test sequence
    flame.write_bytes(flame.read_bytes()[:200])
    outcome = run_job(oracle_job())
    assert outcome.status == "failed" and str(flame) in outcome.error
    assert "unreadable .npz, truncated or corrupt" in outcome.error  # a message, not a bare BadZipFile


def test_truncated_flame_npz_in_export_names_the_file(tiny_dataset):
    from gsbench.errors import InputError
    from tracking.export_gaussian_avatars import export_gaussian_avatars

    flame = tiny_dataset / "sequences" / "s01_t00" / "flame.npz"
    flame.write_bytes(flame.read_bytes()[:200])
    with pytest.raises(InputError, match="truncated or corrupt") as error:
        export_gaussian_avatars(tiny_dataset, tiny_dataset.parent / "export", copy_images=False)
    assert str(flame) in str(error.value)
