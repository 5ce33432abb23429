"""Build the shipped MediaPipe embedding of gsbench-head: where FaceMesh's 478 points sit on its mesh.

Writes ``tracking/head/gsbench_head_mediapipe_embedding.json`` (``--out`` to write elsewhere).

    .venv/bin/python scripts/build_mediapipe_embedding.py [--subjects 8] [--takes 2] [--seed 7]
        [--observations FILE.npz] [--out FILE.json]

FLAME ships ``mediapipe_landmark_embedding.npz`` (a face index and barycentric coordinates per
MediaPipe point); this is the same thing for our procedural head, measured rather than drawn by hand:

1. render gsbench-head (seed 0) for ``--subjects`` random subjects (shape ~ N(0, 0.5²) on the first
   20 components, as ``gsbench synth`` draws them, but from this script's own seed) speaking random
   sentences, from a 16-camera rig of the default preset's geometry (pinhole, no lens distortion),
   through the synthetic camera response and a JPEG round trip at ingest's quality;
2. detect FaceMesh in every camera's frame sequence exactly as ingest does (video mode);
3. per point, start from the median (on the template) of its per-frame triangulations snapped to the
   true posed mesh, then pick the surface point whose projections best match the detections over
   all cameras and frames: the tracker's robust energy (Geman-McClure, 4 px at 256 px) weighted by its
   visibility ramp, over candidate (face, barycentric) samples within 6 mm, then 1.5 mm on a finer grid.

The true meshes and cameras used here are our own renders of our own head model, never a session's
ground_truth/. ``--observations`` caches the renders' detections (step 1-2, minutes) so that step 3
can be rerun alone. The file also records, per point, the median reprojection error of the chosen
embedding on the build renders, a measure of MediaPipe's own multi-view inconsistency.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import cKDTree

from tracking.fit.geometry import closest_point_on_mesh, triangulate
from tracking.fit.solver import embedding_allowed_faces
from tracking.landmarks import (
    NUM_MEDIAPIPE_LANDMARKS,
    detect_landmarks,
    mediapipe_embedding_path,
    save_mediapipe_embedding,
)

SIZE, FPS, NUM_CAMERAS = 256, 25.0, 16
ROBUST_SCALE_PX = 4.0  # the tracker's robust_scale_px at its 256 px reference size
VISIBILITY_COS = (0.0, 0.25)  # the tracker's visibility ramp


def render_observations(head, num_subjects: int, num_takes: int, seed: int, frame_step: int) -> dict:
    """Render, detect; returns arrays over the kept frames N (every ``frame_step``-th):
    vertices [N, V, 3], intrinsics [N, C, 3, 3], world_to_cam [N, C, 4, 4], points [N, C, 478, 2]."""
    from capture_tools.synth.motion import ExpressionMap, Performance, PerformanceStyle
    from capture_tools.synth.posing import SubjectPoser
    from capture_tools.synth.render import CameraView, HeadRenderer, SensorNoise, camera_response
    from capture_tools.synth.rig import build_rig
    from capture_tools.synth.scene import build_studio
    from capture_tools.synth.speech import Speaker, random_sentence

    zeros = np.zeros((1, 3))
    _, neutral = SubjectPoser(head, np.zeros(head.num_shape))(
        np.zeros((1, head.num_expr)), zeros, zeros, zeros, np.zeros((1, 6)), zeros
    )
    face_centre = neutral[0].astype(np.float64).mean(0)
    face_centre[2] *= 0.5  # as gsbench synth places the head
    expression_map = ExpressionMap.for_names(head.expr_names, head.num_expr)
    kept: dict[str, list[np.ndarray]] = {"vertices": [], "intrinsics": [], "world_to_cam": [], "points": []}
    for subject in range(num_subjects):
        rng = np.random.default_rng([seed, subject])
        shape = np.zeros(head.num_shape)
        shape[: min(head.num_shape, 20)] = rng.normal(0.0, 0.5, min(head.num_shape, 20))
        tint = np.array([1.0, rng.uniform(0.85, 1.05), rng.uniform(0.75, 1.0)]) * rng.uniform(0.75, 1.1)
        style = PerformanceStyle(
            articulation=float(rng.uniform(0.9, 1.15)),
            head_motion_deg=float(rng.uniform(2.0, 6.0)),
            head_motion_m=float(rng.uniform(0.004, 0.008)),
            blink_interval_s=float(rng.uniform(1.5, 3.0)),
            gaze_deg=float(rng.uniform(2.5, 5.0)),
        )
        speaker = Speaker(rate=float(rng.uniform(0.9, 1.1)))
        cameras, _ = build_rig(rng, NUM_CAMERAS, SIZE, SIZE, FPS)
        cameras = [dataclasses.replace(camera, dist=np.zeros(5)) for camera in cameras]
        studio = build_studio(rng)
        views = []
        for camera in cameras:
            origin, directions = camera.pixel_rays()
            plate = studio.shade(origin, directions).astype(np.float32)
            views.append(CameraView(camera, origin.astype(np.float32), directions.astype(np.float32), plate))
        renderer = HeadRenderer(head, views, tint=tint)
        poser = SubjectPoser(head, shape)
        base = -face_centre + np.array([0.0, float(rng.normal(0, 0.01)), 0.0])
        for _ in range(num_takes):
            duration = float(rng.uniform(2.0, 2.4))
            performance = Performance(
                random_sentence(rng, speaker, duration), rng, style, expression_map, base
            )
            params = performance.flame_params(np.arange(int(duration * FPS)) / FPS)
            num_frames = len(params["rotation"])
            points_t, _ = poser.pose_points(**params)  # [T, 3, V]
            vertices = points_t.transpose(0, 2, 1)  # [T, V, 3]
            noise = [SensorNoise(rng, view.plate.shape) for view in views]
            frames = np.zeros((NUM_CAMERAS, num_frames, SIZE, SIZE, 3), np.uint8)
            linear = np.empty((NUM_CAMERAS, SIZE, SIZE, 3), np.float32)
            for k in range(num_frames):
                tiled = np.broadcast_to(vertices[k], (NUM_CAMERAS, *vertices[k].shape))
                expr = np.broadcast_to(params["expr"][k], (NUM_CAMERAS, params["expr"].shape[1]))
                renderer.render(tiled, expr, out=linear)
                for c, camera in enumerate(cameras):
                    image = camera_response(linear[c], camera, noise[c].draw())
                    _, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
                    frames[c, k] = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
            detections = np.stack([detect_landmarks(frames[c])[0] for c in range(NUM_CAMERAS)], 1)
            keep = np.arange(0, num_frames, frame_step)
            kept["vertices"].append(vertices[keep].astype(np.float32))
            kept["points"].append(detections[keep])
            kept["intrinsics"].append(
                np.broadcast_to(np.stack([c.K for c in cameras]), (len(keep), NUM_CAMERAS, 3, 3))
            )
            kept["world_to_cam"].append(
                np.broadcast_to(np.stack([c.world_to_cam for c in cameras]), (len(keep), NUM_CAMERAS, 4, 4))
            )
        print(f"subject {subject + 1}/{num_subjects}: {sum(len(v) for v in kept['vertices'])} frames kept")
    return {key: np.concatenate(value) for key, value in kept.items()}


def _normal_sign(head) -> float:
    corners = head.v_template[head.faces]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    return 1.0 if float((normal * (corners.mean(1) - head.v_template.mean(0))).sum()) >= 0 else -1.0


def _bary_grid(steps: int) -> np.ndarray:
    """[K, 3] barycentric samples on a regular grid of the triangle (corners and edges included)."""
    grid = [(i, j, steps - i - j) for i in range(steps + 1) for j in range(steps + 1 - i)]
    return np.array(grid, np.float64) / steps


class EmbeddingScore:
    """The tracker's data energy of candidate surface points of one MediaPipe point, over all build
    observations. Each point's observations are weighted once, by the tracker's visibility ramp at
    its initial surface point, so that every candidate is scored on the same views (a candidate
    facing away from every camera cannot win by having no observations)."""

    def __init__(self, head, obs: dict, start_faces: np.ndarray):
        self.faces = head.faces
        self.vertices = obs["vertices"].astype(np.float32)  # [N, V, 3]
        points = obs["points"].astype(np.float32)  # [N, C, 478, 2]
        num_frames, num_cams = points.shape[:2]
        world_to_cam = obs["world_to_cam"]
        projection = np.einsum("ncrk,nckl->ncrl", obs["intrinsics"], world_to_cam[:, :, :3, :])  # [N,C,3,4]
        self.rotation = np.ascontiguousarray(
            projection[..., :3].transpose(0, 3, 1, 2).reshape(num_frames, 3, num_cams * 3), np.float32
        )  # x [N, K, 3] @ rotation -> [N, K, C*3]
        self.offset = projection[..., 3].reshape(num_frames, 1, num_cams * 3).astype(np.float32)
        centres = -np.einsum("ncrk,ncr->nck", world_to_cam[:, :, :3, :3], world_to_cam[:, :, :3, 3])
        corners = self.vertices[:, head.faces[start_faces]]  # [N, 478, 3, 3]
        normal = _normal_sign(head) * np.cross(
            corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
        )
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        to_camera = centres[:, :, None] - corners.mean(2)[:, None]  # [N, C, 478, 3]
        cosine = (to_camera * normal[:, None]).sum(-1) / np.linalg.norm(to_camera, axis=-1)
        weight = np.clip((cosine - VISIBILITY_COS[0]) / (VISIBILITY_COS[1] - VISIBILITY_COS[0]), 0.0, 1.0)
        detected = np.isfinite(points).all(-1)
        self.weight = np.where(detected, weight, 0.0).astype(np.float32)  # [N, C, 478]
        self.points = np.where(detected[..., None], points, 0.0)
        self.scale = ROBUST_SCALE_PX * SIZE / 256.0

    def __call__(self, point: int, faces: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energies [K] and median residuals [K] (pixels, observations of weight >= 0.5) of K candidates
        given as faces [K] and barycentrics [K, 3]."""
        corners = self.vertices[:, self.faces[faces]]  # [N, K, 3, 3]
        position = (corners * bary[None, :, :, None].astype(np.float32)).sum(2)  # [N, K, 3]
        homogeneous = (position @ self.rotation + self.offset).reshape(*position.shape[:2], -1, 3)
        pixels = homogeneous[..., :2] / homogeneous[..., 2:3]  # [N, K, C, 2]
        target = self.points[:, :, point]  # [N, C, 2]
        squared = ((pixels - target[:, None]) ** 2).sum(-1)  # [N, K, C]
        weight = self.weight[:, :, point][:, None]  # [N, 1, C]
        robust = squared * self.scale**2 / (squared + self.scale**2)
        energy = (weight * robust).sum((0, 2)) / max(float(weight.sum()) * 1.0, 1e-9)
        visible = np.broadcast_to(weight >= 0.5, squared.shape)
        residual = np.sqrt(squared.transpose(1, 0, 2)[visible.transpose(1, 0, 2)].reshape(len(faces), -1))
        median = np.median(residual, axis=1) if residual.shape[1] else np.full(len(faces), np.nan)
        return energy, median


def initial_embedding(head, obs: dict, allowed: np.ndarray) -> np.ndarray:
    """[478, 3] template positions: per point, the median over frames of its triangulation's closest
    point on the true posed mesh, carried to the template by (face, barycentric)."""
    vertices, points = obs["vertices"].astype(np.float64), obs["points"]
    num_frames, num_cams = points.shape[:2]
    canonical = np.full((num_frames, NUM_MEDIAPIPE_LANDMARKS, 3), np.nan)
    for n in range(num_frames):
        detected = np.isfinite(points[n]).all(-1)  # [C, 478]
        triangulated, _, count = triangulate(
            points[n], detected.astype(np.float64), obs["intrinsics"][n], obs["world_to_cam"][n]
        )
        # no RMS test: FaceMesh also places the points it cannot see, so every point has outlying
        # views; the median over frames and the visibility-weighted refinement below handle them
        ok = count >= 3
        face, bary, distance = closest_point_on_mesh(triangulated[ok], vertices[n], head.faces, allowed)
        close = distance < 0.02
        ids = np.flatnonzero(ok)[close]
        canonical[n, ids] = (head.v_template[head.faces[face[close]]] * bary[close][:, :, None]).sum(1)
    return np.nanmedian(canonical, axis=0)


def score_embedding(
    score: EmbeddingScore, faces: np.ndarray, bary: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Energy [478] and median residual [478] of a whole embedding."""
    results = [score(point, faces[point : point + 1], bary[point : point + 1]) for point in range(len(faces))]
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def refine(head, score: EmbeddingScore, start: np.ndarray, allowed: np.ndarray) -> dict:
    """Per point, the best (face, barycentric) near ``start`` [478, 3] (template positions)."""
    allowed_ids = np.flatnonzero(allowed)
    centroids = head.v_template[head.faces[allowed_ids]].mean(1)
    tree = cKDTree(centroids)
    coarse, fine = _bary_grid(4), _bary_grid(12)
    faces_out = np.zeros(NUM_MEDIAPIPE_LANDMARKS, np.int64)
    bary_out = np.zeros((NUM_MEDIAPIPE_LANDMARKS, 3))
    energy_out = np.zeros(NUM_MEDIAPIPE_LANDMARKS)
    median_out = np.zeros(NUM_MEDIAPIPE_LANDMARKS)
    for point in range(NUM_MEDIAPIPE_LANDMARKS):
        centre = start[point]
        for radius, grid in ((0.006, coarse), (0.0015, fine)):
            near = allowed_ids[tree.query_ball_point(centre, radius + 0.004)]
            if near.size == 0:
                near = allowed_ids[[tree.query(centre)[1]]]
            faces = np.repeat(near, len(grid))
            bary = np.tile(grid, (len(near), 1))
            position = np.einsum("kij,ki->kj", head.v_template[head.faces[faces]], bary)
            inside = np.linalg.norm(position - centre, axis=-1) <= radius
            faces, bary = faces[inside], bary[inside]
            energy, median = score(point, faces, bary)
            best = int(np.nanargmin(energy))
            centre = np.einsum("ij,i->j", head.v_template[head.faces[faces[best]]], bary[best])
        faces_out[point], bary_out[point] = faces[best], bary[best]
        energy_out[point], median_out[point] = energy[best], median[best]
    return {"faces": faces_out, "bary": bary_out, "energy": energy_out, "median_px": median_out}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--takes", type=int, default=2, help="takes (random sentences) per subject")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--frame-step", type=int, default=4, help="use every n-th detected frame")
    parser.add_argument("--observations", type=Path, help="cache of the renders' detections (.npz)")
    parser.add_argument("--out", type=Path, default=mediapipe_embedding_path())
    args = parser.parse_args()
    from tracking.head.cache import load_or_build_default_head

    started = time.perf_counter()
    head = load_or_build_default_head(0)
    if args.observations is not None and args.observations.is_file():
        with np.load(args.observations) as data:
            obs = {key: data[key] for key in data.files}
    else:
        obs = render_observations(head, args.subjects, args.takes, args.seed, args.frame_step)
        if args.observations is not None:
            np.savez(args.observations, **obs)
    allowed = embedding_allowed_faces(head)
    print(f"{len(obs['vertices'])} frames x {obs['points'].shape[1]} cameras; fitting the embedding")
    start = initial_embedding(head, obs, allowed)
    missing = ~np.isfinite(start).all(-1)
    if missing.any():
        raise SystemExit(f"points never triangulated: {np.flatnonzero(missing).tolist()}; render more frames")
    start_faces, _, _ = closest_point_on_mesh(start, head.v_template, head.faces, allowed)
    score = EmbeddingScore(head, obs, start_faces)
    energy0, median0 = score_embedding(
        score, *closest_point_on_mesh(start, head.v_template, head.faces, allowed)[:2]
    )
    print(f"initial embedding: median residual over points {np.nanmedian(median0):.3f} px")
    result = refine(head, score, start, allowed)
    moved = np.linalg.norm(
        np.einsum("kij,ki->kj", head.v_template[head.faces[result["faces"]]], result["bary"]) - start, axis=-1
    )
    print(
        f"median residual over points {np.nanmedian(result['median_px']):.3f} px "
        f"(p90 {np.nanpercentile(result['median_px'], 90):.3f}); refinement moved points by "
        f"{np.median(moved) * 1000:.2f} mm median, {moved.max() * 1000:.2f} mm max"
    )
    save_mediapipe_embedding(
        args.out,
        head,
        result["faces"],
        result["bary"],
        built_by=f"scripts/build_mediapipe_embedding.py --subjects {args.subjects} --takes {args.takes} "
        f"--seed {args.seed} --frame-step {args.frame_step}",
        num_frames=int(len(obs["vertices"])),
        num_cameras=int(obs["points"].shape[1]),
        median_residual_px=[None if not np.isfinite(v) else round(float(v), 4) for v in result["median_px"]],
    )
    print(f"wrote {args.out} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
