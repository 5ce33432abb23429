"""The runner end to end on the tiny dataset: retrieval + test-only methods, re-runs, leaderboard rows.

One ``gsbench run`` (module fixture) covers retrieval (mono-front + cross-id), a method that raises in
train, a method that asks for test images and an oracle method, on both subjects.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.runner import RunOptions, run_benchmark
from gsbench.ffmpeg import ffmpeg_exe

METHODS = "retrieval,exploding-test,peeking-test,oracle-test"


def _cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def _results(runs: Path, protocol: str, method: str, subject: str) -> dict:
    return json.loads((runs / "tiny" / protocol / method / subject / "results.json").read_text())


@pytest.fixture(scope="module")
def first_run(tiny_dataset_master, registered_test_methods, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    code = _cli(
        [
            "--quiet",
            "run",
            "--method",
            METHODS,
            "--data",
            str(tiny_dataset_master),
            "--runs",
            str(runs),
            "--budget",
            "smoke",
            "--protocol",
            "mono-front,cross-id",
        ]
    )
    return runs, code


def test_failing_job_gives_nonzero_exit_and_others_finish(first_run):
    runs, code = first_run
    assert code == 1
    for subject in ("s01", "s02"):
        assert _results(runs, "mono-front", "retrieval", subject)["status"] == "ok"
        failed = _results(runs, "mono-front", "exploding-test", subject)
        assert failed["status"] == "failed" and "boom" in failed["error"]
        assert (
            "Traceback" in (runs / "tiny" / "mono-front" / "exploding-test" / subject / "log.txt").read_text()
        )


def test_method_asking_for_test_images_fails(first_run):
    runs, _ = first_run
    results = _results(runs, "mono-front", "peeking-test", "s01")
    assert results["status"] == "failed"
    assert "holds no test images" in results["error"]


def test_retrieval_results_are_complete(first_run, tiny_dataset_master):
    runs, _ = first_run
    results = _results(runs, "mono-front", "retrieval", "s01")
    for key in (
        "config_hash",
        "compositing",
        "weights",
        "timing",
        "num_gaussians",
        "device",
        "gsbench_version",
        "git_commit",
        "dataset",
        "method_info",
    ):
        assert key in results
    assert results["dataset"]["hash"] and len(results["config_hash"]) == 64
    assert results["method_info"]["audio_encoder"].startswith("mfcc50")
    assert results["timing"]["render_fps"] > 0 and results["timing"]["frames_rendered"] == 12
    sequence = results["sequences"]["s01_t03"]
    assert sequence["num_frames"] == 12
    psnr = results["metrics"]["psnr"]
    assert psnr["status"] == "ok" and math.isfinite(psnr["value"]) and psnr["direction"] == "higher"
    assert psnr["value"] == pytest.approx(sequence["metrics"]["psnr"]["value"])  # one sequence: mean == it
    for name, entry in results["metrics"].items():  # missing weights are reported, never substituted
        assert (entry["value"] is None) == (entry["status"] != "ok"), name
        if entry["status"] == "missing":
            assert entry["reason"]
    # the registry is empty in tests (tests/conftest.py): no AlexNet, no SyncNet; the pixel metrics are ok
    for name in ("lpips", "lpips_masked", "lpips_mouth"):
        entry = results["metrics"][name]
        assert entry["status"] == "missing" and "alexnet-owt-7be5be79.pth" in entry["reason"], entry
    for name in ("lse_d", "lse_c", "lse_d_video", "lse_c_video"):
        entry = results["metrics"][name]
        assert entry["status"] == "missing" and "syncnet_v2.model" in entry["reason"], entry
    for name in ("psnr", "psnr_masked", "psnr_mouth", "ssim", "ssim_masked", "ssim_mouth"):
        assert results["metrics"][name]["status"] == "ok", name
        assert results["metrics"][name]["value"] == pytest.approx(sequence["metrics"][name]["value"])
    assert results["metrics"]["ssim"]["value"] < 1.0 and results["metrics"]["psnr"]["value"] < 60
    job = runs / "tiny" / "mono-front" / "retrieval" / "s01"
    assert json.loads((job / "config.json").read_text())["method_config"]["num_mfcc"] == 13
    assert (job / "checkpoint" / "lookup.npz").is_file()
    assert (job / "comparison" / "s01_t03.png").stat().st_size > 0
    probe = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(job / "videos" / "s01_t03.mp4")],
        capture_output=True,
        text=True,
    )
    assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr


def test_cross_id_uses_other_subject_audio_and_sync_metrics_only(first_run):
    runs, _ = first_run
    results = _results(runs, "cross-id", "retrieval", "s01")
    assert results["status"] == "ok"
    assert list(results["sequences"]) == ["s02_t03"]
    assert results["method_info"]["driven_by_subject"] == "s02"
    assert results["metrics"]["psnr"]["status"] == "skipped"
    # the registry is empty in tests (tests/conftest.py): LSE is missing, naming the SyncNet file
    assert results["metrics"]["lse_c"]["status"] == "missing"
    assert "syncnet_v2.model" in results["metrics"]["lse_c"]["reason"]
    assert {n for n, e in results["metrics"].items() if e["status"] == "skipped"} >= {"psnr", "ssim", "lmd"}
    # trained as mono-front: the checkpoint of that job is reused, not retrained
    assert results["timing"]["checkpoint_from"].endswith("mono-front/retrieval/s01/checkpoint")
    own = _results(runs, "mono-front", "retrieval", "s01")
    assert results["timing"]["train_seconds"] == own["timing"]["train_seconds"]


def test_rerun_skips_finished_jobs_and_force_redoes_them(first_run, tiny_dataset_master):
    runs, _ = first_run
    results_path = runs / "tiny" / "mono-front" / "retrieval" / "s01" / "results.json"
    before = results_path.read_bytes()
    summary = run_benchmark(
        tiny_dataset_master,
        runs,
        RunOptions(
            methods="retrieval,exploding-test", budget="smoke", protocols=("mono-front",), videos=False
        ),
    )
    status = {(o.job.method, o.job.subject): o.status for o in summary.outcomes}
    assert status[("retrieval", "s01")] == "skipped" and status[("retrieval", "s02")] == "skipped"
    assert status[("exploding-test", "s01")] == "failed"  # failed jobs are retried, and fail again
    assert summary.exit_code == 1
    assert results_path.read_bytes() == before
    forced = run_benchmark(
        tiny_dataset_master,
        runs,
        RunOptions(
            methods="retrieval", budget="smoke", force=True, protocols=("mono-front",), subjects=("s01",)
        ),
    )
    assert [o.status for o in forced.outcomes] == ["ok"] and forced.exit_code == 0
    redone = json.loads(results_path.read_text())
    assert redone["metrics"]["psnr"]["value"] == pytest.approx(json.loads(before)["metrics"]["psnr"]["value"])


def test_leaderboard_rows_from_the_run(first_run, tmp_path):
    runs, _ = first_run
    out = tmp_path / "boards"
    assert (
        _cli(["--quiet", "leaderboard", "publish", "--runs", str(runs), "--out", str(out), "--no-plot"]) == 0
    )
    first = (out / "tiny" / "mono-front.csv").read_bytes()
    with open(out / "tiny" / "mono-front.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_key = {(r["method"], r["subject"]): r for r in rows}
    assert by_key[("retrieval", "mean")]["rank"] == "1"
    assert float(by_key[("retrieval", "s01")]["psnr ↑"]) == pytest.approx(
        _results(runs, "mono-front", "retrieval", "s01")["metrics"]["psnr"]["value"], abs=1e-4
    )
    assert by_key[("exploding-test", "s01")]["status"].startswith("failed: ")
    assert by_key[("exploding-test", "mean")]["status"].startswith("incomplete")
    assert (
        by_key[("oracle-test", "mean")]["oracle"] == "yes" and by_key[("oracle-test", "mean")]["rank"] == ""
    )
    assert (
        _cli(["--quiet", "leaderboard", "publish", "--runs", str(runs), "--out", str(out), "--no-plot"]) == 0
    )
    assert (out / "tiny" / "mono-front.csv").read_bytes() == first


def test_selection_without_jobs_is_an_error(tiny_dataset_master, tmp_path):
    from benchmark.runner import plan_jobs
    from gsbench.errors import ConfigError

    with pytest.raises(ConfigError, match="no job to run: retrieval: does not support multiview"):
        plan_jobs(tiny_dataset_master, tmp_path, RunOptions(methods="retrieval", protocols=("multiview",)))
    with pytest.raises(ConfigError, match="unknown subject"):
        plan_jobs(tiny_dataset_master, tmp_path, RunOptions(methods="retrieval", subjects=("s09",)))


def test_run_scores_lse_with_a_syncnet_trained_here(tiny_dataset_master, tmp_path, monkeypatch):
    """`--syncnet syncnet-gsbench-<sha8>`: LSE-D/LSE-C come from our trained SyncNet, named in the
    results (weight id, config); an unknown name fails before any job; a missing one is 'missing'."""
    weights = tmp_path / "weights"
    assert (
        _cli(
            ["--quiet", "weights", "train-syncnet", str(tiny_dataset_master), "--steps", "2"]
            + ["--batch-size", "4", "--width", "0.0625", "--out", str(weights)]
        )
        == 0
    )
    (path,) = sorted(weights.glob("syncnet-gsbench-*.pt"))
    monkeypatch.setenv("GSBENCH_WEIGHTS", str(weights))
    assert _cli(["weights", "find", path.stem]) == 0  # what scripts/main.sh asks before training one
    assert _cli(["weights", "find", "syncnet-gsbench-00000000"]) != 0
    runs = tmp_path / "runs"
    argv = [
        "--quiet",
        "run",
        "--method",
        "retrieval",
        "--data",
        str(tiny_dataset_master),
        "--runs",
        str(runs),
    ]
    argv += ["--budget", "smoke", "--protocol", "mono-front", "--subject", "s01", "--no-videos"]
    assert _cli(argv + ["--syncnet", path.stem]) == 0
    results = _results(runs, "mono-front", "retrieval", "s01")
    for name in ("lse_d", "lse_c"):
        entry = results["metrics"][name]
        assert entry["status"] == "ok" and math.isfinite(entry["value"]), entry
        assert path.stem[len("syncnet-gsbench-") :] in entry["weight_id"]
    job = runs / "tiny" / "mono-front" / "retrieval" / "s01"
    assert json.loads((job / "config.json").read_text())["syncnet"] == path.stem

    assert _cli(argv + ["--force", "--syncnet", "syncnet-gsbench-00000000"]) == 0
    entry = _results(runs, "mono-front", "retrieval", "s01")["metrics"]["lse_d"]
    assert entry["status"] == "missing" and "syncnet-gsbench-00000000" in entry["reason"]

    assert _cli(argv + ["--syncnet", "no-such-net"]) != 0


def test_one_camera_dataset_plans_no_multiview_job(tiny_dataset_master, tmp_path, monkeypatch):
    """On a monocular (one-camera) dataset, multiview and the cross-id of a multiview method are left
    out at planning time with a note, and asking for multiview by name is one clear error."""
    import dataclasses

    import benchmark.runner as runner
    from benchmark.dataset import load_dataset
    from gsbench.errors import ConfigError

    full = load_dataset(tiny_dataset_master)
    frontal = full.frontal_camera
    mono = dataclasses.replace(full, camera_ids=(frontal,), cameras={frontal: full.cameras[frontal]})
    monkeypatch.setattr(runner, "load_dataset", lambda *args, **kwargs: mono)
    plan = runner.plan_jobs(tiny_dataset_master, tmp_path, RunOptions(methods="gaussianspeech,retrieval"))
    assert {job.protocol for job in plan.jobs if job.method == "gaussianspeech"} == set()
    assert any("gaussianspeech: multiview skipped" in note for note in plan.notes)
    assert {job.method for job in plan.jobs} == {"retrieval"}
    with pytest.raises(ConfigError, match="monocular"):
        runner.plan_jobs(
            tiny_dataset_master, tmp_path, RunOptions(methods="retrieval", protocols=("multiview",))
        )
