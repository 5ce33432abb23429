"""The GPU scripts up to the point where CUDA is needed: setup.sh's decision to install the ``gpu`` extra
(fake nvidia-smi / nvcc on PATH), and scripts/gpu_check.sh's dry run, no-CUDA stop and figures table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def test_gpu_extra_pins_gsplat_15_beside_the_base_torch_pin():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    gpu = project["optional-dependencies"]["gpu"]
    assert "gsplat==1.5.3" in gpu
    assert not any(req.startswith(("torch", "numpy", "opencv", "mediapipe")) for req in gpu)  # pins untouched
    assert "torch==2.14.1" in project["dependencies"]


@pytest.fixture
def fake_machine(tmp_path):
    """``run(gpu=..., nvcc=..., GSBENCH_GPU=...)``: setup.sh --gpu-plan with only the given CUDA tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()

    def run(gpu: bool, nvcc: bool, **env_vars: str) -> subprocess.CompletedProcess:
        for name in ("nvidia-smi", "nvcc"):
            (bin_dir / name).unlink(missing_ok=True)
        if gpu:
            (bin_dir / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\n")
        if nvcc:
            (bin_dir / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0'\n")
        for tool in bin_dir.iterdir():
            tool.chmod(0o755)
        env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",  # not /usr/local/bin, where a real nvcc may be
            "HOME": os.environ.get("HOME", "/root"),
            "PYTHON": sys.executable,
            "GSBENCH_VENV": str(tmp_path / "no-venv"),  # no torch to ask: nvidia-smi decides
            "CUDA_HOME": str(tmp_path / "no-cuda"),
            **env_vars,
        }
        return subprocess.run(
            ["bash", str(REPO / "scripts" / "setup.sh"), "--gpu-plan"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    return run


def test_setup_installs_the_gpu_extra_only_with_a_cuda_device_and_toolkit(fake_machine):
    both = fake_machine(gpu=True, nvcc=True)
    assert both.returncode == 0 and both.stdout.strip() == "gpu extra: install"
    assert "CUDA device and toolkit found" in both.stderr
    device_only = fake_machine(gpu=True, nvcc=False)
    assert device_only.stdout.strip() == "gpu extra: skip"
    assert "a CUDA device but no CUDA toolkit (nvcc)" in device_only.stderr
    assert "nothing changes" in device_only.stderr
    nothing = fake_machine(gpu=False, nvcc=True)
    assert nothing.stdout.strip() == "gpu extra: skip"
    assert "no CUDA device: the gpu extra (gsplat) is not installed; nothing changes" in nothing.stderr


def test_setup_gpu_extra_when_asked_or_refused(fake_machine, tmp_path):
    asked = fake_machine(gpu=False, nvcc=False, GSBENCH_GPU="1")
    assert asked.stdout.strip() == "gpu extra: install" and "GSBENCH_GPU=1" in asked.stderr
    refused = fake_machine(gpu=True, nvcc=True, GSBENCH_GPU="0")
    assert refused.stdout.strip() == "gpu extra: skip" and "GSBENCH_GPU=0" in refused.stderr
    nvcc_in_cuda_home = tmp_path / "no-cuda" / "bin"
    nvcc_in_cuda_home.mkdir(parents=True)
    (nvcc_in_cuda_home / "nvcc").write_text("#!/bin/sh\n")
    (nvcc_in_cuda_home / "nvcc").chmod(0o755)
    assert fake_machine(gpu=True, nvcc=False).stdout.strip() == "gpu extra: install"  # $CUDA_HOME/bin/nvcc
    wrong = fake_machine(gpu=True, nvcc=True, GSBENCH_GPU="yes")
    assert wrong.returncode == 2 and "GSBENCH_GPU must be 1, 0 or unset" in wrong.stderr


def _gpu_check(*args: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GSBENCH_PYTHON": sys.executable, "OUT": str(out)}
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "benchmark_conftest_for_gpu_check", REPO / "tests/benchmark/conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_tiny_dataset(tmp_path_factory.mktemp("gpu_check") / "tiny", subjects=("s01",))


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script really runs")
def test_gpu_check_dry_run_checks_and_prints_the_plan(tiny_data, tmp_path):
    cpu_results = tmp_path / "cpu.json"
    cpu_results.write_text("{}")
    result = _gpu_check(
        "--dry-run", "--data", str(tiny_data), "--cpu-results", str(cpu_results), out=tmp_path / "o"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("== gsbench GPU check (dry run")
    assert f"dataset:  {tiny_data} (tiny), subject s01" in lines
    assert f"cpu ref:  {cpu_results}" in lines
    job = next(line for line in lines if line.startswith("  4. job:"))
    assert (
        f"--method audio-plane --data {tiny_data} --budget paper --protocol mono-front --subject s01" in job
    )
    assert "--device cuda" in job and job.split()[2:4] == ["timeout", "420"]
    assert any(line.startswith("  3. tests:") and "pytest -q -m gpu tests" in line for line in lines)
    assert not any(line.startswith("problems") for line in lines)  # all a CPU machine can check is in place
    assert lines[-1].startswith("dry run: no CUDA device here (")
    assert not (tmp_path / "o").exists()  # nothing installed, nothing run


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine the script really runs")
def test_gpu_check_without_cuda_stops_before_installing_anything(tmp_path):
    result = _gpu_check("--data", str(tmp_path / "missing"), "--method", "hicode", out=tmp_path / "o")
    assert result.returncode == 3
    assert "gpu_check: no CUDA device here (" in result.stderr
    assert "nothing was installed or run" in result.stderr
    assert any(
        line.startswith(f"  - no dataset at {tmp_path / 'missing'} (") for line in result.stdout.splitlines()
    )
    assert "--method hicode" in result.stdout and not (tmp_path / "o").exists()


def test_gpu_check_rejects_an_unknown_argument(tmp_path):
    result = _gpu_check("--budget", "quick", out=tmp_path)
    assert result.returncode == 2 and "unknown argument '--budget'" in result.stderr


def test_gpu_check_report_prints_the_figures_beside_the_cpu_quick_run(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    gpu = {"status": "ok", "budget": "paper", "device": "cuda:0 (gsplat 1.5.3)",
           "method_info": {"rasterizer": "gsplat"}, "timing": {"train_seconds": 312.46, "render_fps": 143.24},
           "metrics": {"psnr": {"value": 31.257}}}  # fmt: skip
    cpu = {"status": "ok", "budget": "quick", "device": "cpu (gsbench C++)",
           "method_info": {"rasterizer": "cpu-cpp"}, "timing": {"train_seconds": 136.0, "render_fps": 55.04},
           "metrics": {"psnr": {"value": 29.84}}}  # fmt: skip
    (job / "results.json").write_text(json.dumps(gpu))
    (tmp_path / "cpu.json").write_text(json.dumps(cpu))
    result = _gpu_check("--report", str(job), "--cpu-results", str(tmp_path / "cpu.json"), out=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert rows[0] == "run budget status device rasterizer train s fps PSNR"
    assert rows[1] == "this job paper ok cuda:0 (gsplat 1.5.3) gsplat 312.5 143.2 31.26"
    assert rows[2] == "CPU reference quick ok cpu (gsbench C++) cpu-cpp 136.0 55.0 29.84"
    assert result.stdout.splitlines()[-1] == "PSNR paper - quick: +1.42 dB"  # 31.257 - 29.84


def test_gpu_check_report_of_a_job_that_left_no_results_shows_its_log(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "log.txt").write_text("\n".join(f"step {i}" for i in range(40)))
    result = _gpu_check("--report", str(job), out=tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0] == f"no results.json in {job} (job exit 0); last lines of its log:"
    assert lines[1:16] == [f"step {i}" for i in range(25, 40)]
    assert "this job       (none)" in lines


def test_gpu_check_report_of_a_failed_job_prints_its_error(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    error = "ModuleNotFoundError: No module named 'mediapipe'"
    failed = {"status": "failed", "error": error, "budget": "paper"}
    (job / "results.json").write_text(json.dumps(failed))
    lines = _gpu_check("--report", str(job), out=tmp_path).stdout.splitlines()
    assert " ".join(lines[1].split()) == "this job paper failed - - - - -"
    assert lines[-1] == (
        f"this job's error: ModuleNotFoundError: No module named 'mediapipe' (traceback in {job / 'log.txt'})"
    )
