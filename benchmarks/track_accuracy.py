"""Tracking accuracy and speed on a synthetic session, against its ground_truth/.

    .venv/bin/python benchmarks/track_accuracy.py SESSION DATASET [--no-track] [--stages] [--floor]
        [--set KEY=VALUE]

SESSION is the `gsbench synth` output (with ground_truth/), DATASET its `gsbench ingest` output.
Runs `track_dataset` (timed) unless --no-track, then prints per subject and overall:

- the fit residual: median reprojection error of the visible MediaPipe points against MediaPipe's
  own detections (camera pixels; tracking.json). It measures agreement with the detector, whose
  multi-view inconsistency bounds it from below (--floor), not accuracy;
- the ground-truth landmark error: the tracked mesh's 68 iBUG landmarks (the model's embedding)
  projected by the calibrated cameras vs. the true mesh's 68 landmarks projected by the true
  cameras, median and mean over every camera, frame and landmark facing the camera (pixels of the
  dataset's images; holds tracking and calibration error, none of MediaPipe's);
- mean face-region vertex error against the true FLAME parameters, in millimetres: the dataset's
  world frame is the calibration's, so the ground truth is first mapped into it by the similarity
  transform that best aligns the true camera centres to the calibrated ones (Umeyama), and also,
  as a second figure, by one similarity fitted to all tracked vs. true face vertices of the dataset
  (7 parameters; removes calibration error, as a Procrustes-aligned error does);
- mean absolute jaw-opening error (x component of jaw_pose), degrees;
- wall and CPU seconds of the whole `track` stage.

--stages also fits each subject with stage 1 only (68 landmarks) to show what stage 2 buys.
--floor prints what MediaPipe's own error allows, per subject: the median distance from the
detected points to (a) the true mesh's 68 iBUG landmarks (model embedding) projected by the true
cameras, (b) each point triangulated per frame from all cameras that detect it (true cameras): no
model with one 3D point per landmark and frame reprojects closer, in the median, than (b).
Targets (issue 5, default preset): < 1.5 px, < 2 mm, < 1.5 deg, <= 300 s on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from tracking.fit import TrackingConfig, fit_subject, track_dataset  # noqa: E402
from tracking.fit.dataset_io import read_dataset, read_landmarks  # noqa: E402
from tracking.fit.geometry import camera_centres, project_np, triangulate, umeyama  # noqa: E402
from tracking.fit.model import posed_vertices  # noqa: E402
from tracking.fit.solver import FRAME_KEYS, Observations  # noqa: E402
from tracking.head_model import REGIONS  # noqa: E402
from tracking.landmarks import MEDIAPIPE_TO_IBUG68  # noqa: E402

FACE_REGIONS = ("skin", "lips", "eyes", "eyebrows")


def face_vertices(model) -> np.ndarray:
    """Front-of-face vertices: face regions with the template's z > 2 cm and y above the chin."""
    keep = (model.v_template[:, 2] > 0.02) & (model.v_template[:, 1] > -0.11)
    if model.vertex_regions is not None:
        keep &= np.isin(model.vertex_regions, [REGIONS[name] for name in FACE_REGIONS])
    return keep


def ground_truth_at(gt: dict, times: np.ndarray) -> dict:
    """True parameters linearly interpolated at the dataset's frame times."""
    out = {"shape": gt["shape"]}
    for key in FRAME_KEYS:
        values = gt[key]
        out[key] = np.stack(
            [np.interp(times, gt["frame_times_s"], values[:, j]) for j in range(values.shape[1])], 1
        )
    return out


def evaluate(session: Path, dataset: Path, model, params_by_sequence: dict[str, dict]) -> dict:
    info = read_dataset(dataset)
    gt_cameras = json.loads((session / "ground_truth" / "cameras.json").read_text())
    gt_centres = camera_centres(np.array([gt_cameras[c]["world_to_cam"] for c in info.camera_ids]))
    scale, rotation, shift = umeyama(gt_centres, camera_centres(info.world_to_cam), with_scale=True)
    face = face_vertices(model)
    fps = float(info.meta["fps"])
    pairs = {}
    for sequence, fitted in params_by_sequence.items():
        with np.load(session / "ground_truth" / "takes" / sequence / "flame.npz") as data:
            gt = {key: data[key] for key in data.files}
        times = np.arange(fitted["rotation"].shape[0]) / fps
        truth = ground_truth_at(gt, times)
        pairs[sequence] = (
            posed_vertices(model, truth)[:, face],
            posed_vertices(model, fitted)[:, face],
            truth,
            fitted,
        )
    # second alignment: one similarity for the whole dataset from the meshes themselves (7 dof)
    all_gt = np.concatenate([p[0].reshape(-1, 3) for p in pairs.values()])
    all_fit = np.concatenate([p[1].reshape(-1, 3) for p in pairs.values()])
    mesh_scale, mesh_rotation, mesh_shift = umeyama(all_fit, all_gt, with_scale=True)
    rows = {}
    for sequence, (gt_vertices, fit_vertices, truth, fitted) in pairs.items():
        # dataset world -> ground-truth world (metric): x_gt = R^T (x - t) / s
        fit_in_gt = (fit_vertices - shift) @ rotation / scale
        fit_mesh_aligned = mesh_scale * fit_vertices @ mesh_rotation.T + mesh_shift
        rows[sequence] = {
            "vertex_mm": float(np.linalg.norm(fit_in_gt - gt_vertices, axis=-1).mean() * 1000),
            "vertex_mm_mesh_aligned": float(
                np.linalg.norm(fit_mesh_aligned - gt_vertices, axis=-1).mean() * 1000
            ),
            "jaw_deg": float(np.degrees(np.abs(fitted["jaw_pose"][:, 0] - truth["jaw_pose"][:, 0])).mean()),
        }
    return {"alignment_scale": scale, "sequences": rows}


def model_landmarks(model, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The model's 68 iBUG landmarks [T, 68, 3] (its own embedding) and their face normals [T, 68, 3]."""
    corners = posed_vertices(model, params)[:, model.faces[model.lmk_faces_idx]]  # [T, 68, 3, 3]
    landmarks = (corners * model.lmk_bary_coords[None, :, :, None]).sum(2)
    normal = np.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    return landmarks, normal


def facing(landmarks: np.ndarray, normal: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """[T, 68] landmarks whose face turns toward the camera at ``centre`` (cos >= 0.25, where the fit's
    visibility weight reaches 1; gsbench-head normals point outward)."""
    to_camera = centre - landmarks
    return (normal * to_camera).sum(-1) >= 0.25 * np.linalg.norm(normal, axis=-1) * np.linalg.norm(
        to_camera, axis=-1
    )


def true_cameras(session: Path, info) -> tuple[np.ndarray, np.ndarray]:
    """True K [C, 3, 3] and world_to_cam [C, 4, 4] in the dataset's camera order. The dataset's images
    are undistorted keeping K, so the true K projects into them (up to the calibration's error)."""
    gt_cameras = json.loads((session / "ground_truth" / "cameras.json").read_text())
    intrinsics = np.array([gt_cameras[c]["K"] for c in info.camera_ids], np.float64)
    world_to_cam = np.array([gt_cameras[c]["world_to_cam"] for c in info.camera_ids], np.float64)
    return intrinsics, world_to_cam


def true_params(session: Path, sequence: str, num_frames: int, fps: float) -> dict:
    with np.load(session / "ground_truth" / "takes" / sequence / "flame.npz") as data:
        return ground_truth_at({key: data[key] for key in data.files}, np.arange(num_frames) / fps)


def ground_truth_landmark_error(
    session: Path, info, model, params_by_sequence: dict[str, dict]
) -> dict[str, np.ndarray]:
    """Per subject, the pixel distances [N] between the tracked mesh's 68 iBUG landmarks (model
    embedding) projected by the CALIBRATED cameras and the true mesh's 68 landmarks projected by the
    TRUE cameras, over every (camera, frame, landmark) whose true landmark faces the camera.

    Both sides are in the dataset's image pixels, so the figure needs no world alignment: it holds
    the tracking error and the calibration error, and none of MediaPipe's.
    """
    gt_intrinsics, gt_world_to_cam = true_cameras(session, info)
    gt_centres = camera_centres(gt_world_to_cam)
    fps = float(info.meta["fps"])
    out: dict[str, list[np.ndarray]] = {}
    for sequence, fitted in params_by_sequence.items():
        subject = str(info.meta["sequences"][sequence]["subject"])
        num_frames = fitted["rotation"].shape[0]
        truth = true_params(session, sequence, num_frames, fps)
        truth_landmarks, truth_normal = model_landmarks(model, truth)
        fit_landmarks, _ = model_landmarks(model, fitted)
        for c in range(len(info.camera_ids)):
            error = np.linalg.norm(
                project_np(fit_landmarks, info.intrinsics[c], info.world_to_cam[c])
                - project_np(truth_landmarks, gt_intrinsics[c], gt_world_to_cam[c]),
                axis=-1,
            )
            out.setdefault(subject, []).append(error[facing(truth_landmarks, truth_normal, gt_centres[c])])
    return {subject: np.concatenate(parts) for subject, parts in out.items()}


def landmark_floor(session: Path, info, model, sequences: list[str]) -> dict:
    """Median reprojection floors from MediaPipe's own error (see --floor), in dataset pixels."""
    intrinsics, world_to_cam = true_cameras(session, info)
    centres = camera_centres(world_to_cam)
    fps = float(info.meta["fps"])
    ibug, free = [], []
    for sequence in sequences:
        points = read_landmarks(info, sequence).points  # [C, T, 478, 2]
        num_cams, num_frames = points.shape[:2]
        landmarks, normal = model_landmarks(model, true_params(session, sequence, num_frames, fps))
        for c in range(num_cams):
            error = np.linalg.norm(
                project_np(landmarks, intrinsics[c], world_to_cam[c]) - points[c][:, MEDIAPIPE_TO_IBUG68],
                axis=-1,
            )
            ibug.append(error[facing(landmarks, normal, centres[c]) & np.isfinite(error)])
        detected = np.isfinite(points).all(-1).reshape(num_cams, -1)
        triangulated, _, _ = triangulate(
            points.reshape(num_cams, -1, 2), detected.astype(np.float64), intrinsics, world_to_cam
        )
        for c in range(num_cams):
            error = np.linalg.norm(
                project_np(triangulated, intrinsics[c], world_to_cam[c]) - points[c].reshape(-1, 2), axis=-1
            )
            free.append(error[detected[c] & np.isfinite(error)])
    return {
        "ibug68_true_mesh_median_px": float(np.median(np.concatenate(ibug))),
        "free_triangulation_median_px": float(np.median(np.concatenate(free))),
    }


def load_fitted(dataset: Path, sequences) -> dict[str, dict]:
    out = {}
    for sequence in sequences:
        with np.load(dataset / "sequences" / sequence / "flame.npz") as data:
            out[sequence] = {key: data[key].astype(np.float64) for key in data.files}
    return out


def print_truth_error(label: str, errors: np.ndarray | None) -> None:
    if errors is None or errors.size == 0:
        print(f"{label}: ground-truth landmark error: no facing landmarks")
        return
    print(
        f"{label}: ground-truth landmark error (tracked 68 via calibrated cameras vs true 68 via true "
        f"cameras): median {np.median(errors):.3f} px, mean {errors.mean():.3f} px, "
        f"p90 {np.percentile(errors, 90):.3f} px over {errors.size} facing landmarks"
    )


def summarize(label: str, evaluation: dict, info=None) -> None:
    """Mean vertex and jaw errors over all sequences, and per subject when ``info`` is given."""
    groups = {"": list(evaluation["sequences"])}
    if info is not None:
        for sequence in evaluation["sequences"]:
            groups.setdefault(f" {info.meta['sequences'][sequence]['subject']}", []).append(sequence)
    for suffix, names in groups.items():
        rows = [evaluation["sequences"][name] for name in names]
        print(
            f"{label}{suffix}: mean face vertex error {np.mean([r['vertex_mm'] for r in rows]):.2f} mm "
            f"camera-aligned, {np.mean([r['vertex_mm_mesh_aligned'] for r in rows]):.2f} mm mesh-aligned "
            f"(one similarity), jaw opening error {np.mean([r['jaw_deg'] for r in rows]):.2f} deg"
            + ("" if suffix else f" (world alignment scale {evaluation['alignment_scale']:.4f})")
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("session", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--no-track", action="store_true", help="evaluate the existing flame.npz files")
    parser.add_argument("--stages", action="store_true", help="also evaluate stage 1 alone")
    parser.add_argument(
        "--floor", action="store_true", help="print MediaPipe's own error (reads ground truth)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TrackingConfig override (repeatable), e.g. --set dense_jaw=false",
    )
    args = parser.parse_args()
    from tracking.head import build_default_head

    model = build_default_head(
        seed=json.loads((args.session / "ground_truth" / "subjects.json").read_text())["head_model"]["seed"]
    )
    from gsbench.overrides import as_flat_dict, parse_overrides

    config = TrackingConfig.from_overrides(as_flat_dict(parse_overrides(args.overrides)))
    if not args.no_track:
        wall, cpu = time.perf_counter(), time.process_time()
        track_dataset(args.dataset, model, config, force=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(f"track stage: {wall:.1f} s wall, {cpu:.1f} s CPU (target <= 300 s wall on 2 cores)")
    report = json.loads((args.dataset / "reports" / "tracking.json").read_text())
    info = read_dataset(args.dataset)
    sequences = [s for s, e in report["sequences"].items() if e.get("status") == "ok"]
    fitted = load_fitted(args.dataset, sequences)
    truth_errors = ground_truth_landmark_error(args.session, info, model, fitted)
    size = f"{info.image_sizes[0][0]}x{info.image_sizes[0][1]}"
    for subject, entry in sorted(report["subjects"].items()):
        stats = entry["reprojection"]
        print(
            f"{subject}: fit residual vs MediaPipe's detections (reports/tracking.json): median "
            f"{stats['median_px']:.3f} px, mean {stats['mean_px']:.3f} px, p90 {stats['p90_px']:.3f} px over "
            f"{stats['num_observations']} visible observations ({size})"
        )
        print_truth_error(subject, truth_errors.get(subject))
    final = evaluate(args.session, args.dataset, model, fitted)
    summarize("stage 1+2", final, info)
    medians = [e["reprojection"]["median_px"] for e in report["subjects"].values()]
    print(
        f"OVERALL fit residual vs MediaPipe's detections, median (worst subject) {max(medians):.3f} px "
        "(target < 1.5 if read against the detections; see --floor)"
    )
    worst = max(float(np.median(v)) for v in truth_errors.values())
    print(
        f"OVERALL ground-truth landmark error, median (worst subject) {worst:.3f} px "
        "(target < 1.5 against ground truth)"
    )
    if args.floor:
        for subject, names in sorted(info.subject_sequences().items()):
            floor = landmark_floor(args.session, info, model, [s for s in names if s in sequences])
            print(
                f"{subject} floor: MediaPipe->iBUG68 vs the true mesh's 68 landmarks (facing views) "
                f"{floor['ibug68_true_mesh_median_px']:.3f} px; 478 points triangulated per frame "
                f"(true cameras) {floor['free_triangulation_median_px']:.3f} px median"
            )
    if args.stages:
        for subject, names in info.subject_sequences().items():
            names = [s for s in names if s in sequences]
            landmarks = {s: read_landmarks(info, s) for s in names}
            obs = Observations(
                info.camera_ids,
                info.intrinsics,
                info.world_to_cam,
                info.image_sizes,
                np.concatenate([landmarks[s].points for s in names], axis=1),
                np.concatenate([np.full(info.num_frames(s), i) for i, s in enumerate(names)]),
                names,
            )
            result = fit_subject(
                model, obs, dataclasses.replace(config, dense=False), label=f"{subject} stage 1 only"
            )
            params = {}
            for index, sequence in enumerate(names):
                frames = np.flatnonzero(obs.frame_sequence == index)
                params[sequence] = {k: result.params[k][frames] for k in FRAME_KEYS} | {
                    "shape": result.params["shape"]
                }
            summarize(
                f"{subject} stage 1 only (68 landmarks)", evaluate(args.session, args.dataset, model, params)
            )
            print_truth_error(
                f"{subject} stage 1 only",
                ground_truth_landmark_error(args.session, info, model, params).get(subject),
            )
            stats = result.stages["landmarks68"]["reprojection_68_visible"]
            print(f"{subject} stage 1 only: median 68-point reprojection {stats['median_px']:.3f} px")


if __name__ == "__main__":
    main()
