"""Figures of the ``gaussianspeech-avatar`` oracle (GaussianSpeech's avatar; called ``gaussian-avatars``
before issue 15) on a tracked dataset (issue 9), multiview protocol.

    .venv/bin/python benchmarks/gaussian_avatars.py --data DATA            # full avatar + ablations, quick
    .venv/bin/python benchmarks/gaussian_avatars.py --data DATA --variants full --budget smoke
    .venv/bin/python benchmarks/gaussian_avatars.py --data DATA --variants full --iterations 250 \
        --threads 1 --set lambda_alpha=0.5 --set init_scale=0.5     # a short run with config overrides

DATA is a dataset written by ``gsbench ingest`` (the default synthetic one: ``gsbench synth S --preset
default`` then ``gsbench ingest S -o DATA``). For each variant (``full``, ``no-color-mlp``,
``no-mouth-subdivision``: the rows of GaussianSpeech Table 2 that apply here) it trains on all cameras but
the frontal one (train sequences), renders the test sequences from the frontal camera driven by their
tracked FLAME expressions, composites as the harness does, and prints: train time, PSNR / SSIM / LPIPS (if
its weights are registered) / LMD (full frame and head mask), the number of Gaussians and the render speed
at the dataset's resolution on the CPU (FLAME forward + rasterization per frame, one camera), and where the
error is (head, holes inside the mask, spill outside it). Timings are wall clock on a shared machine, noisy;
``train_cpu_s`` (process CPU time) is what training costs with ``--threads 1`` on an idle core. ``--out``
keeps each variant's checkpoint and a ground truth | composite | error | mask/alpha PNG per test sequence.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS = {
    "full": {},
    "no-color-mlp": {"use_color_mlp": False},
    "no-mouth-subdivision": {"mouth_subdivision": False},
}


REGIONS = {
    "head (mask, alpha > 0.5)": lambda mask, alpha: mask & (alpha > 0.5),
    "holes (mask, alpha <= 0.5)": lambda mask, alpha: mask & (alpha <= 0.5),
    "spill (outside mask, alpha > 0.02)": lambda mask, alpha: ~mask & (alpha > 0.02),
    "all": lambda mask, alpha: np.ones_like(mask),
}


def iterations_overrides(budget: str, iterations: int) -> dict:
    """The budget's schedule shrunk or stretched to ``iterations`` steps (densification at the same
    fractions of the run)."""
    from avatars.methods.gaussianspeech_avatar import BUDGET_CONFIGS

    avatar = BUDGET_CONFIGS[budget].avatar
    scale = iterations / avatar.iterations
    return {
        "iterations": iterations,
        "densify_from": max(1, round(avatar.densify_from * scale)),
        "densify_until": max(1, round(avatar.densify_until * scale)),
        "densify_interval": max(1, round(avatar.densify_interval * scale)),
    }


def parse_settings(items: list[str]) -> dict:
    """``["lambda_alpha=0.5", ...]`` -> AvatarConfig overrides, each value cast to the field's type."""
    import dataclasses

    from avatars.gaussian_speech_avatar import AvatarConfig

    fields = {f.name: type(getattr(AvatarConfig(), f.name)) for f in dataclasses.fields(AvatarConfig)}
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in fields or fields[name] not in (bool, int, float):
            raise SystemExit(f"--set {item!r}: expected NAME=VALUE, NAME a numeric/bool AvatarConfig field")
        cast = fields[name]
        out[name] = value.lower() in ("1", "true", "yes") if cast is bool else cast(value)
    return out


def psnr_of(squared_error: float, values: int) -> float:
    return float(-10 * np.log10(max(squared_error / max(values, 1), 1e-12)))


def add_region_errors(regions, pred, gt, mask, alpha) -> None:
    """Accumulate (sum of squared error over RGB values, number of RGB values) per REGIONS entry."""
    squared = ((pred - gt) ** 2).sum(-1)
    for name, select in REGIONS.items():
        where = select(mask, alpha)
        entry = regions.setdefault(name, [0.0, 0])
        entry[0] += float(squared[where].sum())
        entry[1] += int(where.sum()) * 3


def write_comparison(path, gt, pred, mask, alpha) -> None:
    """Middle frame: ground truth | composite | |error| x 4 | mask (red) and alpha (green)."""
    import imageio.v3 as iio

    from gsbench.io import atomic_path

    t = len(gt) // 2
    error = np.clip(4 * np.abs(pred[t] - gt[t]).mean(-1, keepdims=True), 0, 1).repeat(3, -1)
    overlay = np.stack([mask[t].astype(np.float32), alpha[t], np.zeros_like(alpha[t])], -1)
    row = np.concatenate([gt[t], pred[t], error, overlay], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, (row * 255).round().astype(np.uint8), extension=".png")


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
    parser.add_argument(
        "--out",
        default=None,
        help="folder for each variant's checkpoint and ground truth | composite | error | mask/alpha PNGs",
    )
    parser.add_argument("--iterations", type=int, default=None, help="override the budget's step count")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override an AvatarConfig field for every variant, e.g. --set lambda_alpha=0.5 (repeatable)",
    )
    args = parser.parse_args()
    settings = parse_settings(args.set)
    torch.set_num_threads(args.threads)

    from avatars.methods.gaussianspeech_avatar import GaussianSpeechAvatarMethod
    from benchmark.dataset import load_dataset
    from benchmark.metrics.compute import compute_metrics
    from benchmark.protocols import TrainView, composite, eval_items
    from benchmark.weights import WeightRegistry

    dataset = load_dataset(args.data)
    subject = args.subject or dataset.subjects[0]
    weights = WeightRegistry()
    rows = []
    for variant in args.variants.split(","):
        overrides = {**settings, **VARIANTS[variant]}
        if args.iterations is not None:
            overrides.update(iterations_overrides(args.budget, args.iterations))
        method = GaussianSpeechAvatarMethod(
            seed=args.seed, weights=weights, overrides={f"avatar.{k}": v for k, v in overrides.items()}
        )
        view = TrainView(dataset, "multiview", subject)
        start, start_cpu = time.perf_counter(), time.process_time()
        stats = method.train(view, args.budget, None)
        train_s = time.perf_counter() - start
        train_cpu_s = time.process_time() - start_cpu
        if args.out:
            method.save(Path(args.out) / variant / "checkpoint")
        scores: dict[str, list[tuple[float, int]]] = {}
        render_s, frames = 0.0, 0
        regions: dict[str, list[float]] = {}
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
            add_region_errors(regions, pred, gt, mask, output.alpha)
            if args.out:
                write_comparison(
                    Path(args.out) / variant / f"{item.sequence}.png", gt, pred, mask, output.alpha
                )
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
                    print(f"  {name}: {metric.status} ({(metric.reason or '').splitlines()[:1]})")
        means = {}
        for name, values in scores.items():
            ok = [(v, n) for v, n in values if v is not None]
            means[name] = sum(v * n for v, n in ok) / sum(n for _, n in ok) if ok else None
        rows.append(
            (
                variant,
                train_s,
                train_cpu_s,
                stats.num_gaussians,
                frames / render_s if render_s else None,
                means,
                stats.extra.get("rgb_loss_first"),
                stats.extra.get("rgb_loss_last"),
            )
        )
        print(
            f"{variant}: trained {train_s:.0f} s wall, {train_cpu_s:.0f} s CPU, "
            f"{stats.num_gaussians} Gaussians, rgb loss {stats.extra.get('rgb_loss_first'):.4f} -> "
            f"{stats.extra.get('rgb_loss_last'):.4f}"
        )
        total = regions.pop("all")
        for name, (squared, pixels) in regions.items():
            print(
                f"  {name}: {100 * pixels / total[1]:.1f}% of pixels, {100 * squared / total[0]:.1f}% of the "
                f"squared error; PSNR {psnr_of(total[0], total[1]):.2f} dB, "
                f"{psnr_of(total[0] - squared, total[1]):.2f} dB without this region's error"
            )

    height, width = dataset.image_size
    print(
        f"\ngaussianspeech-avatar (oracle), multiview, budget {args.budget}, dataset {dataset.name} "
        f"({width}x{height}), subject {subject}, {args.threads} threads"
        + (f", settings {settings}" if settings else "")
    )
    header = [
        "variant",
        "train_s",
        "train_cpu_s",
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

    for variant, train_s, train_cpu_s, n, fps, means, _, _ in rows:
        cells = [
            variant,
            f"{train_s:.0f}",
            f"{train_cpu_s:.0f}",
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
