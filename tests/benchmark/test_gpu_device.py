"""The rasterizer backend in every results.json (``device``) and in the leaderboard's ``device`` column;
the ``gpu`` tests run each registered method's smoke budget on CUDA through the runner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import avatars.render._extension as extension
from avatars.methods.base import Method, RenderOutput, RenderRequest, TrainStats
from avatars.render import backend as backend_mod
from avatars.render import rasterize
from benchmark.runner import RunOptions, device_name, resolve_device, run_benchmark


class SplatMethod(Method):
    """Test-only: renders one grey Gaussian per frame through ``rasterize(backend="auto")`` and reports the
    backend that ran in its info, as the Gaussian methods do (``info()["rasterizer"]``)."""

    name = "splat-test"
    description = "test-only method rendering one Gaussian through the rasterizer"
    protocols = ("mono-front",)

    def train(self, train_view, budget, workdir):
        self._backend = ""
        return TrainStats()

    def render(self, request: RenderRequest) -> RenderOutput:
        camera = request.camera
        K = torch.as_tensor(np.asarray(camera.K), dtype=torch.float32)
        out = rasterize(
            torch.tensor([[0.0, 0.0, 1.0]]),
            torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
            torch.full((1, 3), 0.1),
            torch.tensor([0.9]),
            torch.full((1, 3), 0.5),
            torch.eye(4)[None],
            K[None],
            camera.width,
            camera.height,
        )
        self._backend = out.backend
        rgb = out.features[0].numpy().astype(np.float32)
        alpha = out.alpha[0, ..., 0].numpy().astype(np.float32)
        frames = request.num_frames
        return RenderOutput(np.repeat(rgb[None], frames, 0), np.repeat(alpha[None], frames, 0))

    def info(self) -> dict:
        return {**super().info(), "rasterizer": self._backend}

    def save(self, path):
        (Path(path) / "nothing.txt").write_text("no state")

    def load(self, path):
        self._backend = ""


def test_auto_device_of_a_run_comes_from_the_backend_probe(monkeypatch):
    monkeypatch.setattr(backend_mod, "auto_device", lambda: "cuda:0")
    assert resolve_device("auto") == "cuda:0"
    monkeypatch.setattr(backend_mod, "auto_device", lambda: "cpu")
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"


def test_device_names_the_backend_that_ran_else_the_one_auto_picks(monkeypatch):
    monkeypatch.setattr(backend_mod, "gsplat_version", lambda: "1.5.3")
    assert device_name("cuda:0", "gsplat") == "cuda:0 (gsplat 1.5.3)"
    assert device_name("cpu", "cpu-cpp") == "cpu (gsbench C++)"
    assert device_name("cpu", "cpu-torch") == "cpu (gsbench torch)"
    monkeypatch.setattr(extension, "load_extension", lambda: None)
    monkeypatch.setattr(extension, "build_error", lambda: "CalledProcessError: no c++")
    assert device_name("cpu") == "cpu (gsbench torch)"  # a method that reports no rasterizer


@pytest.fixture
def splat_method():
    from avatars.methods import BUILTIN_METHODS

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(BUILTIN_METHODS, SplatMethod.name, f"{SplatMethod.__module__}:{SplatMethod.__name__}")
        yield SplatMethod


def test_results_and_leaderboard_carry_the_backend_that_rendered(
    tiny_dataset_master, splat_method, tmp_path, monkeypatch
):
    from benchmark.cli import main

    runs = tmp_path / "runs"
    options = RunOptions(
        methods="splat-test,retrieval",
        budget="smoke",
        protocols=("mono-front",),
        subjects=("s01",),
        videos=False,
    )
    summary = run_benchmark(tiny_dataset_master, runs, options)
    assert [o.status for o in summary.outcomes] == ["ok", "ok"]
    splat = json.loads((runs / "tiny" / "mono-front" / "splat-test" / "s01" / "results.json").read_text())
    retrieval = json.loads((runs / "tiny" / "mono-front" / "retrieval" / "s01" / "results.json").read_text())
    # what rasterize(auto) ran for CPU tensors: the C++ kernel, or pure torch where it does not build
    ran = "cpu-cpp" if extension.load_extension() is not None else "cpu-torch"
    label = {"cpu-cpp": "cpu (gsbench C++)", "cpu-torch": "cpu (gsbench torch)"}[ran]
    assert splat["method_info"]["rasterizer"] == ran and splat["device"] == label
    assert retrieval["device"] == backend_mod.choose_backend("cpu").label == label

    out = tmp_path / "boards"
    main(["--quiet", "leaderboard", "publish", "--runs", str(runs), "--out", str(out), "--no-plot"])
    with open(out / "tiny" / "mono-front.csv", newline="", encoding="utf-8") as handle:
        rows = {(r["method"], r["subject"]): r for r in csv.DictReader(handle)}
    assert rows[("splat-test", "s01")]["device"] == label
    assert rows[("splat-test", "mean")]["device"] == label
    markdown = (out / "tiny" / "mono-front.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| rank"))
    assert [c.strip() for c in header.strip("|").split("|")][-3:] == ["render fps", "device", "status"]
    splat_line = next(line for line in markdown.splitlines() if "| splat-test | s01 |" in line)
    assert f"| {label} | ok |" in splat_line


# ---------------------------------------------------------------------------------------------- gpu


def _method_names() -> list[str]:
    from avatars.methods import BUILTIN_METHODS

    return sorted(BUILTIN_METHODS)


@pytest.mark.gpu
@pytest.mark.parametrize("method", _method_names())
def test_each_method_smoke_budget_on_cuda(method, tiny_dataset_master, tmp_path):
    """Each registered method trains, renders and scores at the smoke budget with --device cuda; a method
    that rasterizes must have rendered through gsplat (its info's ``rasterizer``) and results.json names
    the GPU. Fails while a method keeps its tensors on the CPU whatever ``Method.device`` says."""
    pytest.importorskip("gsplat")
    choice = backend_mod.choose_backend("cuda")
    assert choice.on_gpu, choice.reason
    from benchmark.methods import get_method

    protocol = next(p for p in ("mono-front", "multiview") if p in get_method(method).protocols)
    options = RunOptions(
        methods=method, budget="smoke", protocols=(protocol,), subjects=("s01",), device="cuda", videos=False
    )
    summary = run_benchmark(tiny_dataset_master, tmp_path / "runs", options)
    assert [o.status for o in summary.outcomes] == ["ok"], [o.error for o in summary.outcomes]
    results = json.loads(Path(summary.outcomes[0].results_path).read_text())
    assert results["metrics"]["psnr"]["status"] == "ok"
    rasterizer = results["method_info"].get("rasterizer")
    if rasterizer is not None:  # retrieval rasterizes nothing
        assert rasterizer == "gsplat", f"{method} rendered on {rasterizer} with --device cuda"
        assert results["device"] == choice.label
