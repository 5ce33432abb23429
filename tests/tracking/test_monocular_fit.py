"""Monocular FLAME tracking pieces (tracking/fit/monocular.py) on exact, noise-free projections of the
head model: the one-camera convention, the PnP stage 0, and the focal-length search."""

import numpy as np
import pytest

from tracking.fit.geometry import project_np
from tracking.fit.model import posed_vertices
from tracking.fit.monocular import MONOCULAR_CONFIG, camera_entry, estimate_focal, pnp_initial_pose
from tracking.fit.solver import Observations, _LandmarkTerm, _Problem, _stack_init, fixed_mediapipe_embedding
from tracking.fit.track import resolve_head_model
from tracking.landmarks import MEDIAPIPE_TO_IBUG68

SIZE = 256


@pytest.fixture(scope="module")
def model():
    return resolve_head_model(None)


def _observations(model, focal: float, rotations: np.ndarray, translations: np.ndarray, assumed: float):
    faces, bary = fixed_mediapipe_embedding(model, MONOCULAR_CONFIG)
    params = {"shape": np.zeros(model.num_shape), "rotation": rotations, "translation": translations}
    vertices = posed_vertices(model, params)
    points = (vertices[:, model.faces[faces]] * bary[None, :, :, None]).sum(2)  # [T, 478, 3]
    camera = camera_entry(focal, SIZE, SIZE, 1.0)
    pixels = project_np(points, np.asarray(camera["K"]), np.asarray(camera["world_to_cam"]))
    assumed_K = np.asarray(camera_entry(assumed, SIZE, SIZE, 1.0)["K"])
    return Observations(
        camera_ids=["front"],
        intrinsics=assumed_K[None],
        world_to_cam=np.asarray(camera["world_to_cam"])[None],
        image_sizes=np.array([[SIZE, SIZE]]),
        points=pixels[None],
        frame_sequence=np.zeros(len(rotations), int),
        sequence_ids=["s"],
    )


def test_camera_looks_at_the_head_model_from_its_front():
    camera = camera_entry(700.0, SIZE, SIZE, 1.0)
    K, w2c = np.asarray(camera["K"]), np.asarray(camera["world_to_cam"])
    assert np.allclose(project_np(np.zeros(3), K, w2c), [SIZE / 2, SIZE / 2])
    # +z (the face's direction in the head model's frame) comes toward the camera: depth shrinks
    assert (w2c[:3, :3] @ [0, 0, 0.1] + w2c[:3, 3])[2] == pytest.approx(0.9)
    # +y is up in the world, so it is up (smaller row) in the image
    assert project_np(np.array([0.0, 0.1, 0.0]), K, w2c)[1] < SIZE / 2


def test_pnp_stage_zero_recovers_the_pose(model):
    rotations = np.array([[0.0, 0.0, 0.0], [0.1, 0.3, 0.0], [-0.1, -0.25, 0.05]])
    translations = np.array([[0.0, 0.0, 0.0], [0.01, -0.02, 0.05], [-0.02, 0.01, -0.08]])
    obs = _observations(model, 700.0, rotations, translations, assumed=700.0)
    problem = _Problem(model, obs, MONOCULAR_CONFIG)
    faces, bary = fixed_mediapipe_embedding(model, MONOCULAR_CONFIG)
    from tracking.fit.model import EmbeddedLandmarks

    term = _LandmarkTerm(
        problem,
        EmbeddedLandmarks(model.faces, faces[MEDIAPIPE_TO_IBUG68], bary[MEDIAPIPE_TO_IBUG68]),
        obs.points[:, :, MEDIAPIPE_TO_IBUG68],
        np.ones((1, 3, 68)),
    )
    init = _stack_init(3, 1, 1)
    pnp_initial_pose(problem, term, init)
    assert np.abs(init["rotation"] - rotations).max() < 1e-3
    assert np.abs(init["translation"] - translations).max() < 1e-3  # metres


@pytest.mark.slow
def test_focal_search_finds_the_truth_on_exact_landmarks(model):
    """Without MediaPipe's bias the search lands on the true focal length from a 27 % wrong start."""
    rng = np.random.default_rng(0)
    num = 10
    rotations = np.stack([rng.uniform(-0.15, 0.15, num), rng.uniform(-0.5, 0.5, num), np.zeros(num)], 1)
    translations = rng.uniform(-0.03, 0.03, (num, 3))
    obs = _observations(model, 700.0, rotations, translations, assumed=512.0)
    focal, history, stats = estimate_focal(model, obs, MONOCULAR_CONFIG)
    assert abs(focal - 700.0) / 700.0 < 0.03, (focal, history)
