"""Figures of the ``gaussian-avatars`` oracle on a tracked dataset (issue 9), multiview protocol.

    .venv/bin/python benchmarks/gaussian_avatars.py --data DATA            # full avatar + ablations, quick
    .venv/bin/python benchmarks/gaussian_avatars.py --data DATA --variants full --budget smoke

DATA is a dataset written by ``gsbench ingest`` (the default synthetic one: ``gsbench synth S --preset
default`` then ``gsbench ingest S -o DATA``). For each variant (``full``, ``no-color-mlp``,
``no-mouth-subdivision``: the rows of GaussianSpeech Table 2 that apply here) it trains on all cameras but
the frontal one (train sequences), renders the test sequences from the frontal camera driven by their
tracked FLAME expressions, composites as the harness does, and prints: train time, PSNR / SSIM / LPIPS (if
its weights are registered) / LMD (full frame and head mask), the number of Gaussians and the render speed
at the dataset's resolution on the CPU (FLAME forward + rasterization per frame, one camera). Timings are
wall clock on a shared machine: noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

VARIANTS = {
    "full": {},
    "no-color-mlp": {"use_color_mlp": False},
    "no-mouth-subdivision": {"mouth_subdivision": False},
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset folder (gsbench ingest output)")
    parser.add_argument("--budget", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    parser.add_argument("--subject", default=None, help="default: the dataset's first subject")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from avatars.methods.gaussian_avatars import GaussianAvatarsMethod
    from benchmark.dataset import load_dataset
    from benchmark.metrics.compute import compute_metrics
    from benchmark.protocols import TrainView, composite, eval_items
    from benchmark.weights import WeightRegistry

    dataset = load_dataset(args.data)
    subject = args.subject or dataset.subjects[0]
    weights = WeightRegistry()
    rows = []
    for variant in args.variants.split(","):
        method = GaussianAvatarsMethod(seed=args.seed, weights=weights, overrides=VARIANTS[variant])
        view = TrainView(dataset, "multiview", subject)
        start = time.perf_counter()
        stats = method.train(view, args.budget, None)
        train_s = time.perf_counter() - start
        scores: dict[str, list[tuple[float, int]]] = {}
        render_s, frames = 0.0, 0
        for item in eval_items(dataset, "multiview", subject, oracle=True):
            request = item.request
            start = time.perf_counter()
            output = method.render(request)
            render_s += time.perf_counter() - start
            frames += request.num_frames
            camera = request.camera.id
            gt = dataset.load_images(item.sequence, camera).astype(np.float32) / 255.0
            mask = dataset.load_masks(item.sequence, camera)
            pred = composite(output.rgb, output.alpha, gt, mask)
            result = compute_metrics(
                pred,
                gt,
                masks=mask,
                fps=dataset.fps,
                weights=weights,
                metrics=["psnr", "ssim", "lpips", "lmd"],
            )
            for name, metric in result.items():
                value = metric.value if metric.status == "ok" else None
                scores.setdefault(name, []).append((value, request.num_frames))
                if metric.status != "ok" and variant == args.variants.split(",")[0]:
                    print(
                        f"  {name}: {metric.status} ({(metric.reason or '').splitlines()[:1]})"
                    )
        means = {}
        for name, values in scores.items():
            ok = [(v, n) for v, n in values if v is not None]
            means[name] = sum(v * n for v, n in ok) / sum(n for _, n in ok) if ok else None
        rows.append(
            (
                variant,
                train_s,
                stats.num_gaussians,
                frames / render_s if render_s else None,
                means,
                stats.extra.get("rgb_loss_first"),
                stats.extra.get("rgb_loss_last"),
            )
        )
        print(
            f"{variant}: trained {train_s:.0f} s, {stats.num_gaussians} Gaussians, "
            f"rgb loss {stats.extra.get('rgb_loss_first'):.4f} -> {stats.extra.get('rgb_loss_last'):.4f}"
        )

    height, width = dataset.image_size
    print(
        f"\ngaussian-avatars (oracle), multiview, budget {args.budget}, dataset {dataset.name} "
        f"({width}x{height}), subject {subject}, {args.threads} threads"
    )
    header = [
        "variant",
        "train_s",
        "#gaussians",
        "render_fps",
        "psnr",
        "ssim",
        "lpips",
        "lmd",
        "psnr_masked",
        "ssim_masked",
    ]
    print(" | ".join(f"{h:>12}" for h in header))

    def fmt(value, digits=3):
        return "missing" if value is None else f"{value:.{digits}f}"

    for variant, train_s, n, fps, means, _, _ in rows:
        cells = [
            variant,
            f"{train_s:.0f}",
            str(n),
            fmt(fps, 2),
            fmt(means.get("psnr"), 2),
            fmt(means.get("ssim"), 4),
            fmt(means.get("lpips"), 4),
            fmt(means.get("lmd"), 3),
            fmt(means.get("psnr_masked"), 2),
            fmt(means.get("ssim_masked"), 4),
        ]
        print(" | ".join(f"{c:>12}" for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
