"""Figures of ``gaussianspeech`` (issue 17) on a tracked dataset: audio-driven vs the oracle and retrieval,
and our Table 4 ablation beside the paper's.

    .venv/bin/python benchmarks/gaussianspeech.py --data /work/data/default/dataset   # quick, all rows
    .venv/bin/python benchmarks/gaussianspeech.py --data DATA --variants full --threads 1   # full only

For one subject (default: the dataset's first) under the paper's protocol (``multiview``: train on every
camera but the frontal one, test sequences rendered from the frontal camera):

1. Stage 1 (the avatar) is trained once and kept; the **oracle** row is that same avatar driven by the
   test sequences' tracked FLAME (it is exactly what ``gaussianspeech-avatar`` trains with the same seed and
   budget: same data assembly, same code), so the comparison isolates the audio-driven motion.
2. For each variant (``full`` and the Table 4 rows that apply) Stage 2 is trained on that avatar and the
   test sequences are rendered from their audio and rigid head pose only.
3. ``retrieval`` (mono-front: it needs frontal training frames) is the non-learned lower bound for LMD.

Printed per row: PSNR / SSIM / LPIPS / LMD (mouth, iBUG 48-67) / LSE-D of the composited frames (LPIPS and
LSE-D are "missing" when their weights are not registered), ``psnr_mouth`` (the harness's lip box,
:mod:`benchmark.metrics.mouth`) and ``psnr_lipbox`` (ours: per frame the box of the ground-truth iBUG 48-67
points grown by 25 %), the Pearson correlation of the predicted and tracked jaw
opening (``jaw_pose[:, 0]``) over the test frames, FaceFormer's lip vertex error (LVE: per frame the
largest lip-vertex distance between the predicted and the tracked canonical mesh, mean, mm), train time
(wall and process CPU) and render speed.
Timings are wall clock on a shared machine: the load average is printed with them. ``--out`` writes a
JSON of every figure (updated after each row) and one ground truth | render PNG per row.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

VARIANTS = {  # Table 4 rows that apply -> SequenceModelConfig overrides
    "full": {},
    "no-alignment": {"alignment": "none"},
    "no-audio-finetune": {"finetune_audio": False},
    "no-wrinkle-features": {"use_wrinkle_features": False},
    "no-color-latent-finetune": {"photo_finetune": False},
}
PAPER_TABLE4 = {  # LSE-D, PSNR, SSIM, LPIPS (GaussianSpeech Table 4, Subject 4)
    "no-alignment": (12.66, 21.02, 0.9104, 0.1855),
    "no-audio-finetune": (11.78, 22.73, 0.9355, 0.1198),
    "no-wrinkle-features": (11.28, 23.14, 0.9311, 0.1162),
    "no-color-latent-finetune": (11.32, 23.96, 0.9367, 0.1133),
    "full": (11.15, 24.97, 0.9470, 0.1101),
}
METRICS = ("psnr", "ssim", "lpips", "lmd", "lse_d")


def mouth_boxes(points: np.ndarray, detected: np.ndarray, width: int, height: int) -> list:
    """Per frame (x0, y0, x1, y1) of the iBUG mouth points 48-67 grown by 25 %, or None if undetected."""
    from tracking.landmarks import IBUG68_MOUTH, to_ibug68

    mouth = to_ibug68(points)[:, IBUG68_MOUTH]
    boxes = []
    for t in range(len(points)):
        if not detected[t] or not np.isfinite(mouth[t]).all():
            boxes.append(None)
            continue
        lo, hi = mouth[t].min(0), mouth[t].max(0)
        grow = 0.25 * (hi - lo)
        x0, y0 = np.maximum(np.floor(lo - grow).astype(int), 0)
        x1, y1 = np.ceil(hi + grow).astype(int)
        boxes.append((x0, y0, min(x1, width), min(y1, height)))
    return boxes


def jaw_correlation(pred: list[np.ndarray], tracked: list[np.ndarray]) -> float | None:
    p, g = np.concatenate(pred), np.concatenate(tracked)
    if p.std() < 1e-9 or g.std() < 1e-9:
        return None
    return float(np.corrcoef(p, g)[0, 1])


def evaluate(
    method, dataset, protocol: str, subject: str, weights, oracle: bool, out: Path | None, label: str
):
    """Render the test sequences and score them as the harness does (composited frames)."""
    from benchmark.metrics.compute import compute_metrics
    from benchmark.protocols import composite, eval_items

    sums: dict[str, list] = {}
    mouth_sq, mouth_n, render_s, render_cpu, frames = 0.0, 0, 0.0, 0.0, 0
    jaw_pred, jaw_gt, lve = [], [], []
    for k, item in enumerate(eval_items(dataset, protocol, subject, oracle=oracle)):
        request = item.request
        start, start_cpu = time.perf_counter(), time.process_time()
        output = method.render(request)
        render_s += time.perf_counter() - start
        render_cpu += time.process_time() - start_cpu
        frames += request.num_frames
        camera = request.camera.id
        gt = dataset.load_images(item.sequence, camera).astype(np.float32) / 255.0
        mask = dataset.load_masks(item.sequence, camera)
        pred = composite(output.rgb, output.alpha, gt, mask)
        points, detected = dataset.load_landmarks(item.sequence, camera)
        for t, box in enumerate(mouth_boxes(points, detected, gt.shape[2], gt.shape[1])):
            if box is not None:
                x0, y0, x1, y1 = box
                mouth_sq += float(((pred[t, y0:y1, x0:x1] - gt[t, y0:y1, x0:x1]) ** 2).sum())
                mouth_n += (y1 - y0) * (x1 - x0) * 3
        if hasattr(method, "predict"):
            vertices, expressions = method.predict(request.audio, request.fps, request.num_frames)
            num_expr = expressions.shape[1] - 3
            tracked = dataset.load_flame(item.sequence)
            jaw_pred.append(expressions[:, num_expr].numpy())
            jaw_gt.append(tracked["jaw_pose"][:, 0])
            # FaceFormer's lip vertex error: per frame the largest lip-vertex L2 error, averaged (mm)
            target = method.canonical_targets(tracked, request.num_frames).vertices
            lips = method.lip_index()
            lve.append(1000 * (vertices[:, lips] - target[:, lips]).norm(dim=-1).amax(dim=1).numpy())
        result = compute_metrics(
            pred,
            gt,
            masks=mask,
            audio=request.audio,
            fps=dataset.fps,
            weights=weights,
            metrics=METRICS,
            gt_landmarks=(points, detected),
        )
        for name, metric in result.items():
            value = metric.value if metric.status == "ok" else None
            sums.setdefault(name, []).append((value, request.num_frames, metric.reason))
        if out is not None and k == 0:
            import imageio.v3 as iio

            t = request.num_frames // 2
            row = np.concatenate([gt[t], pred[t]], axis=1)
            out.mkdir(parents=True, exist_ok=True)
            iio.imwrite(out / f"{label}_{item.sequence}.png", (row * 255).round().astype(np.uint8))
    means, reasons = {}, {}
    for name, values in sums.items():
        ok = [(v, n) for v, n, _ in values if v is not None]
        means[name] = sum(v * n for v, n in ok) / sum(n for _, n in ok) if ok else None
        if not ok:
            reasons[name] = (values[0][2] or "").splitlines()[0][:120]
    means["psnr_lipbox"] = float(-10 * np.log10(max(mouth_sq / max(mouth_n, 1), 1e-12))) if mouth_n else None
    means["jaw_corr"] = jaw_correlation(jaw_pred, jaw_gt) if jaw_pred else None
    means["lve_mm"] = float(np.concatenate(lve).mean()) if lve else None
    means["render_fps"] = frames / render_s if render_s else None
    means["render_fps_cpu"] = frames / render_cpu if render_cpu else None  # per CPU-second (1 thread)
    return means, reasons


def fmt(value, digits=3):
    return "missing" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset folder (gsbench ingest output)")
    parser.add_argument("--budget", default="quick", choices=["smoke", "quick", "paper"])
    parser.add_argument("--subject", default=None, help="default: the dataset's first subject")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {list(VARIANTS)}")
    parser.add_argument("--baselines", default="oracle,retrieval", help="comma list of oracle, retrieval")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for figures.json, the Stage-1 avatar and PNGs")
    parser.add_argument(
        "--avatar", default=None, help="reuse a Stage-1 avatar written by an earlier --out run"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from avatars.methods.gaussianspeech import GaussianSpeechMethod
    from avatars.methods.gaussianspeech_avatar import GaussianSpeechAvatarMethod
    from avatars.methods.retrieval import RetrievalMethod
    from benchmark.dataset import load_dataset
    from benchmark.protocols import TrainView
    from benchmark.weights import WeightRegistry

    dataset = load_dataset(args.data)
    subject = args.subject or dataset.subjects[0]
    weights = WeightRegistry()
    out = Path(args.out) if args.out else None
    figures: dict = {
        "dataset": str(args.data),
        "subject": subject,
        "budget": args.budget,
        "threads": args.threads,
        "rows": {},
    }

    def record(label: str, row: dict) -> None:
        row["loadavg_after"] = os.getloadavg()
        figures["rows"][label] = row
        cells = " ".join(f"{k}={fmt(v) if isinstance(v, float) or v is None else v}" for k, v in row.items())
        print(f"[{label}] {cells}", flush=True)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "figures.json").write_text(json.dumps(figures, indent=1, default=str))

    view = TrainView(dataset, "multiview", subject)
    stage1 = GaussianSpeechMethod(seed=args.seed, weights=weights)
    avatar_dir = Path(args.avatar) if args.avatar else (out or Path("/tmp")) / f"stage1_{subject}"
    if args.avatar:
        stage1_s = stage1_cpu = None
        print(f"Stage 1: reusing {avatar_dir}")
    else:
        load, start, start_cpu = os.getloadavg(), time.perf_counter(), time.process_time()
        stage1.train_avatar(view, args.budget)
        stage1_s, stage1_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        stage1.save_avatar_stage(avatar_dir)
        print(f"Stage 1: {stage1_s:.0f} s wall, {stage1_cpu:.0f} s CPU, load before {load}", flush=True)
    figures["stage1"] = {"wall_s": stage1_s, "cpu_s": stage1_cpu, "checkpoint": str(avatar_dir)}

    baselines = [b for b in args.baselines.split(",") if b]
    if "oracle" in baselines:
        oracle = GaussianSpeechAvatarMethod(seed=args.seed, weights=weights)
        oracle.load(avatar_dir)
        means, reasons = evaluate(oracle, dataset, "multiview", subject, weights, True, out, "oracle")
        record("oracle (gaussianspeech-avatar, tracked FLAME)", {**means, "train_s": stage1_s})
        figures["missing"] = reasons

    for variant in [v for v in args.variants.split(",") if v]:
        method = GaussianSpeechMethod(
            seed=args.seed,
            weights=weights,
            overrides={f"sequence.{k}": v for k, v in VARIANTS[variant].items()},
        )
        method.load_avatar_stage(avatar_dir, view, args.budget)
        load, start, start_cpu = os.getloadavg(), time.perf_counter(), time.process_time()
        stats = method.train_sequence(view, args.budget)
        stage2_s, stage2_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        means, reasons = evaluate(method, dataset, "multiview", subject, weights, False, out, variant)
        record(
            f"gaussianspeech {variant}",
            {
                **means,
                "stage2_s": stage2_s,
                "stage2_cpu_s": stage2_cpu,
                "train_s": None if stage1_s is None else stage1_s + stage2_s,
                "train_cpu_s": None if stage1_cpu is None else stage1_cpu + stage2_cpu,
                "loadavg_before": load,
                "losses": stats.extra["stage2_losses_first_last"],
            },
        )

    if "retrieval" in baselines:
        retrieval = RetrievalMethod(seed=args.seed, weights=weights)
        start = time.perf_counter()
        retrieval.train(TrainView(dataset, "mono-front", subject), args.budget, None)
        train_s = time.perf_counter() - start
        means, _ = evaluate(retrieval, dataset, "mono-front", subject, weights, False, out, "retrieval")
        record("retrieval (mono-front)", {**means, "train_s": train_s})

    rows = figures["rows"]
    height, width = dataset.image_size
    print(
        f"\ngaussianspeech vs oracle and retrieval, budget {args.budget}, {dataset.name} ({width}x{height}), "
        f"subject {subject}, {args.threads} threads, load average now {os.getloadavg()}"
    )
    header = [
        "row",
        "psnr",
        "ssim",
        "lpips",
        "lmd",
        "lse_d",
        "psnr_mouth",
        "psnr_lipbox",
        "jaw_corr",
        "lve_mm",
        "train_s",
        "train_cpu_s",
        "render_fps",
        "render_fps_cpu",
    ]
    print(" | ".join(f"{h:>12}" for h in header))
    for label, row in rows.items():
        cells = [label[:40]] + [fmt(row.get(h), 3) for h in header[1:]]
        print(" | ".join(f"{c:>12}" for c in cells))
    if figures.get("missing"):
        print("missing:", figures["missing"])
    print("\nTable 4 (paper: Subject 4 of its dataset; ours: the rows above) -- LSE-D / PSNR / SSIM / LPIPS")
    for variant, paper in PAPER_TABLE4.items():
        row = rows.get(f"gaussianspeech {variant}")
        ours = (
            "not run"
            if row is None
            else " / ".join(fmt(row.get(m), 3) for m in ("lse_d", "psnr", "ssim", "lpips"))
        )
        extra = "" if row is None else f"  (LMD {fmt(row.get('lmd'))}, jaw corr {fmt(row.get('jaw_corr'))})"
        print(f"{variant:>26}: paper {' / '.join(str(v) for v in paper)}  | ours {ours}{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
