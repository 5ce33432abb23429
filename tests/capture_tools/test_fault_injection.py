"""Issue 21: SIGKILL `gsbench ingest` at random points; the re-run gives the same dataset as an
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
from session_factory import write_session

from gsbench.io import TEMP_MARKER

REPO = Path(__file__).resolve().parents[2]
STAGES = "probe,sync,calibrate,frames"  # the factory session has no face: landmarks/track are elsewhere


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc)."""
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


def ingest_command(session: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "benchmark", "--quiet", "ingest", str(session), "-o", str(out),
            "--stages", STAGES, "--size", "96", "--workers", "2"]  # fmt: skip


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def dataset_state(out: Path) -> dict[str, object]:
    """What must not depend on interruptions: every file's bytes, except the timings in the reports,
    dataset.json's provenance and ingest's own state (kept: each report's result)."""
    state: dict[str, object] = {}
    for path in sorted(out.rglob("*")):
        if not path.is_file() or ".ingest" in path.parts:
            continue
        key = str(path.relative_to(out))
        if path.suffix == ".json" and path.parent.name == "reports":
            state[key] = json.loads(path.read_text())["result"]
        elif path.name == "dataset.json":
            meta = json.loads(path.read_text())
            meta["provenance"]["stages"] = sorted(meta["provenance"]["stages"])
            state[key] = meta
        elif path.suffix == ".png" and path.parent.name == "reports":
            state[key] = "plot"  # matplotlib output, not data
        else:
            state[key] = path.read_bytes()
    return state


@pytest.mark.slow
def test_sigkilled_ingest_reruns_to_the_same_dataset(tmp_path):
    session = tmp_path / "session"
    write_session(session)
    reference = tmp_path / "reference"
    started = time.monotonic()
    subprocess.run(ingest_command(session, reference), env=ENV, cwd=REPO, check=True, capture_output=True)
    full_s = time.monotonic() - started
    expected = dataset_state(reference)
    assert any(key.endswith(".jpg") for key in expected)

    rng = np.random.default_rng(21)
    out = tmp_path / "dataset"
    for kill_after in sorted(rng.uniform(0.5, full_s, size=3)):
        process = subprocess.Popen(ingest_command(session, out), env=ENV, cwd=REPO, stderr=subprocess.PIPE)
        time.sleep(kill_after)
        below = descendants(process.pid)
        process.kill()  # SIGKILL: no handler, no cleanup
        process.wait()
        process.stderr.close()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in below) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [pid for pid in below if alive(pid)]
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        assert orphans == [], f"killed at {kill_after:.1f} s, left processes behind"
    subprocess.run(ingest_command(session, out), env=ENV, cwd=REPO, check=True, capture_output=True)
    assert not [p for p in out.rglob("*") if TEMP_MARKER in p.name]
    hidden = [p for p in out.rglob(".*") if p.name not in (".ingest", ".lock") and ".ingest" not in p.parts]
    assert hidden == []  # no temporary of any naming (atomic writes, staging folders) is left
    got = dataset_state(out)
    assert sorted(got) == sorted(expected)
    different = {
        key: leaf_differences(expected[key], got[key]) for key in expected if got[key] != expected[key]
    }
    assert different == {}


def leaf_differences(a: object, b: object, path: str = "") -> list[str]:
    """Where two JSON values differ (for a readable failure)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in sorted(set(a) | set(b)) for d in leaf_differences(a.get(k), b.get(k), f"{path}/{k}")
        ]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in leaf_differences(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [f"{path}: {str(a)[:60]} != {str(b)[:60]}"]
