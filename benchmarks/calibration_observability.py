"""How precisely a session's ChArUco take pins each camera's principal point, and so its rotation.

    .venv/bin/python benchmarks/calibration_observability.py --session S [--dataset D]

A narrow camera turned by a small angle moves its image like a principal-point shift of focal x angle;
the two differ only by the perspective (keystone) change across the image. So the calibration's rotation
error of a camera is its principal-point error over its focal length (``--dataset``: both are printed
per camera, measured against ground_truth/), and the take's information about the principal point
bounds how small that error can be.

For every camera, from its calibration video: ChArUco corners as ingest detects them
(:func:`capture_tools.calibrate.detect_board`) on every frame; the corner noise sigma measured against the
true corners (a robust sigma, 1.4826 x MAD, from ground_truth/ board poses through the true camera; a
still hold's frames share their error, so each distinct board pose counts once); then the Fisher
information of (f, cx, cy, k1, k2) with each view's board pose free (marginalised), as in Zhang's
single-camera calibration (the joint adjustment adds no principal-point information: turning a camera
moves all its board views alike). Prints per
camera the predicted standard deviation of the principal point (px) and of the rotation (deg), and a
Monte Carlo of the worst camera's rotation error over 16 cameras drawn from those covariances: the
spread of issue 4's "max rotation error" figure among sessions like this one.
Reads ground_truth/ (a benchmark); ingest never does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture_tools import calibrate, media  # noqa: E402
from capture_tools.rig import BoardSpec  # noqa: E402

INTRINSICS = ("f", "cx", "cy", "k1", "k2")


def camera_information(
    views: list[tuple[np.ndarray, np.ndarray]], K: np.ndarray, dist: np.ndarray, sigma_px: float
) -> np.ndarray:
    """Fisher information [5,5] of (f, cx, cy, k1, k2) from ``views`` ``(object_points_in_camera [N,3],
    ...)``: per view, the board pose (6) is marginalised by the Schur complement."""
    info = np.zeros((5, 5))
    aspect = K[1, 1] / K[0, 0]
    for points, _ in views:
        # parametrise each view by a pose relative to the camera: rvec = 0, tvec = 0 around these points
        _, jacobian = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, dist)
        pose = jacobian[:, 0:6] / sigma_px
        # f moves fx and fy together (fixed aspect ratio), then cx, cy, k1, k2
        intrinsic = (
            np.stack(
                [
                    jacobian[:, 6] + aspect * jacobian[:, 7],
                    jacobian[:, 8],
                    jacobian[:, 9],
                    jacobian[:, 10],
                    jacobian[:, 11],
                ],
                axis=1,
            )
            / sigma_px
        )
        a, b = pose.T @ pose, pose.T @ intrinsic
        info += intrinsic.T @ intrinsic - b.T @ np.linalg.solve(a, b)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--session", type=Path, required=True, help="a gsbench synth session (with ground_truth/)"
    )
    parser.add_argument(
        "--dataset", type=Path, help="its ingest: prints measured principal-point and rotation errors"
    )
    parser.add_argument("--draws", type=int, default=20000, help="Monte Carlo draws of the worst camera")
    args = parser.parse_args()
    session = args.session
    rig = yaml.safe_load((session / "rig.yaml").read_text())
    board_spec = BoardSpec(**rig["calibration"]["board"])
    board = calibrate.make_board(board_spec)
    truth = json.loads((session / "ground_truth" / "cameras.json").read_text())
    poses = np.load(session / "ground_truth" / "calibration" / "board_poses.npz")
    fps = float(rig["fps"])
    measured = None
    if args.dataset is not None:
        from ingest import camera_errors  # benchmarks/ingest.py (this folder): the issue-4 rotation error

        result = json.loads((args.dataset / "reports" / "calibration.json").read_text())["result"]["cameras"]
        ids = sorted(truth)
        angles = camera_errors(result, truth)["rotation_deg"]  # in sorted camera order
        measured = {
            c: (angle, np.asarray(result[c]["K"])[:2, 2] - np.asarray(truth[c]["K"])[:2, 2])
            for c, angle in zip(ids, angles, strict=True)
        }

    print(
        f"{'camera':7s} {'views':>5s} {'sigma px':>8s} {'sd cx':>6s} {'sd cy':>6s} {'rot sd deg':>10s}",
        end="",
    )
    print(f" {'pp err px':>13s} {'pp/f deg':>8s} {'rot err deg':>11s}" if measured else "")
    covariances, focals, rows = [], [], []
    for camera in sorted(truth):
        K, dist = np.asarray(truth[camera]["K"]), np.asarray(truth[camera]["dist"], np.float64)
        world_to_cam = np.asarray(truth[camera]["world_to_cam"])
        video = session / rig["calibration"].get("folder", "calibration") / f"{camera}.mp4"
        frames = media.read_frames(video, int(truth[camera]["width"]), int(truth[camera]["height"]))
        detected = calibrate.detect_board(frames, board, np.arange(len(frames)) / fps, 6)
        board_to_world = poses[f"{camera}_board_to_world"]
        errors, views, seen = [], [], set()
        for view in detected:
            frame = int(round(view.time_s * fps))
            pose = world_to_cam @ board_to_world[frame]
            points = view.object_points @ pose[:3, :3].T + pose[:3, 3]
            projected = cv2.projectPoints(points, np.zeros(3), np.zeros(3), K, dist)[0].reshape(-1, 2)
            key = board_to_world[frame].tobytes()
            if key in seen:  # a still hold: the same pose and (nearly) the same corner error
                continue
            seen.add(key)
            errors.append(view.image_points - projected)
            views.append((points, view.corner_ids))
        # robust (MAD) sigma: the few corners far off (steep views) are down-weighted by the adjustment
        coordinates = np.concatenate(errors).ravel()
        sigma = float(1.4826 * np.median(np.abs(coordinates - np.median(coordinates))))
        covariance = np.linalg.inv(camera_information(views, K, dist, sigma))[1:3, 1:3]
        sd = np.sqrt(np.diag(covariance))
        rotation_sd = np.degrees(np.hypot(*sd) / K[0, 0])
        covariances.append(covariance)
        focals.append(K[0, 0])
        rows.append(rotation_sd)
        line = f"{camera:7s} {len(views):5d} {sigma:8.4f} {sd[0]:6.2f} {sd[1]:6.2f} {rotation_sd:10.4f}"
        if measured:
            angle, pp = measured[camera]
            line += f" {pp[0]:+6.2f} {pp[1]:+6.2f} {np.degrees(np.hypot(*pp) / K[0, 0]):8.4f} {angle:11.4f}"
        print(line, flush=True)
    rows = np.array(rows)
    print(f"predicted rotation sd: max {rows.max():.4f} deg, median {np.median(rows):.4f} deg")
    rng = np.random.default_rng(0)
    worst = np.zeros(args.draws)
    for covariance, focal in zip(covariances, focals, strict=True):
        draws = rng.multivariate_normal(np.zeros(2), covariance, size=args.draws)
        worst = np.maximum(worst, np.degrees(np.linalg.norm(draws, axis=1) / focal))
    low, high = np.percentile(worst, [5, 95])
    print(
        f"worst camera's rotation error over {len(rows)} cameras ({args.draws} draws): "
        f"median {np.median(worst):.4f} deg, 5-95 % {low:.4f}-{high:.4f} deg, "
        f"P(< 0.1 deg) {np.mean(worst < 0.1):.2f}"
    )
    if measured:
        angles = np.array([m[0] for m in measured.values()])
        print(f"measured rotation error: max {angles.max():.4f} deg, median {np.median(angles):.4f} deg")


if __name__ == "__main__":
    main()
