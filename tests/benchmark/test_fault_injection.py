"""Issue 21: SIGKILL `gsbench run` at random points; the re-run gives the same results as an
uninterrupted run and leaves no process or temporary file behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gsbench.io import TEMP_MARKER

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run_command(data: Path, runs: Path) -> list[str]:
    return [sys.executable, "-m", "benchmark", "--quiet", "run", "--method", "retrieval", "--data", str(data),
            "--runs", str(runs), "--budget", "smoke", "--protocol", "mono-front", "--no-videos",
            "--device", "cpu"]  # fmt: skip


def results_state(runs: Path) -> dict[str, object]:
    """Per job: status, metrics, per-sequence prediction hashes and the checkpoint's bytes."""
    state: dict[str, object] = {}
    for results in sorted(runs.glob("*/*/*/*/results.json")):
        job = results.parent
        data = json.loads(results.read_text())
        state[str(job.relative_to(runs))] = {
            "status": data["status"],
            "metrics": data["metrics"],
            "predictions": {s: e["predictions_sha256"] for s, e in data["sequences"].items()},
            "checkpoint": {
                str(p.relative_to(job)): p.read_bytes()
                for p in sorted((job / "checkpoint").rglob("*"))
                if p.is_file()
            },
        }
    return state


@pytest.mark.slow
def test_sigkilled_run_reruns_to_the_same_results(tiny_dataset, tmp_path):
    reference = tmp_path / "reference"
    started = time.monotonic()
    subprocess.run(run_command(tiny_dataset, reference), env=ENV, cwd=REPO, check=True, capture_output=True)
    full_s = time.monotonic() - started
    expected = results_state(reference)
    assert len(expected) == 2 and all(v["status"] == "ok" for v in expected.values())

    rng = np.random.default_rng(21)
    runs = tmp_path / "runs"
    for kill_after in sorted(rng.uniform(0.5, full_s, size=3)):
        process = subprocess.Popen(run_command(tiny_dataset, runs), env=ENV, cwd=REPO, stderr=subprocess.PIPE)
        time.sleep(kill_after)
        below = descendants(process.pid)
        process.kill()
        process.wait()
        process.stderr.close()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in below) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [pid for pid in below if alive(pid)]
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        assert orphans == [], f"killed at {kill_after:.1f} s, left processes behind"
    subprocess.run(run_command(tiny_dataset, runs), env=ENV, cwd=REPO, check=True, capture_output=True)
    assert not [p for p in runs.rglob("*") if TEMP_MARKER in p.name]
    hidden = [p for p in runs.rglob(".*") if p.name not in (".ingest", ".lock") and ".ingest" not in p.parts]
    assert hidden == []  # no temporary of any naming (atomic writes, staging folders) is left
    assert results_state(runs) == expected
