"""Accuracy of ingest's structure-from-motion calibration fallback on a synthetic session.

    .venv/bin/python benchmarks/sfm.py --session /tmp/s/session

Ingests a copy of the session without its calibration take (``sfm_rotation_error`` of
benchmarks/ingest.py: probe, sync, calibrate; baseline = true distance of the two cameras farthest
apart; written beside the session as ``session_sfm`` and ``dataset_sfm``) and prints, after the
similarity alignment to ground_truth/: the rotation error (max, median; issue 4's target: max < 0.5 deg),
the camera-centre error, the focal-length error, the scale of the alignment, the cameras registered, the
calibrate stage's seconds and the load average; and the rotation error that the fallback's fixed
principal points (image centres) alone cause on this rig. Only the first take is reconstructed, so a session
listing only that take in rig.yaml gives the same figures faster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ingest import TARGETS, camera_errors, sfm_rotation_error  # noqa: E402


def principal_point_floor(truth: dict) -> np.ndarray:
    """Per-camera rotation error (deg, after similarity alignment) of the true rig described with its
    principal points at the image centres, as the fallback does: each camera rotated so that its true
    optical axis lands on the image centre, everything else exact (the error that fixing the principal
    point alone causes)."""
    from scipy.spatial.transform import Rotation

    centred = {}
    for camera, values in truth.items():
        K, world_to_cam = np.asarray(values["K"]), np.asarray(values["world_to_cam"])
        axis = np.array(
            [(K[0, 2] - values["width"] / 2) / K[0, 0], (K[1, 2] - values["height"] / 2) / K[1, 1], 1.0]
        )
        turn = Rotation.align_vectors([axis / np.linalg.norm(axis)], [[0.0, 0.0, 1.0]])[0].as_matrix()
        pose = world_to_cam.copy()
        pose[:3, :] = turn @ world_to_cam[:3, :]
        centred[camera] = dict(values, world_to_cam=pose.tolist())
    return camera_errors(centred, truth, with_scale=True)["rotation_deg"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--session", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("GSBENCH_QUIET", "1")
    truth = json.loads((args.session / "ground_truth" / "cameras.json").read_text())
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    worst = sfm_rotation_error(args.session, truth)
    wall = time.perf_counter() - started
    if isinstance(worst, str):
        print(f"structure from motion failed: {worst}")
        return 1
    report = json.loads((args.session.parent / "dataset_sfm" / "reports" / "calibration.json").read_text())
    result = report["result"]
    errors = camera_errors(result["cameras"], truth, with_scale=True)
    target = TARGETS["sfm_rotation_error_deg"]
    print(f"structure-from-motion fallback on {args.session} ({len(truth)} cameras)")
    print(f"cameras registered: {len(result['cameras'])} / {len(truth)}; {result['diagnostics']}")
    print(
        f"rotation error (deg): max {errors['rotation_deg'].max():.3f} "
        f"({'meets' if errors['rotation_deg'].max() < target else 'misses'} the < {target} target), "
        f"median {np.median(errors['rotation_deg']):.3f}"
    )
    print(
        f"centre error (mm): max {errors['centre_mm'].max():.1f}, "
        f"median {np.median(errors['centre_mm']):.1f}; "
        f"focal error (%): max {errors['focal_percent'].max():.2f}, median "
        f"{np.median(errors['focal_percent']):.2f}; alignment scale {errors['scale']:.4f}"
    )
    floor = principal_point_floor(truth)
    print(
        f"principal points at the image centre alone (true rig otherwise): rotation error max "
        f"{floor.max():.3f}, median {np.median(floor):.3f} deg"
    )
    print(
        "per camera (deg): "
        + " ".join(f"{c} {e:.2f}" for c, e in zip(sorted(truth), errors["rotation_deg"], strict=True))
    )
    print(
        f"calibrate stage {report['seconds']:.1f} s (probe + sync + calibrate {wall:.1f} s); "
        f"load average before {load_before:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
