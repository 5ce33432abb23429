"""Wall time of the README's main command on this machine: synth -> ingest -> run --method all -> publish.

    .venv/bin/python benchmarks/pipeline.py                       # default preset, quick budget
    .venv/bin/python benchmarks/pipeline.py --preset tiny --budget smoke
    .venv/bin/python benchmarks/pipeline.py --data data/s1        # skip synth + ingest: time run + publish

Each stage runs as its own ``gsbench`` subprocess (as a user would type it) in a scratch folder
(``--work``, default a temporary folder removed afterwards). The goal for the whole default pipeline
with all methods is <= 20 minutes on 2 cores. A stage that fails stops the timing and is reported with
its exit code; ``gsbench run`` exits 1 when some job failed, which is reported but does not stop the
leaderboard stage (the failed rows are part of the leaderboard).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_S = 20 * 60


def gsbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmark", "--quiet", *args]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="default", help="gsbench synth --preset (tiny, default, full)")
    parser.add_argument("--budget", default="quick", help="gsbench run --budget (smoke, quick, paper)")
    parser.add_argument("--method", default="all")
    parser.add_argument("--data", type=Path, help="an existing dataset: skip synth and ingest")
    parser.add_argument("--work", type=Path, help="scratch folder (kept); default: a temporary one (removed)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="gsbench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    session, data = work / "session", args.data or work / "data"
    stages = []
    if args.data is None:
        stages += [
            ("synth", gsbench("synth", str(session), "--preset", args.preset)),
            ("ingest", gsbench("ingest", str(session), "-o", str(data))),
        ]
    stages += [
        (
            "run",
            gsbench(
                "run",
                "--method",
                args.method,
                "--data",
                str(data),
                "--budget",
                args.budget,
                "--runs",
                str(work / "runs"),
            ),
        ),
        (
            "leaderboard",
            gsbench(
                "leaderboard",
                "publish",
                "--runs",
                str(work / "runs"),
                "--out",
                str(work / "leaderboards"),
                "--no-plot",
            ),
        ),
    ]
    timings, status = [], 0
    env = {**os.environ, "GSBENCH_QUIET": "1"}
    try:
        for name, command in stages:
            start = time.perf_counter()
            completed = subprocess.run(command, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            timings.append((name, seconds, completed.returncode))
            print(f"{name:12s} {seconds:8.1f} s  exit {completed.returncode}", flush=True)
            if completed.returncode != 0:
                print(
                    completed.stderr.strip().splitlines()[-1] if completed.stderr.strip() else "(no stderr)"
                )
                status = completed.returncode
                if name != "run":
                    break
            if name == "leaderboard":
                print(completed.stdout)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    total = sum(t[1] for t in timings)
    goal = f"goal <= {GOAL_S / 60:.0f} min on 2 cores; {os.cpu_count()} CPUs here"
    print(f"{'total':12s} {total:8.1f} s  ({goal})")
    return status


if __name__ == "__main__":
    sys.exit(main())
