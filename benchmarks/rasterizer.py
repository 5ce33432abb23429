"""Rasterizer speed and memory: forward and forward+backward for (128², 5k), (256², 20k), (512², 50k).

    .venv/bin/python benchmarks/rasterizer.py                 # C++ CPU backend (the default "cpu")
    .venv/bin/python benchmarks/rasterizer.py --backend cpu-torch --backend cpu
    .venv/bin/python benchmarks/rasterizer.py --cases 1       # only 256², 20k

Each (case, backend) runs in its own subprocess so the peak resident memory it reports (``ru_maxrss``
minus the RSS after building the scene) belongs to that case alone. Times are medians over
``--repeats`` runs after one warm-up. The scene is a slab of random Gaussians filling the view with
~20 splat-pixel overlaps per pixel (the density of the prototype measurements in
shared/notes/environment.md). On a CUDA machine, gsplat's figures are printed beside ours.

On a machine shared with other work, OpenMP threads spin while waiting for a descheduled peer: compare
``--threads 1`` and ``OMP_WAIT_POLICY=PASSIVE`` runs, and read the load average printed on top.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

CASES = [(128, 5_000), (256, 20_000), (512, 50_000)]


def make_scene(size: int, n: int, seed: int = 0, device: str = "cpu"):
    import torch

    gen = torch.Generator().manual_seed(seed)
    focal = 1.2 * size
    depth = 4.0
    half = 0.5 * size / focal * depth  # half extent of the view at the slab's depth
    means = torch.stack(
        [
            (torch.rand(n, generator=gen) * 2 - 1) * half,
            (torch.rand(n, generator=gen) * 2 - 1) * half,
            depth + (torch.rand(n, generator=gen) - 0.5),
        ],
        -1,
    )
    sigma_px = 0.85 * math.sqrt(size * size / n)
    scales = sigma_px * depth / focal * torch.exp(0.3 * torch.randn(n, 3, generator=gen))
    quats = torch.randn(n, 4, generator=gen)
    opacities = torch.sigmoid(torch.randn(n, generator=gen))
    colors = torch.rand(n, 3, generator=gen)
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])[None]
    return [t.to(device) for t in (means, quats, scales, opacities, colors, viewmats, Ks)]


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_case(case: int, backend: str, repeats: int, threads: int) -> dict:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)

    from avatars.render import rasterize

    size, n = CASES[case]
    device = "cuda" if backend == "gsplat" else "cpu"
    scene = make_scene(size, n, device=device)
    params = [t.clone().requires_grad_(i < 5) for i, t in enumerate(scene)]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    grad_weights = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(1)).to(device)
    rss0 = rss_bytes()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def forward():
        with torch.no_grad():
            return rasterize(*scene, size, size, backend=backend)

    def forward_backward():
        out = rasterize(*params, size, size, backend=backend)
        (out.features * grad_weights).sum().backward()
        return out

    timings = {}
    for name, fn in (("forward", forward), ("fwd+bwd", forward_backward)):
        out = fn()  # warm-up (and, for "cpu", the one-time JIT build / load)
        sync()
        times, cpu_times = [], []
        for _ in range(repeats):
            start, cpu_start = time.perf_counter(), time.process_time()
            fn()
            sync()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        timings[name] = (statistics.median(times), min(times), statistics.median(cpu_times))
    peak = (
        torch.cuda.max_memory_allocated()
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
    )
    visible = int((out.radii > 0).sum())
    return {
        "size": size,
        "n": n,
        "backend": out.backend,
        "forward_ms": [1e3 * t for t in timings["forward"]],
        "fwd_bwd_ms": [1e3 * t for t in timings["fwd+bwd"]],
        "peak_mb": peak / 2**20,
        "visible": visible,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", action="append", help="cpu (default), cpu-torch, gsplat; repeatable")
    parser.add_argument("--cases", default="0,1,2", help="comma-separated indices into " + str(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads (0: torch's default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        case, backend = args.child.split(":")
        print(json.dumps(run_case(int(case), backend, args.repeats, args.threads)))
        return
    backends = args.backend or ["cpu"]
    try:
        import torch

        if torch.cuda.is_available() and "gsplat" not in backends:
            import gsplat  # noqa: F401

            backends.append("gsplat")
    except ImportError:
        pass
    load = os.getloadavg()
    threads = args.threads or "default"
    print(
        f"# {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, threads {threads}"
    )
    print("# times: median / min wall over the repeats, and [median CPU time of this process]; on a shared")
    print("# machine the wall time includes waiting for the cores, the CPU time does not")
    header = f"{'image':>8} {'N':>7} {'backend':>10} {'forward':>28} {'fwd+bwd':>28} {'peak mem':>9}"
    header += f" {'visible':>8}"
    print(header)
    for case in (int(c) for c in args.cases.split(",")):
        for backend in backends:
            result = subprocess.run(
                [sys.executable, __file__, "--child", f"{case}:{backend}", "--repeats", str(args.repeats)]
                + ["--threads", str(args.threads)],
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                print(f"{CASES[case]} {backend}: failed\n{result.stderr[-2000:]}")
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            fwd, both = r["forward_ms"], r["fwd_bwd_ms"]
            print(
                f"{r['size']:>4}x{r['size']:<4} {r['n']:>7} {r['backend']:>10} "
                f"{fwd[0]:>7.1f} /{fwd[1]:>7.1f} [{fwd[2]:>7.1f}] ms "
                f"{both[0]:>7.1f} /{both[1]:>7.1f} [{both[2]:>7.1f}] ms "
                f"{r['peak_mb']:>7.0f}MB {r['visible']:>8}"
            )


if __name__ == "__main__":
    main()
