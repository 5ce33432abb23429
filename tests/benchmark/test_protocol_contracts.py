"""benchmark.protocols pinned where the mutation run (issue 25) found it unchecked: the compositing
arithmetic's clipping and dtypes, the backgrounds of every rule, the compositing record, the render
request's fields, the train view's attributes and frame selection, the user errors (message, file, fix)."""

from __future__ import annotations

import pickle
import types
from pathlib import Path

import numpy as np
import pytest

from benchmark.dataset import load_dataset
from benchmark.protocols import (
    COMPOSITING_RULES,
    COMPOSITING_VERSION,
    TrainView,
    blanked_background,
    check_protocol,
    compositing_record,
    cross_id_source,
    eval_items,
    get_protocol,
    harness_background,
    over,
    own_protocol,
)
from gsbench.errors import ConfigError, MethodError


def test_over_clips_its_inputs_and_its_result_and_returns_float32():
    # pixels: alpha 2 (-> 1), alpha -1 (-> 0), then alpha 0.5 over rgb 1.5 / -0.5, then a background of 1.5
    rgb = np.array([[[[1.5, -0.5, 0.5], [0.5, 0.5, 0.5], [1.5, -0.5, 0.2], [0.3, 0.3, 0.3]]]])  # [1, 1, 4, 3]
    alpha = np.array([[[2.0, -1.0, 0.5, 0.0]]])
    background = np.array([[[[0.25, 0.25, 0.25], [0.75, 0.75, 0.75], [0.0, 0.8, 0.4], [1.5, -0.5, 0.6]]]])
    out = over(rgb, alpha, background)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], [1.0, 0.0, 0.5])  # the clipped colour
    np.testing.assert_allclose(out[0, 0, 1], [0.75, 0.75, 0.75])  # the background
    np.testing.assert_allclose(out[0, 0, 2], [0.5, 0.4, 0.3], atol=1e-7)  # colour clipped before blending
    np.testing.assert_allclose(out[0, 0, 3], [1.0, 0.0, 0.6], atol=1e-7)  # the result clipped to [0, 1]


def test_backgrounds_of_every_rule_by_hand():
    gt = np.full((2, 1, 2, 3), 0.8, np.float32)  # the runner's ground truth is float32
    mask = np.array([[[True, False]], [[False, True]]])
    plate = np.full((1, 2, 3), 0.4)  # float64: the backgrounds are float32 all the same
    shape = (2, 1, 2, 3)
    background, rule = harness_background(None, None, None, shape)
    assert rule == "cross-id-over-black" and background.shape == shape and background.dtype == np.float32
    assert not background.any()
    background, rule = harness_background(None, None, plate, shape)
    assert rule == "cross-id-over-plate" and background.dtype == np.float32 and background.shape == shape
    np.testing.assert_allclose(background, 0.4, atol=1e-7)
    background, rule = harness_background(gt, mask, plate, shape)
    assert rule == "head-over-plate" and background.dtype == np.float32
    np.testing.assert_allclose(background[mask], 0.4, atol=1e-7)
    np.testing.assert_allclose(background[~mask], 0.8, atol=1e-7)
    # what an own compositor gets: the frame with the head blanked, or the plate / black under cross-id
    blanked = blanked_background(gt, mask, plate, shape)
    assert blanked.dtype == np.float32
    np.testing.assert_allclose(blanked[mask], 0.0)
    np.testing.assert_allclose(blanked[~mask], 0.8, atol=1e-7)
    cross = blanked_background(None, None, plate, shape)
    assert cross.dtype == np.float32 and cross.shape == shape
    np.testing.assert_allclose(cross, 0.4, atol=1e-7)
    black = blanked_background(None, None, None, shape)
    assert black.dtype == np.float32 and black.shape == shape and not black.any()


def test_compositing_record_whole():
    assert compositing_record("harness", ["head-over-plate", "head-over-plate"], "ab12") == {
        "version": COMPOSITING_VERSION,
        "mode": "harness",
        "track": "shared",
        "rule": "head-over-plate",
        "formulas": {"head-over-plate": COMPOSITING_RULES["head-over-plate"]},
        "plate_sha256": "ab12",
    }
    mixed = compositing_record("harness", ["head-over-plate", "head-over-black"])
    assert mixed["rule"] == "head-over-black;head-over-plate" and mixed["plate_sha256"] is None
    assert set(mixed["formulas"]) == {"head-over-black", "head-over-plate"}
    assert compositing_record("own", ["own-compositor"])["track"] == "own-compositor"


def _fake_dataset(subjects=("a", "b"), cameras=("cam00", "cam01")):
    return types.SimpleNamespace(subjects=subjects, camera_ids=cameras, name="fake", root=Path("/data/fake"))


def test_protocol_errors_name_the_file_and_the_fix():
    with pytest.raises(ConfigError) as error:
        get_protocol("stereo")
    assert str(error.value) == "unknown protocol 'stereo' (fix: use one of: mono-front, multiview, cross-id)"
    assert own_protocol(("cross-id",)) is None and own_protocol(("cross-id", "multiview")) == "multiview"
    check_protocol(_fake_dataset(cameras=("cam00", "cam01")), "multiview")  # two cameras are enough
    check_protocol(_fake_dataset(cameras=("cam00",)), "mono-front")  # monocular: mono-front is fine
    with pytest.raises(ConfigError) as error:
        check_protocol(_fake_dataset(cameras=("cam00",)), "multiview")
    assert error.value.path == Path("/data/fake/dataset.json")
    assert error.value.fix == "run mono-front (and cross-id with two or more subjects) on monocular datasets"
    assert "'fake' has only ['cam00'] (a monocular video dataset)" in str(error.value)


def test_cross_id_source_cycles_through_the_subjects():
    three = _fake_dataset(subjects=("a", "b", "c"))
    assert [cross_id_source(three, s) for s in ("a", "b", "c")] == ["b", "c", "a"]
    with pytest.raises(ConfigError) as error:
        cross_id_source(_fake_dataset(subjects=("a",)), "a")
    assert (
        error.value.path == Path("/data/fake/dataset.json")
        and error.value.fix == "run mono-front/multiview only"
    )
    assert "cross-id needs at least two subjects; 'fake' has ['a']" in str(error.value)


@pytest.fixture(scope="module")
def dataset(tiny_dataset_master):
    return load_dataset(tiny_dataset_master)


def test_render_request_fields(dataset):
    for protocol, sequence in (("mono-front", "s01_t03"), ("cross-id", "s02_t03")):
        (item,) = eval_items(dataset, protocol, "s01")
        request = item.request
        assert (request.protocol, request.sequence, item.sequence) == (protocol, sequence, sequence)
        assert (request.sample_rate, request.fps, request.num_frames) == (16000, 25.0, 12)
        assert request.rotation.dtype == np.float32 and request.translation.dtype == np.float32
        assert request.camera.id == "cam01" and item.has_ground_truth == (protocol == "mono-front")


def test_train_view_attributes_frames_errors_and_pickling(dataset):
    view = TrainView(dataset, "cross-id", "s02", own="multiview")
    assert (view.protocol, view.trained_as, view.subject) == ("cross-id", "multiview", "s02")
    assert view.fps == 25.0 and tuple(view.image_size) == (48, 64)
    all_frames = view.load_images("s02_t00", "cam00")
    np.testing.assert_array_equal(view.load_images("s02_t00", "cam00", [0, 5]), all_frames[[0, 5]])
    masks = view.load_masks("s02_t00", "cam02")
    np.testing.assert_array_equal(view.load_masks("s02_t00", "cam02", [3]), masks[[3]])
    with pytest.raises(MethodError) as error:
        view.load_audio("nobody_t00")
    assert "unknown sequence 'nobody_t00'" in str(error.value)
    assert error.value.fix == "train only on train_view.sequences"
    with pytest.raises(MethodError) as error:
        view.load_images("s02_t00", "cam01")
    assert error.value.fix == "train only on train_view.cameras"
    with pytest.raises(TypeError, match="^a TrainView is not picklable: build it where the job runs$"):
        pickle.dumps(view)
    with pytest.raises(ConfigError, match="^cross-id needs an own protocol, got None$"):
        TrainView(dataset, "cross-id", "s01")


def test_multiview_train_view_is_refused_on_a_monocular_dataset(tiny_dataset_writer, tmp_path):
    mono = load_dataset(
        tiny_dataset_writer(tmp_path / "mono", num_cameras=1, num_frames=2, sequences_per_subject=3)
    )
    assert list(TrainView(mono, "mono-front", "s01").cameras) == ["cam00"]
    with pytest.raises(ConfigError, match="monocular video dataset"):
        TrainView(mono, "multiview", "s01")
    with pytest.raises(ConfigError, match="monocular video dataset"):
        TrainView(mono, "cross-id", "s01", own="multiview")
