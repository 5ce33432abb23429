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

Side by side with an earlier kernel (issue 22), in one process, interleaved:

    .venv/bin/python benchmarks/rasterizer.py --compare 03d5dfd --cases 1,2 --repeats 9

builds ``avatars/render/csrc/rasterize_cpu.cpp`` as it was at that git ref under another op namespace
(``gsbench_rasterize_ref``, cached like the current one), drives it with that ref's Python glue (same
projection ops, its own compositing signature: ``LegacyComposite`` below) and alternates the two kernels
repeat by repeat (the order flips every round), so both see the same load. Prints medians of wall and CPU
time (this process, all threads), their ratios (old / new), the largest image difference between the
two and the load average before and after. Needs the git history (a clone, not an sdist).
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


def build_reference(git_ref: str):
    """The compositing kernel as it was at ``git_ref``, built under the op namespace
    ``gsbench_rasterize_ref`` (returns ``torch.ops.gsbench_rasterize_ref``)."""
    import hashlib
    from pathlib import Path

    import torch
    from torch.utils.cpp_extension import load

    from avatars.render._extension import cache_dir

    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{git_ref}:avatars/render/csrc/rasterize_cpu.cpp"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Own op namespace; the four exported C++ functions renamed by macro so that both libraries can be
    # loaded in one process (macros do not touch the op names, which are string literals).
    exported = ("rasterize_forward", "rasterize_backward", "project_forward", "project_backward")
    prefix = "".join(f"#define {name} gsbench_ref_{name}\n" for name in exported)
    source = source.replace("TORCH_LIBRARY(gsbench_rasterize,", "TORCH_LIBRARY(gsbench_rasterize_ref,")
    source = prefix + source
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    build_dir = cache_dir().parent / f"rasterize_ref_{digest}"
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / "rasterize_cpu_ref.cpp"
    if not path.exists() or path.read_text() != source:
        path.write_text(source)
    load(
        name="gsbench_rasterize_cpu_ref",
        sources=[str(path)],
        extra_cflags=["-O3", "-fopenmp", "-fno-math-errno"],  # the flags of 03d5dfd's _extension.py
        extra_ldflags=["-fopenmp"],
        build_directory=str(build_dir),
        is_python_module=False,
        verbose=False,
    )
    return torch.ops.gsbench_rasterize_ref


def _legacy_composite_class():
    import torch

    class LegacyComposite(torch.autograd.Function):
        """03d5dfd's ``_CompositeCpp`` (its op signatures: no hit boxes, no forward-only flag)."""

        @staticmethod
        def forward(ctx, means2d, conics, opacities, features, extents, depths, width, height, tile, ext):
            out, final_T, n_iter, offsets, ids = ext.rasterize_forward(
                means2d.contiguous(), conics.contiguous(), opacities.contiguous(), features.contiguous(),
                extents.contiguous(), depths.detach().contiguous(), width, height, tile,
            )  # fmt: skip
            saved = (means2d, conics, opacities, features, extents, offsets, ids, final_T, n_iter)
            ctx.save_for_backward(*saved)
            ctx.config = (width, height, tile, ext)
            return out, 1.0 - final_T

        @staticmethod
        def backward(ctx, grad_features, grad_alpha):
            means2d, conics, opacities, features, extents, offsets, ids, final_T, n_iter = ctx.saved_tensors
            width, height, tile, ext = ctx.config
            if grad_alpha is None:
                grad_alpha = torch.zeros_like(final_T)
            grads = ext.rasterize_backward(
                means2d.contiguous(), conics.contiguous(), opacities.contiguous(), features.contiguous(),
                extents.contiguous(), offsets, ids, final_T, n_iter, grad_features.contiguous(),
                grad_alpha.contiguous(), width, height, tile,
            )  # fmt: skip
            return grads[..., 0:2], grads[..., 2:5], grads[..., 5], grads[..., 8:], *([None] * 6)

    return LegacyComposite


def _step(render, scene, weights, grad: bool):
    """One rendering (no_grad) or one forward + backward of a weighted sum of the image."""
    import torch

    if not grad:
        with torch.no_grad():
            return render(*scene)
    leaves = [t.clone().requires_grad_(i < 5) for i, t in enumerate(scene)]
    image = render(*leaves)
    (image * weights).sum().backward()
    return image.detach()


def rasterize_legacy(ext, legacy, means, quats, scales, opacities, colors, viewmats, Ks, size):
    """03d5dfd's ``rasterize`` (backend "cpu", no background) on the reference kernel ``ext``."""
    import torch

    from avatars.render.composite import project_cpp

    p = project_cpp(
        ext, means, quats, scales, opacities, viewmats, Ks, size, size, 0.01, 1e10, 0.3, "classic"
    )  # fmt: skip
    if p.means2d.requires_grad:
        p.means2d.retain_grad()
    features = colors.expand(viewmats.shape[0], *colors.shape)
    features_ext = torch.cat([features, p.depths[..., None].to(features.dtype)], dim=-1)
    extents, depths = p.extents.detach(), p.depths.detach()
    out, alpha = legacy.apply(
        p.means2d, p.conics, p.opacities, features_ext, extents, depths, size, size, 16, ext
    )  # fmt: skip
    alpha = alpha[..., None]
    return out[..., :-1], alpha, out[..., -1:] / alpha.clamp(min=1e-10)


def compare(git_ref: str, cases: list[int], repeats: int, threads: int) -> None:
    """Today's kernel against ``git_ref``'s, interleaved in this process (see the module docstring)."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from avatars.render import rasterize
    from avatars.render._extension import load_extension

    new_ext = load_extension()
    if new_ext is None:
        raise SystemExit("the current C++ rasterizer does not build; nothing to compare")
    ref_ext = build_reference(git_ref)
    legacy = _legacy_composite_class()
    load0 = os.getloadavg()
    print(
        f"# {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average before "
        f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
        f"SIMD path {'on' if new_ext.simd_active() else 'off'}; "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )
    print(f"# old = kernel at {git_ref}, new = working tree; medians over {repeats} interleaved repeats")
    print("# wall ms (CPU ms of this process, all threads); ratio = old / new")
    header = f"{'image':>9} {'N':>7} {'pass':>8} {'old wall':>9} {'new wall':>9} {'ratio':>6}"
    print(header + f" {'old CPU':>8} {'new CPU':>8} {'ratio':>6} {'max|dimg|':>10}")
    for case in cases:
        size, n = CASES[case]
        scene = make_scene(size, n)
        weights = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(1))

        renders = {
            "old": lambda *p, size=size: rasterize_legacy(ref_ext, legacy, *p, size)[0],
            "new": lambda *p, size=size: rasterize(*p, size, size, backend="cpu").features,
        }
        for name, grad in (("forward", False), ("fwd+bwd", True)):
            images = [_step(renders[k], scene, weights, grad) for k in ("old", "new")]  # also warm-ups
            diff = float((images[0] - images[1]).abs().max())
            times = {"old": ([], []), "new": ([], [])}
            for r in range(repeats):
                for label in ("old", "new") if r % 2 == 0 else ("new", "old"):
                    wall, cpu = time.perf_counter(), time.process_time()
                    _step(renders[label], scene, weights, grad)
                    times[label][0].append(1e3 * (time.perf_counter() - wall))
                    times[label][1].append(1e3 * (time.process_time() - cpu))
            med = {k: (statistics.median(v[0]), statistics.median(v[1])) for k, v in times.items()}
            print(
                f"{size:>4}x{size:<4} {n:>7} {name:>8} {med['old'][0]:>9.1f} {med['new'][0]:>9.1f} "
                f"{med['old'][0] / med['new'][0]:>6.2f} {med['old'][1]:>8.1f} {med['new'][1]:>8.1f} "
                f"{med['old'][1] / med['new'][1]:>6.2f} {diff:>10.2e}"
            )
    load1 = os.getloadavg()
    print(f"# load average after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", action="append", help="cpu (default), cpu-torch, gsplat; repeatable")
    parser.add_argument("--cases", default="0,1,2", help="comma-separated indices into " + str(CASES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads (0: torch's default)")
    parser.add_argument("--compare", metavar="GIT_REF", help="time the kernel of GIT_REF side by side")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, [int(c) for c in args.cases.split(",")], args.repeats, args.threads)
        return
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
