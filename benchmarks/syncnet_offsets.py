"""Offset-detection accuracy of a SyncNet on a dataset's held-out sequences (issue 20.9's measure).

    .venv/bin/python benchmarks/syncnet_offsets.py --data DATASET --weights FILE [--split val,test]

Each held-out sequence (frontal camera, the crops LSE uses) is shifted by -12..12 frames against its audio;
a trial is correct when SyncNet's AV offset is within 1 frame of the shift (target: >= 90 %). Prints the
accuracy, per shift, the in-sync / 8-frame-shifted LSE-C ratio, wall and CPU time and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from benchmark.metrics import syncnet, syncnet_eval
from benchmark.metrics.train_syncnet import load_clip, split_sequences


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument(
        "--weights", type=Path, required=True, help="syncnet_v2.model or a train-syncnet file"
    )
    parser.add_argument("--split", default="val,test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write every trial here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start, cpu_start, load_start = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    model = syncnet.load_syncnet(args.weights)
    names = [s for split in args.split.split(",") for s in split_sequences(args.data, split)]
    clips = []
    for name in names:
        clip = load_clip(args.data, name)
        clips.append((name, clip.crops, clip.audio))
    found = syncnet_eval.offset_detection(model, clips)
    print(f"{args.weights.name} on {args.data} ({len(clips)} sequences: {', '.join(names)})")
    print(f"offset detection within +-{found['tolerance_frames']} frame: {100 * found['accuracy']:.1f} %")
    print("per shift: " + ", ".join(f"{s:+d}: {100 * a:.0f} %" for s, a in found["per_shift"].items()))
    print(f"LSE-C in sync / shifted by 8 frames: {found['lse_c_sync_over_shifted']:.3f}")
    print(
        f"wall {time.perf_counter() - start:.1f} s, CPU {time.process_time() - cpu_start:.1f} s, "
        f"load average {load_start:.1f} -> {os.getloadavg()[0]:.1f} ({args.threads} thread(s))"
    )
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    main()
