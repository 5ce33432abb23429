"""Dataset reader validation and the protocol views (what a method can and cannot see)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.dataset import load_dataset
from benchmark.protocols import TrainView, composite, cross_id_source, eval_items
from gsbench.errors import ConfigError, InputError, MethodError


def test_load_valid_dataset(tiny_dataset):
    dataset = load_dataset(tiny_dataset)
    assert dataset.name == "tiny"
    assert dataset.subjects == ("s01", "s02")
    assert dataset.frontal_camera == "cam01"
    assert dataset.cameras["cam00"].K.shape == (3, 3)
    assert dataset.splits["s01"].test == ("s01_t03",)
    images = dataset.load_images("s01_t00", "cam01")
    assert images.shape == (12, 48, 64, 3) and images.dtype == np.uint8
    assert dataset.load_masks("s01_t00", "cam01").dtype == bool
    assert dataset.load_audio("s01_t00").shape == (12 * 640,)
    assert len(dataset.content_hash) == 64


def test_corrupt_dataset_json_names_the_file(tiny_dataset):
    (tiny_dataset / "dataset.json").write_text('{"schema_version": 1, "name": ')
    with pytest.raises(ConfigError) as error:
        load_dataset(tiny_dataset)
    message = str(error.value)
    assert "dataset.json" in message and "not valid JSON" in message and "fix:" in message


def test_unsupported_schema_version(tiny_dataset, edit_dataset_json):
    edit_dataset_json(tiny_dataset, schema_version=2)
    with pytest.raises(ConfigError, match="schema_version 2 is not supported"):
        load_dataset(tiny_dataset)


def test_missing_key_and_unknown_split_sequence(tiny_dataset):
    meta = json.loads((tiny_dataset / "dataset.json").read_text())
    meta["splits"]["s01"]["test"] = ["s01_t99"]
    (tiny_dataset / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="unknown sequence 's01_t99'"):
        load_dataset(tiny_dataset)
    del meta["fps"]
    (tiny_dataset / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="missing key 'fps'"):
        load_dataset(tiny_dataset)


def test_missing_frame_file_is_reported_with_its_path(tiny_dataset):
    missing = tiny_dataset / "sequences" / "s02_t01" / "masks" / "cam02" / "00007.png"
    missing.unlink()
    with pytest.raises(InputError) as error:
        load_dataset(tiny_dataset)
    assert str(missing) in str(error.value)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        load_dataset(tmp_path / "nope")


def test_train_view_only_holds_train_sequences_and_protocol_cameras(tiny_dataset_master):
    dataset = load_dataset(tiny_dataset_master)
    mono = TrainView(dataset, "mono-front", "s01")
    assert mono.sequences == ("s01_t00", "s01_t01")
    assert list(mono.cameras) == ["cam01"]
    assert mono.load_images("s01_t00", "cam01").shape == (12, 48, 64, 3)
    with pytest.raises(MethodError, match="test sequence 's01_t03'"):
        mono.load_images("s01_t03", "cam01")
    with pytest.raises(MethodError, match="test sequence"):
        mono.load_flame("s01_t03")
    with pytest.raises(MethodError, match="not a training camera"):
        mono.load_images("s01_t00", "cam00")
    multiview = TrainView(dataset, "multiview", "s01")
    assert list(multiview.cameras) == ["cam00", "cam02"]
    with pytest.raises(MethodError):
        multiview.load_masks("s01_t00", "cam01")


def test_render_request_holds_only_audio_pose_and_camera(tiny_dataset_master):
    dataset = load_dataset(tiny_dataset_master)
    (item,) = eval_items(dataset, "mono-front", "s01")
    request = item.request
    flame = dataset.load_flame("s01_t03")
    np.testing.assert_array_equal(request.audio, dataset.load_audio("s01_t03"))
    np.testing.assert_allclose(request.rotation, flame["rotation"])
    np.testing.assert_allclose(request.translation, flame["translation"])
    assert request.camera.id == "cam01" and request.oracle_flame is None
    for forbidden in ("images", "masks", "landmarks", "expr", "jaw_pose"):
        with pytest.raises(MethodError, match="holds no test"):
            getattr(request, forbidden)
    with pytest.raises(AttributeError):
        request.something_else  # noqa: B018 - an unknown attribute is a plain AttributeError
    (oracle_item,) = eval_items(dataset, "mono-front", "s01", oracle=True)
    np.testing.assert_allclose(oracle_item.request.oracle_flame["expr"], flame["expr"])


def test_cross_id_is_driven_by_the_other_subject(tiny_dataset_master):
    dataset = load_dataset(tiny_dataset_master)
    assert cross_id_source(dataset, "s01") == "s02" and cross_id_source(dataset, "s02") == "s01"
    (item,) = eval_items(dataset, "cross-id", "s01")
    assert item.sequence == "s02_t03" and not item.has_ground_truth
    np.testing.assert_array_equal(item.request.audio, dataset.load_audio("s02_t03"))


def test_composite_rule():
    rng = np.random.default_rng(0)
    gt = rng.random((2, 4, 5, 3)).astype(np.float32)
    rgb = rng.random((2, 4, 5, 3)).astype(np.float32)
    mask = rng.random((2, 4, 5)) > 0.5
    np.testing.assert_allclose(composite(rgb, np.ones((2, 4, 5)), gt, mask), rgb, atol=1e-6)
    np.testing.assert_allclose(
        composite(rgb, np.zeros((2, 4, 5)), gt, mask), gt * ~mask[..., None], atol=1e-6
    )
    half = composite(rgb, np.full((2, 4, 5), 0.5), gt, mask)
    np.testing.assert_allclose(half, 0.5 * rgb + 0.5 * gt * ~mask[..., None], atol=1e-6)
