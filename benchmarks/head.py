"""Build time of the procedural head ``gsbench-head`` (issue 2 target: under 5 s on 2 cores).

Prints, for each seed: the uncached ``build_default_head`` time (wall and process CPU, best and
median of ``--repeat`` runs), the cached load time of ``load_or_build_default_head`` (cache in a
temporary folder), the vertex/face counts, and the 1-minute load average (timings on a shared
machine are noisy: compare CPU times across runs).

Usage: ``python benchmarks/head.py [--seeds 0 1] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

from tracking.head import build_default_head  # noqa: E402
from tracking.head.cache import load_or_build_default_head  # noqa: E402


def _timed(function, *args, **kwargs):  # noqa: ANN001, ANN202
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cpus")
    for seed in args.seeds:
        walls, cpus = [], []
        for _ in range(args.repeat):
            model, wall, cpu = _timed(build_default_head, seed)
            walls.append(wall)
            cpus.append(cpu)
        print(
            f"seed {seed}: uncached build  wall best {min(walls):.2f} s"
            f" median {statistics.median(walls):.2f} s | cpu best {min(cpus):.2f} s"
            f" median {statistics.median(cpus):.2f} s"
        )
        with tempfile.TemporaryDirectory() as cache_dir:
            _, wall, cpu = _timed(load_or_build_default_head, seed, cache_dir)
            print(f"seed {seed}: first cached call (build + write)  wall {wall:.2f} s  cpu {cpu:.2f} s")
            cached, wall, cpu = _timed(load_or_build_default_head, seed, cache_dir)
            print(f"seed {seed}: cached load  wall {wall:.2f} s  cpu {cpu:.2f} s")
            same = all(
                np.array_equal(getattr(cached, key), getattr(model, key))
                for key in ("v_template", "faces", "shapedirs", "exprdirs", "lbs_weights", "texture")
            )
            print(f"seed {seed}: cached model equals the built one: {same}")
        print(
            f"seed {seed}: {model.num_vertices} vertices, {len(model.faces)} faces, "
            f"{model.num_shape} shape / {model.num_expr} expression components, "
            f"texture {model.texture.shape[1]}x{model.texture.shape[0]}"
        )
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
