"""The shared avatar training data (avatars.training_data) and the base method's shared parts
(avatars.methods.base: overrides, head model, checkpoint folder)."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import avatar_support as support
import numpy as np
import pytest

from avatars.methods.base import Camera, Method
from avatars.training_data import build_training_data
from gsbench.errors import ConfigError, MethodError

LENGTHS = {"s01_t00": 5, "s01_t03": 5}


class RecordingView:
    """TrainData over synthetic arrays; pixel (0, 0) of an image encodes (sequence, camera, frame), and every
    call is recorded."""

    def __init__(self, cameras=("cam00", "cam01"), expr_dim=2):
        self.protocol = "multiview"
        self.subject = "s01"
        self.fps = 25.0
        self.image_size = (4, 4)
        self.cameras = {c: Camera(c, np.eye(3), np.eye(4), 4, 4) for c in cameras}
        self.sequences = tuple(LENGTHS)
        self.calls: list[tuple] = []
        self.expr_dim = expr_dim

    def code(self, sequence, camera, frame):
        return 100 * self.sequences.index(sequence) + 10 * list(self.cameras).index(camera) + frame

    def num_frames(self, sequence):
        return LENGTHS[sequence]

    def load_images(self, sequence, camera, frames=None):
        self.calls.append(("images", sequence, camera, tuple(frames)))
        out = np.zeros((len(frames), 4, 4, 3), np.uint8)
        for j, t in enumerate(frames):
            out[j, 0, 0, 0] = self.code(sequence, camera, t)
        return out

    def load_masks(self, sequence, camera, frames=None):
        self.calls.append(("masks", sequence, camera, tuple(frames)))
        return np.ones((len(frames), 4, 4), bool)

    def load_flame(self, sequence):
        self.calls.append(("flame", sequence))
        t = LENGTHS[sequence]
        shape = np.full(3, 0.5 if sequence == "s01_t00" else 0.7, np.float32)
        return {"expr": np.zeros((t, self.expr_dim), np.float32), "shape": shape}

    def load_landmarks(self, sequence, camera):
        self.calls.append(("landmarks", sequence, camera))
        return np.zeros((LENGTHS[sequence], 478, 2)), np.ones(LENGTHS[sequence], bool)

    def load_audio(self, sequence):
        self.calls.append(("audio", sequence))
        return np.zeros(640 * LENGTHS[sequence], np.float32)


def test_frames_are_spread_evenly_and_images_ordered_by_sequence_camera_frame():
    view = RecordingView()
    head = support.sphere_head(num_expr=4)
    data = build_training_data(view, head, max_frames=4)
    # 10 frames end to end; round(linspace(0, 9, 4)) = 0, 3, 6, 9 -> t00 0, 3 and t03 1, 4
    assert data.frames == [("s01_t00", 0), ("s01_t00", 3), ("s01_t03", 1), ("s01_t03", 4)]
    codes = data.images[:, 0, 0, 0].tolist()
    assert codes == [0, 3, 10, 13, 101, 104, 111, 114]
    assert data.frame_index.tolist() == [0, 1, 0, 1, 2, 3, 2, 3]
    assert data.camera_index.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert data.masks.dtype == bool and data.masks.shape == (8, 4, 4)
    assert [(s, local.tolist()) for s, local in data.frames_by_sequence()] == [
        ("s01_t00", [0, 3]),
        ("s01_t03", [1, 4]),
    ]
    assert data.subject["shape"].tolist() == [0.5] * 3  # the first training sequence's
    assert data.world_to_cam.shape == (2, 4, 4) and data.Ks.shape == (2, 3, 3)
    assert not any(call[0] in ("landmarks", "audio") for call in view.calls)  # only when asked for


def test_image_cap_limits_frames_then_draws_images_by_seed():
    head = support.sphere_head(num_expr=4)
    capped = build_training_data(RecordingView(), head, max_frames=4, max_images=6)
    # 6 images over 2 cameras: 3 frames, round(linspace(0, 9, 3)) = 0, 4 (4.5 rounds to even), 9
    assert capped.frames == [("s01_t00", 0), ("s01_t00", 4), ("s01_t03", 4)]
    one = build_training_data(RecordingView(), head, max_frames=4, max_images=1, seed=3)
    # at least one frame is kept: 2 images of frame 0, one drawn by numpy's default_rng(3)
    expected = np.sort(np.random.default_rng(3).choice(2, 1, replace=False))
    assert one.images.shape[0] == 1 and one.camera_index.tolist() == expected.tolist()
    again = build_training_data(RecordingView(), head, max_frames=4, max_images=1, seed=3)
    assert np.array_equal(again.images, one.images)


def test_landmarks_audio_and_camera_subset_on_request():
    view = RecordingView()
    head = support.sphere_head(num_expr=4)
    data = build_training_data(
        view, head, max_frames=100, cameras=["cam01"], with_landmarks=True, with_audio=True
    )
    assert len(data.frames) == 10 and data.cameras == ["cam01"]
    assert set(data.landmarks) == {("s01_t00", "cam01"), ("s01_t03", "cam01")}
    assert set(data.audio) == set(LENGTHS)
    assert {call[2] for call in view.calls if call[0] == "images"} == {"cam01"}


def test_refuses_an_empty_split_and_expressions_the_head_cannot_pose():
    head = support.sphere_head(num_expr=4)
    view = RecordingView()
    view.sequences = ()
    with pytest.raises(MethodError, match="no sequences"):
        build_training_data(view, head, max_frames=4)
    with pytest.raises(MethodError, match="6 expression components"):
        build_training_data(RecordingView(expr_dim=6), head, max_frames=4)


@dataclasses.dataclass(frozen=True)
class Inner:
    steps: int = 10
    lr: float = 1e-3


@dataclasses.dataclass(frozen=True)
class Outer:
    inner: Inner = Inner()
    mode: str = "a"
    scales: tuple[int, ...] = (1, 2)


class ToyMethod(Method):
    name: ClassVar[str] = "toy"
    budget_configs: ClassVar[dict[str, Outer]] = {
        "smoke": Outer(Inner(steps=1)),
        "quick": Outer(),
        "paper": Outer(Inner(steps=1000)),
    }

    def train(self, train_view, budget, workdir): ...
    def render(self, request): ...
    def save(self, path): ...
    def load(self, path): ...


class Plain(ToyMethod):
    name: ClassVar[str] = "plain"
    budget_configs: ClassVar[dict] = {}


def test_overrides_are_dotted_keys_applied_to_every_budget_and_recorded():
    method = ToyMethod(overrides={"inner.lr": 1, "scales": [3, 4]})
    for budget in ("smoke", "quick", "paper"):
        config = method.budget_config(budget)
        assert config.inner.lr == 1.0 and isinstance(config.inner.lr, float) and config.scales == (3, 4)
    assert method.budget_config("paper").inner.steps == 1000  # the rest of the budget is kept
    recorded = method.config("smoke")
    assert recorded["inner"] == {"steps": 1, "lr": 1.0} and recorded["overrides"] == {
        "inner.lr": 1,
        "scales": [3, 4],
    }
    assert "overrides" not in ToyMethod().config("smoke")  # no overrides: the config (and hash) as before
    assert ToyMethod.override_keys("paper") == {
        "inner.steps": 1000,
        "inner.lr": 1e-3,
        "mode": "a",
        "scales": (1, 2),
    }


def test_unknown_or_ill_typed_overrides_fail_at_construction_naming_the_key():
    with pytest.raises(ConfigError, match="'inner.stepz'") as error:
        ToyMethod(overrides={"inner.stepz": 5})
    assert "inner.steps" in str(error.value.fix)
    with pytest.raises(ConfigError, match="inner.steps"):
        ToyMethod(overrides={"inner.steps": "many"})
    with pytest.raises(ConfigError, match="no settings"):
        Plain(overrides={"steps": 5})
    assert Plain().config("quick") == {}
    with pytest.raises(MethodError, match="unknown budget"):
        ToyMethod().budget_config("huge")


def test_head_model_is_built_once_and_replaceable():
    head = support.sphere_head()
    method = ToyMethod(head_model=head)
    layer = method._flame_layer()
    assert method.head_model is head and method._flame_layer() is layer
    other = support.sphere_head(num_expr=2)
    method._set_head_model(other)
    assert method.head_model is other and method._flame_layer() is not layer


def test_checkpoint_folder_round_trip_and_unreadable_checkpoint(tmp_path):
    import torch

    method = ToyMethod(seed=4)
    method._write_checkpoint(
        tmp_path,
        {"seed": 4},
        tensors={"model.pt": {"w": torch.arange(3)}},
        arrays={"stats.npz": {"m": np.ones(2)}},
    )
    assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 4}
    meta, files = method._read_checkpoint(tmp_path, tensors=("model.pt",), arrays=("stats.npz",))
    assert meta == {"seed": 4} and files["model.pt"]["w"].tolist() == [0, 1, 2]
    assert files["stats.npz"]["m"].tolist() == [1.0, 1.0]
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MethodError, match="cannot read toy checkpoint") as error:
        method._read_checkpoint(tmp_path, tensors=("model.pt",))
    assert str(tmp_path) in str(error.value)
