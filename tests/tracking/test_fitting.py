"""Multi-view FLAME tracking on a synthetic toy-head dataset with known parameters."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import numpy as np
import pytest
import torch

from gsbench.errors import ConfigError, InputError, StageError
from tracking.fit import TrackingConfig, track_dataset
from tracking.fit.geometry import closest_point_on_mesh, closest_point_on_triangles, triangulate, umeyama
from tracking.fit.model import SubsetFlame, posed_vertices
from tracking.fit.solver import FRAME_KEYS
from tracking.fit.synthetic import build_toy_head, ring_cameras, write_synthetic_dataset
from tracking.flame import FlameLayer
from tracking.landmarks import NUM_MEDIAPIPE_LANDMARKS, load_mediapipe_embedding, save_mediapipe_embedding

FAST = TrackingConfig(rigid_iterations=20, landmark_iterations=60, dense_iterations=60, embedding_frames=16)


@pytest.fixture(scope="module")
def toy_head():
    return build_toy_head(seed=0)


def test_subset_flame_equals_flame_layer(toy_head):
    model = toy_head[0]
    rng = np.random.default_rng(3)
    batch = 3
    params = {
        "expr": rng.normal(0, 0.5, (batch, model.num_expr)),
        "rotation": rng.normal(0, 0.3, (batch, 3)),
        "neck_pose": rng.normal(0, 0.2, (batch, 3)),
        "jaw_pose": rng.normal(0, 0.2, (batch, 3)),
        "eyes_pose": rng.normal(0, 0.2, (batch, 6)),
        "translation": rng.normal(0, 0.05, (batch, 3)),
    }
    shape = rng.normal(0, 1, model.num_shape)
    layer = FlameLayer(model, dtype=torch.float64)
    reference = np.concatenate(
        [
            layer(
                shape=torch.as_tensor(shape), **{k: torch.as_tensor(v[i : i + 1]) for k, v in params.items()}
            ).vertices.numpy()
            for i in range(batch)
        ]
    )
    ids = rng.choice(model.num_vertices, 50, replace=False)
    subset = SubsetFlame(model, ids, model.num_shape, model.num_expr)(
        torch.as_tensor(shape), **{k: torch.as_tensor(v) for k, v in params.items()}
    )
    np.testing.assert_allclose(subset.detach().numpy(), reference[:, ids], atol=1e-12)
    np.testing.assert_allclose(posed_vertices(model, {**params, "shape": shape}), reference, atol=1e-12)


def test_closest_point_on_mesh_matches_brute_force(toy_head):
    model = toy_head[0]
    rng = np.random.default_rng(0)
    queries = model.v_template[rng.integers(0, model.num_vertices, 200)] + rng.normal(0, 0.005, (200, 3))
    face, bary, distance = closest_point_on_mesh(queries, model.v_template, model.faces)
    corners = model.v_template[model.faces]
    all_points, _ = closest_point_on_triangles(
        queries, *(np.broadcast_to(corners[None, :, k], (200, len(corners), 3)) for k in range(3))
    )
    brute = np.linalg.norm(all_points - queries[:, None], axis=-1).min(1)
    np.testing.assert_allclose(distance, brute, atol=1e-12)
    surface = (model.v_template[model.faces[face]] * bary[:, :, None]).sum(1)
    np.testing.assert_allclose(np.linalg.norm(surface - queries, axis=1), distance, atol=1e-12)
    # a dense barycentric sampling of each chosen triangle never gets closer than the returned point
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 30), np.linspace(0, 1, 30)), -1).reshape(-1, 2)
    grid = grid[grid.sum(1) <= 1]
    samples = np.concatenate([1 - grid.sum(1, keepdims=True), grid], 1)
    sampled = np.einsum("sk,nkc->nsc", samples, model.v_template[model.faces[face]])
    assert (np.linalg.norm(sampled - queries[:, None], axis=-1).min(1) >= distance - 1e-12).all()


def test_triangulation_and_alignment_recover_known_geometry():
    rng = np.random.default_rng(1)
    cameras = ring_cameras(5)
    ids = sorted(cameras)
    intrinsics = np.array([cameras[c]["K"] for c in ids])
    world_to_cam = np.array([cameras[c]["world_to_cam"] for c in ids])
    points = rng.normal(0, 0.05, (40, 3))
    pixels = []
    for k, w2c in zip(intrinsics, world_to_cam, strict=True):
        cam = points @ w2c[:3, :3].T + w2c[:3, 3]
        uv = cam @ k.T
        pixels.append(uv[:, :2] / uv[:, 2:])
    pixels = np.array(pixels)
    pixels[0, :5] = np.nan  # unobserved in one camera
    pixels[1, 5] += 40.0  # an outlier
    estimate, rms, count = triangulate(pixels, np.ones(pixels.shape[:2]), intrinsics, world_to_cam)
    np.testing.assert_allclose(estimate, points, atol=1e-3)
    assert count[:5].tolist() == [4] * 5
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rotation *= np.linalg.det(rotation)
    scale, r_est, t_est = umeyama(points, 1.3 * points @ rotation.T + [0.1, 0.2, 0.3], with_scale=True)
    assert scale == pytest.approx(1.3)
    np.testing.assert_allclose(r_est, rotation, atol=1e-9)
    np.testing.assert_allclose(t_est, [0.1, 0.2, 0.3], atol=1e-9)


def _vertex_and_jaw_errors(syn, root) -> tuple[float, float]:
    model = syn.head_model
    front = model.v_template[:, 2] > 0.03
    vertex, jaw = [], []
    for sequence, truth in syn.params.items():
        with np.load(root / "sequences" / sequence / "flame.npz") as data:
            fitted = {key: data[key].astype(np.float64) for key in data.files}
        gt_vertices = posed_vertices(model, truth)
        fit_vertices = posed_vertices(model, fitted)
        vertex.append(np.linalg.norm(gt_vertices - fit_vertices, axis=-1)[:, front])
        jaw.append(np.abs(truth["jaw_pose"][:, 0] - fitted["jaw_pose"][:, 0]))
    return float(np.concatenate(vertex).mean()) * 1000, float(np.degrees(np.concatenate(jaw)).mean())


def test_track_dataset_recovers_known_parameters(tmp_path, toy_head):
    syn = write_synthetic_dataset(
        tmp_path, head=toy_head, num_frames=10, num_cameras=5, noise_px=0.5, write_images=True, seed=1
    )
    report = track_dataset(tmp_path, syn.head_model, FAST)

    vertex_mm, jaw_deg = _vertex_and_jaw_errors(syn, tmp_path)
    assert vertex_mm < 2.0
    assert jaw_deg < 1.5
    subject = report["subjects"]["s01"]
    # 0.5 px Gaussian noise: the median 2D error is ~0.59 px when the fit is right
    assert subject["reprojection"]["median_px"] < 1.0
    assert subject["stages"]["embedding"]["num_embedded"] == NUM_MEDIAPIPE_LANDMARKS
    for sequence in syn.params:
        with np.load(tmp_path / "sequences" / sequence / "flame.npz") as data:
            assert data["expr"].shape == (10, syn.head_model.num_expr)
            assert data["eyes_pose"].shape == (10, 6)
            assert data["shape"].shape == (syn.head_model.num_shape,)
            for key in ("jaw_pose", "neck_pose", "rotation", "translation"):
                assert data[key].shape == (10, 3)
        entry = report["sequences"][sequence]
        assert entry["status"] == "ok"
        assert set(entry["per_camera"]) == {f"cam{i:02d}" for i in range(5)}
        assert len(entry["per_frame_median_px"]) == 10
        for suffix in ("overlay", "error"):
            png = tmp_path / "reports" / "tracking" / f"{sequence}_{suffix}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "reports" / "tracking.json").read_text())
    assert saved["subjects"]["s01"]["inputs_sha256"] == subject["inputs_sha256"]

    # unchanged inputs: resumed without refitting
    flame_path = tmp_path / "sequences" / "s01_t00" / "flame.npz"
    before = flame_path.stat().st_mtime_ns
    track_dataset(tmp_path, syn.head_model, FAST)
    assert flame_path.stat().st_mtime_ns == before


def _tamper_landmarks(path, camera: str, change) -> None:
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    change(arrays)
    np.savez(path, **arrays)


def test_bad_sequence_is_reported_and_others_are_tracked(tmp_path, toy_head):
    syn = write_synthetic_dataset(
        tmp_path, head=toy_head, num_frames=6, num_cameras=3, seed=2, subjects={"s01": ["s01_t00", "s01_t01"]}
    )
    bad = tmp_path / "sequences" / "s01_t01" / "landmarks.npz"

    def blank_two_cameras(arrays):
        for cam in ("cam00", "cam01"):
            arrays[cam][:] = np.nan
            arrays[f"{cam}_detected"][:] = False

    _tamper_landmarks(bad, "cam00", blank_two_cameras)
    quick = TrackingConfig(rigid_iterations=5, landmark_iterations=10, dense=False)
    with pytest.raises(StageError, match="s01_t01"):
        track_dataset(tmp_path, syn.head_model, quick, plots=False)
    report = json.loads((tmp_path / "reports" / "tracking.json").read_text())
    assert report["sequences"]["s01_t01"]["status"] == "failed"
    assert "landmarks.npz" in report["sequences"]["s01_t01"]["error"]
    assert report["sequences"]["s01_t00"]["status"] == "ok"
    assert (tmp_path / "sequences" / "s01_t00" / "flame.npz").is_file()
    assert not (tmp_path / "sequences" / "s01_t01" / "flame.npz").exists()


def test_camera_without_detections_is_dropped(tmp_path, toy_head):
    syn = write_synthetic_dataset(
        tmp_path, head=toy_head, num_frames=5, num_cameras=4, seed=4, subjects={"s01": ["s01_t00"]}
    )

    def blank(arrays):
        arrays["cam03"][:] = np.nan
        arrays["cam03_detected"][:] = False

    _tamper_landmarks(tmp_path / "sequences" / "s01_t00" / "landmarks.npz", "cam03", blank)
    quick = TrackingConfig(rigid_iterations=5, landmark_iterations=10, dense=False)
    report = track_dataset(tmp_path, syn.head_model, quick, plots=False)
    assert report["sequences"]["s01_t00"]["cameras_without_detections"] == ["cam03"]
    assert report["sequences"]["s01_t00"]["per_camera"]["cam03"]["num_observations"] == 0


@pytest.mark.parametrize("problem", ["nan_in_detected_frame", "inf"])
def test_corrupt_landmarks_raise_naming_the_file(tmp_path, toy_head, problem):
    syn = write_synthetic_dataset(
        tmp_path, head=toy_head, num_frames=4, num_cameras=3, seed=5, subjects={"s01": ["s01_t00"]}
    )
    path = tmp_path / "sequences" / "s01_t00" / "landmarks.npz"

    def corrupt(arrays):
        arrays["cam01_detected"][:] = True
        arrays["cam01"][2, 7] = np.nan if problem == "nan_in_detected_frame" else np.inf
        arrays["cam01"][np.isnan(arrays["cam01"]).all(axis=(1, 2))] = 1.0

    _tamper_landmarks(path, "cam01", corrupt)
    with pytest.raises(StageError, match="landmarks.npz") as error:
        track_dataset(tmp_path, syn.head_model, TrackingConfig(dense=False), plots=False)
    assert ("NaN" if problem == "nan_in_detected_frame" else "inf") in str(error.value)


def test_cameras_with_nan_raise(tmp_path, toy_head):
    syn = write_synthetic_dataset(
        tmp_path, head=toy_head, num_frames=3, num_cameras=3, seed=6, subjects={"s01": ["s01_t00"]}
    )
    cameras = json.loads((tmp_path / "cameras.json").read_text())
    cameras["cam01"]["K"][0][0] = float("nan")
    (tmp_path / "cameras.json").write_text(json.dumps(cameras))
    with pytest.raises(InputError, match="cameras.json"):
        track_dataset(tmp_path, syn.head_model)


def test_bad_head_model_files_raise_naming_the_file(tmp_path, toy_head):
    syn = write_synthetic_dataset(
        tmp_path / "data", head=toy_head, num_frames=3, num_cameras=3, seed=7, subjects={"s01": ["s01_t00"]}
    )
    garbage = tmp_path / "model.npz"
    garbage.write_bytes(b"not a model")
    with pytest.raises(InputError, match="model.npz"):
        track_dataset(tmp_path / "data", garbage)
    # a landmark embedding that indexes faces the mesh does not have
    model_path = tmp_path / "toy.npz"
    syn.head_model.save(model_path)
    with zipfile.ZipFile(model_path) as archive, np.load(model_path) as data:
        assert "lmk_faces_idx.npy" in archive.namelist()
        arrays = {key: data[key] for key in data.files}
    arrays["lmk_faces_idx"] = arrays["lmk_faces_idx"] + len(syn.head_model.faces)
    np.savez(model_path, **arrays)
    with pytest.raises(InputError, match="toy.npz"):
        track_dataset(tmp_path / "data", model_path)


def test_flame_npz_keys_follow_the_contract(tmp_path, toy_head):
    syn = write_synthetic_dataset(
        tmp_path, head=toy_head, num_frames=4, num_cameras=3, seed=8, subjects={"s01": ["s01_t00"]}
    )
    track_dataset(
        tmp_path,
        syn.head_model,
        TrackingConfig(rigid_iterations=3, landmark_iterations=5, dense=False),
        plots=False,
    )
    with np.load(tmp_path / "sequences" / "s01_t00" / "flame.npz") as data:
        assert set(data.files) == {*FRAME_KEYS, "shape"}
        assert all(np.isfinite(data[key]).all() for key in data.files)


def test_fixed_mediapipe_embedding_is_used(tmp_path, toy_head):
    model, mp_faces, mp_bary = toy_head
    syn = write_synthetic_dataset(
        tmp_path / "data", head=toy_head, num_frames=10, num_cameras=5, noise_px=0.5, seed=1
    )
    path = tmp_path / "embedding.json"
    save_mediapipe_embedding(path, model, mp_faces, mp_bary)
    config = dataclasses.replace(FAST, mediapipe_embedding="fixed", mediapipe_embedding_file=str(path))
    report = track_dataset(tmp_path / "data", syn.head_model, config, plots=False)

    subject = report["subjects"]["s01"]
    assert subject["stages"]["embedding"]["source"] == "fixed"
    with np.load(tmp_path / "data" / "reports" / "tracking" / "s01_mediapipe_embedding.npz") as saved:
        np.testing.assert_array_equal(saved["faces_idx"], mp_faces)
        np.testing.assert_allclose(saved["bary_coords"], mp_bary / mp_bary.sum(1, keepdims=True), atol=1e-6)
    # measured: 1.62 mm, 1.52 deg, 0.81 px (the per-subject embedding on these data: 1.96 mm, 1.45 deg)
    vertex_mm, jaw_deg = _vertex_and_jaw_errors(syn, tmp_path / "data")
    assert vertex_mm < 2.0
    assert jaw_deg < 2.0
    assert subject["reprojection"]["median_px"] < 1.0


def test_bad_fixed_mediapipe_embedding_raises_naming_the_file(tmp_path, toy_head, tiny):
    model, mp_faces, mp_bary = toy_head
    syn = write_synthetic_dataset(
        tmp_path / "data", head=toy_head, num_frames=3, num_cameras=3, seed=9, subjects={"s01": ["s01_t00"]}
    )
    assert load_mediapipe_embedding(model) is None  # only gsbench-head ships one
    with pytest.raises(ConfigError, match="no fixed MediaPipe embedding"):
        track_dataset(tmp_path / "data", syn.head_model, TrackingConfig(mediapipe_embedding="fixed"))
    other = tmp_path / "other_mesh.json"
    save_mediapipe_embedding(other, tiny.model(), mp_faces % 10, mp_bary)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    for path in (other, garbage, tmp_path / "missing.json"):
        config = TrackingConfig(mediapipe_embedding="fixed", mediapipe_embedding_file=str(path))
        with pytest.raises(InputError, match=path.name):
            track_dataset(tmp_path / "data", syn.head_model, config)
    assert not (tmp_path / "data" / "sequences" / "s01_t00" / "flame.npz").exists()
