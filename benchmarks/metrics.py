"""Frames per second of each metric on 256x256 frames (CPU unless CUDA is present for torch parts).

    .venv/bin/python benchmarks/metrics.py               # 50 frames, every metric
    .venv/bin/python benchmarks/metrics.py --frames 100 --metric ssim --metric lpips

Speed does not depend on weight values, so LPIPS uses a seeded random AlexNet backbone and LSE a seeded
random full-width SyncNet (the official architecture) when the real files are not in the registry; the
printout says which. LMD is timed on a drawn face that MediaPipe detects (two detections per frame: pred and
gt); LSE includes its own landmark detection, cropping, MFCC and both SyncNet towers.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import cv2  # noqa: E402
import numpy as np
import torch  # noqa: E402

ALL = ("psnr", "ssim", "lpips", "lmd", "lse")


def drawn_face_clip(num: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred, gt) float32 [T,size,size,3] of a cartoon face with a moving mouth, and 16 kHz audio."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(num):
        img = np.full((size, size, 3), 200, np.uint8)
        s, c = size / 256, size // 2
        cv2.ellipse(img, (c, c), (int(70 * s), int(95 * s)), 0, 0, 360, (180, 140, 120), -1)
        for dx in (-28, 28):
            cv2.ellipse(
                img,
                (c + int(dx * s), c - int(20 * s)),
                (int(14 * s), int(7 * s)),
                0,
                0,
                360,
                (255, 255, 255),
                -1,
            )
            cv2.circle(img, (c + int(dx * s), c - int(20 * s)), int(5 * s), (40, 30, 20), -1)
        opening = 0.5 + 0.5 * np.sin(t / 3)
        cv2.ellipse(
            img,
            (c, c + int(45 * s)),
            (int(24 * s), int(4 * s + opening * 14 * s)),
            0,
            0,
            360,
            (120, 40, 50),
            -1,
        )
        frames.append(img)
    gt = np.stack(frames).astype(np.float32) / 255
    pred = np.clip(gt + rng.normal(0, 0.02, gt.shape), 0, 1).astype(np.float32)
    audio = (rng.standard_normal(num * 640) * 0.1).astype(np.float32)
    return pred, gt, audio


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--metric", action="append", choices=ALL)
    args = parser.parse_args()
    wanted = args.metric or list(ALL)

    from benchmark.metrics import image, lmd, lpips_metric, syncnet
    from benchmark.weights import WeightRegistry
    from gsbench.errors import WeightsError
    from tracking.landmarks import detect_landmarks

    pred, gt, audio = drawn_face_clip(args.frames)
    registry = WeightRegistry()
    num = len(pred)
    print(f"{num} frames of 256x256, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if "psnr" in wanted:
            rows.append(("psnr", _timed(lambda: image.psnr_per_frame(pred, gt)), ""))
        if "ssim" in wanted:
            rows.append(("ssim", _timed(lambda: image.ssim_per_frame(pred, gt)), "float64"))
        if "lpips" in wanted:
            try:
                path, note = registry.find("lpips-alexnet").path, "registry AlexNet"
            except WeightsError:
                import torchvision

                torch.manual_seed(0)
                path, note = Path(tmp) / "alexnet.pth", "random AlexNet (speed only)"
                torch.save(torchvision.models.alexnet().state_dict(), path)
            model = lpips_metric.build_lpips_alex(path)
            rows.append(("lpips", _timed(lambda: lpips_metric.lpips_per_frame(model, pred, gt)), note))
        u8 = lambda x: np.round(x * 255).astype(np.uint8)  # noqa: E731
        if "lmd" in wanted:

            def run_lmd():
                p = detect_landmarks(u8(pred))
                g = detect_landmarks(u8(gt))
                out = lmd.lmd_from_mediapipe(p[0], p[1], g[0], g[1])
                if out["failed_either"]:
                    print(f"  (lmd: {out['failed_either']} frames without a detection)")

            rows.append(("lmd", _timed(run_lmd), "2 MediaPipe detections per frame"))
        if "lse" in wanted:
            try:
                model_path, note = registry.find(registry.syncnet).path, "registry SyncNet"
                net = syncnet.load_syncnet(model_path)
            except WeightsError:
                torch.manual_seed(0)
                net, note = syncnet.SyncNet().eval(), "random full-width SyncNet (speed only)"

            def run_lse():
                points, detected = detect_landmarks(u8(pred))
                crops = syncnet.crop_faces(u8(pred), syncnet.face_boxes_from_landmarks(points, detected))
                with contextlib.redirect_stderr(sys.stderr):
                    syncnet.lse_from_crops(net, crops, audio)

            rows.append(("lse_d+lse_c", _timed(run_lse), note))
    print(f"{'metric':<12} {'frames/s':>10} {'ms/frame':>10}  notes")
    for name, seconds, note in rows:
        print(f"{name:<12} {num / seconds:>10.1f} {1000 * seconds / num:>10.2f}  {note}")


if __name__ == "__main__":
    main()
