"""``gsbench doctor`` says which rasterizer backend ``auto`` picks and why, for each reason (the machine
probes of avatars.render.backend replaced; see tests/avatars/test_gpu_backend.py for the probes)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import avatars.render._extension as extension
from avatars.render import backend as backend_mod
from gsbench.doctor import Check, rasterizer_check

H200 = ("cuda:0", "NVIDIA H200")


@pytest.fixture
def machine(monkeypatch):
    def set_machine(cuda=None, gsplat=None, kernels=None, cpp=True):
        monkeypatch.setattr(
            backend_mod, "cuda_device", lambda device="auto": None if device == "cpu" else cuda
        )
        monkeypatch.setattr(backend_mod, "gsplat_version", lambda: gsplat)
        monkeypatch.setattr(backend_mod, "gsplat_kernel_error", lambda device: kernels)
        monkeypatch.setattr(extension, "load_extension", lambda: object() if cpp else None)
        monkeypatch.setattr(extension, "build_error", lambda: None if cpp else "CalledProcessError: no c++")
        monkeypatch.setattr(torch.version, "cuda", "13.0")

    return set_machine


def test_no_cuda_device_is_ok_and_says_the_cpu_kernel_runs(machine):
    machine(cuda=None)
    check = rasterizer_check()
    assert check.ok and not check.required and check.name == "rasterizer (auto)"
    assert check.detail.startswith("cpu (gsbench C++): no CUDA device: torch ")
    assert check.fix == ""


def test_gsplat_missing_on_a_gpu_is_flagged_with_the_install_command(machine):
    machine(cuda=H200, gsplat=None)
    check = rasterizer_check()
    assert not check.ok and not check.required
    assert check.detail.startswith(
        "cpu (gsbench C++): cuda:0 (NVIDIA H200) found, but gsplat is not installed"
    )
    assert check.fix.startswith("GSBENCH_GPU=1 bash scripts/setup.sh")


def test_kernels_that_did_not_build_show_the_whole_error(machine):
    log = "RuntimeError: Error building extension 'gsplat_cuda'\nnvcc fatal   : Unsupported gpu architecture"
    machine(cuda=H200, gsplat="1.5.3", kernels=log)
    check = rasterizer_check()
    assert not check.ok
    first, *rest = check.detail.splitlines()
    assert first == (
        "cpu (gsbench C++): cuda:0 (NVIDIA H200) and gsplat 1.5.3 found, but gsplat's CUDA kernels could not "
        "be built: RuntimeError: Error building extension 'gsplat_cuda'"
    )
    assert rest == log.splitlines()  # the error itself, every line
    assert "nvcc" in check.fix and "torch.version.cuda" in check.fix


def test_working_gsplat_is_ok_and_named_with_its_version(machine):
    machine(cuda=H200, gsplat="1.5.3", kernels=None)
    check = rasterizer_check()
    assert check.ok and check.detail == "cuda:0 (gsplat 1.5.3): cuda:0 (NVIDIA H200) with gsplat 1.5.3"


def test_cpu_kernel_that_does_not_build_is_flagged(machine):
    machine(cuda=None, cpp=False)
    check = rasterizer_check()
    assert not check.ok and check.detail.startswith("cpu (gsbench torch): no CUDA device")
    assert "g++" in check.fix


def test_doctor_command_prints_the_backend_line(monkeypatch, machine):
    import gsbench.doctor as doctor
    from benchmark.cli import cli

    machine(cuda=H200, gsplat=None)
    monkeypatch.setattr(
        doctor, "run_checks", lambda: [Check("python >= 3.11", True, "3.11"), doctor.rasterizer_check()]
    )
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output  # an optional check never fails the doctor
    line = next(x for x in result.output.splitlines() if x.startswith("rasterizer backend (auto):"))
    assert line == (
        "rasterizer backend (auto): cpu (gsbench C++): cuda:0 (NVIDIA H200) found, but gsplat is not "
        "installed: GSBENCH_GPU=1 bash scripts/setup.sh  (installs the 'gpu' extra: pip install -e '.[gpu]')"
    )
