"""The Ray executor on a local Ray instance: same job folders and results as the local executor."""

from __future__ import annotations

import json

import pytest

from benchmark.executors import RayExecutor
from benchmark.runner import RunOptions, run_benchmark


@pytest.mark.slow
def test_ray_executor_runs_jobs_as_ray_tasks(tiny_dataset_master, tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra: pip install 'gsbench[ray]'")
    options = RunOptions(methods="retrieval", protocols=("mono-front",), budget="smoke", videos=False)
    summary = run_benchmark(
        tiny_dataset_master, tmp_path / "ray-runs", options, executor=RayExecutor(num_cpus=2)
    )
    assert [o.status for o in summary.outcomes] == ["ok", "ok"] and summary.exit_code == 0
    assert run_benchmark(tiny_dataset_master, tmp_path / "local-runs", options).exit_code == 0
    for subject in ("s01", "s02"):
        ray_results = json.loads(
            (
                tmp_path / "ray-runs" / "tiny" / "mono-front" / "retrieval" / subject / "results.json"
            ).read_text()
        )
        local_results = json.loads(
            (
                tmp_path / "local-runs" / "tiny" / "mono-front" / "retrieval" / subject / "results.json"
            ).read_text()
        )
        assert ray_results["status"] == "ok" and ray_results["config_hash"] == local_results["config_hash"]
        assert ray_results["metrics"]["psnr"]["value"] == pytest.approx(
            local_results["metrics"]["psnr"]["value"]
        )
