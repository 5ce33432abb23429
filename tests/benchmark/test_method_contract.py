"""The contract every registered method keeps, checked the same way for each (a new method gets it free).

For every method of the registry (built-ins and ``gsbench.methods`` entry points):

* it is listed by ``--method all`` and its declarations are well formed (protocols, compositing rules,
  pretrained networks the weight registry or the audio encoders know, one config type for every budget);
* a ``smoke`` training on the tiny dataset reads only what its protocol allows: the subject's train
  sequences and the protocol's train cameras, recorded by a view that checks them against dataset.json;
* it renders every test sequence of its own protocol (and of ``cross-id`` when declared) with no test
  data at all: the test sequences' images, masks and landmarks are deleted from the dataset before
  training, and (for a non-oracle method) their expression parameters are NaN, so a method that
  reached them by any path would fail or render NaN; the ``RenderRequest`` holds nothing but audio,
  rigid pose and camera;
* ``save`` then ``load`` into a fresh instance renders the same bytes, and a second training with the
  same seed renders the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avatars.methods.base import BUDGETS, PROTOCOL_NAMES, RenderRequest
from benchmark.audio_features import dataset_feature_cache
from benchmark.dataset import load_dataset
from benchmark.methods import get_method, registry, resolve_methods
from benchmark.protocols import COMPOSITING_MODES, TrainView, eval_items, own_protocol

REQUEST_FIELDS = {
    "protocol",
    "sequence",
    "audio",
    "sample_rate",
    "fps",
    "num_frames",
    "rotation",
    "translation",
    "camera",
    "oracle_flame",
}
EXPRESSION_KEYS = ("expr", "jaw_pose", "neck_pose", "eyes_pose")
METHODS = list(registry())


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny tensors: one intra-op thread is faster than two on a shared 2-core machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _withhold_test_data(root: Path, expressions: bool) -> None:
    """Delete the test sequences' images, masks and landmarks; with ``expressions``, also make their
    expression parameters NaN (rigid pose and audio stay: a render request carries them)."""
    meta = json.loads((root / "dataset.json").read_text())
    for splits in meta["splits"].values():
        for sequence in splits["test"]:
            folder = root / "sequences" / sequence
            shutil.rmtree(folder / "images")
            shutil.rmtree(folder / "masks")
            (folder / "landmarks.npz").unlink()
            if expressions:
                with np.load(folder / "flame.npz") as npz:
                    flame = {key: npz[key] for key in npz.files}
                for key in EXPRESSION_KEYS:
                    flame[key] = np.full_like(flame[key], np.nan)
                np.savez(folder / "flame.npz", **flame)


@pytest.fixture(scope="module")
def datasets(tiny_dataset_writer, tmp_path_factory):
    """``{oracle: Dataset}``: the tiny dataset (2 subjects, 3 cameras, 2 train sequences of 12 frames of
    48x64 each) loaded, then stripped of its test data; an oracle method keeps the test expressions."""
    loaded = {}
    for oracle in (False, True):
        root = tiny_dataset_writer(tmp_path_factory.mktemp("contract") / "tiny")
        dataset = load_dataset(root)  # checks every file while they are all there
        _withhold_test_data(root, expressions=not oracle)
        loaded[oracle] = dataset
    return loaded


class RecordingView:
    """A :class:`TrainView` that records every sequence and camera a method reads."""

    def __init__(self, view: TrainView):
        self._view = view
        self.protocol, self.subject, self.fps = view.protocol, view.subject, view.fps
        self.image_size, self.cameras, self.sequences = view.image_size, view.cameras, view.sequences
        self.trained_as = view.trained_as
        self.read: set[tuple[str, str | None]] = set()

    def _record(self, sequence: str, camera: str | None = None) -> None:
        self.read.add((sequence, camera))

    def num_frames(self, sequence):
        self._record(sequence)
        return self._view.num_frames(sequence)

    def load_audio(self, sequence):
        self._record(sequence)
        return self._view.load_audio(sequence)

    def load_images(self, sequence, camera, frames=None):
        self._record(sequence, camera)
        return self._view.load_images(sequence, camera, frames)

    def load_masks(self, sequence, camera, frames=None):
        self._record(sequence, camera)
        return self._view.load_masks(sequence, camera, frames)

    def load_landmarks(self, sequence, camera):
        self._record(sequence, camera)
        return self._view.load_landmarks(sequence, camera)

    def load_flame(self, sequence):
        self._record(sequence)
        return self._view.load_flame(sequence)


def _allowed(dataset, protocol: str, subject: str) -> tuple[set[str], set[str]]:
    """Train sequences and train cameras of ``protocol``, read from dataset.json (not from TrainView)."""
    meta = json.loads((Path(dataset.root) / "dataset.json").read_text())
    cameras = set(meta["cameras"])
    if protocol == "mono-front":
        cameras = {meta["frontal_camera"]}
    else:
        cameras.discard(meta["frontal_camera"])
    return set(meta["splits"][subject]["train"]), cameras


def _trained(cls, dataset, protocol: str, workdir: Path):
    method = cls(seed=0, device="cpu")
    method.audio_cache = dataset_feature_cache(dataset)
    view = RecordingView(TrainView(dataset, protocol, "s01"))
    method.train(view, "smoke", workdir)
    return method, view


def _render(method, request: RenderRequest):
    output = method.render(request)
    output.validate(request)
    return output


@pytest.mark.parametrize("name", METHODS)
def test_declarations(name):
    cls = get_method(name)
    assert name in resolve_methods("all")
    assert cls.protocols and set(cls.protocols) <= set(PROTOCOL_NAMES)
    assert "cross-id" not in cls.protocols or own_protocol(cls.protocols) is not None
    assert "harness" in cls.compositing and set(cls.compositing) <= set(COMPOSITING_MODES)
    from avatars.audio.base import PRETRAINED_ENCODERS
    from benchmark.weights import WeightRegistry

    weights = WeightRegistry()
    for network in cls.pretrained_networks:
        if network not in PRETRAINED_ENCODERS:  # imported audio features (DeepSpeech) are no weight file
            weights.spec(network)  # raises for a name the weight registry does not know
    configs = cls.budget_configs
    if configs:
        assert set(configs) == set(BUDGETS) and len({type(c) for c in configs.values()}) == 1
        assert dataclasses.is_dataclass(configs["smoke"])
    assert set(f.name for f in dataclasses.fields(RenderRequest)) == REQUEST_FIELDS


@pytest.mark.parametrize("name", METHODS)
def test_contract(name, datasets, tmp_path):
    cls = get_method(name)
    dataset = datasets[cls.oracle]
    protocol = own_protocol(cls.protocols)
    assert protocol is not None, f"{name} declares no trainable protocol"
    method, view = _trained(cls, dataset, protocol, tmp_path / "work")

    sequences, cameras = _allowed(dataset, protocol, "s01")
    assert {s for s, _ in view.read} <= sequences
    assert {c for _, c in view.read if c is not None} <= cameras
    assert view.read, f"{name} trained without reading its train view"

    items = eval_items(dataset, protocol, "s01", oracle=cls.oracle)
    assert items
    first = []
    for item in items:
        request = item.request
        if cls.oracle:
            assert set(request.oracle_flame) == set(EXPRESSION_KEYS)
        else:
            assert request.oracle_flame is None
        output = _render(method, request)
        assert np.isfinite(output.rgb).all() and np.isfinite(output.alpha).all()
        assert output.rgb.min() >= 0 and output.rgb.max() <= 1
        assert output.alpha.min() >= 0 and output.alpha.max() <= 1 and output.alpha.max() > 0
        first.append(output)

    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    method.save(checkpoint)
    loaded = cls(seed=0, device="cpu")
    loaded.audio_cache = dataset_feature_cache(dataset)
    loaded.load(checkpoint)
    again = _render(loaded, items[0].request)
    np.testing.assert_array_equal(again.rgb, first[0].rgb)
    np.testing.assert_array_equal(again.alpha, first[0].alpha)

    twin, _ = _trained(cls, dataset, protocol, tmp_path / "work2")
    same_seed = _render(twin, items[0].request)
    np.testing.assert_array_equal(same_seed.rgb, first[0].rgb)
    np.testing.assert_array_equal(same_seed.alpha, first[0].alpha)

    if "cross-id" in cls.protocols:
        for item in eval_items(dataset, "cross-id", "s01", oracle=cls.oracle):
            assert item.request.sequence.startswith("s02")  # the other subject's test audio and pose
            output = _render(loaded, item.request)
            assert np.isfinite(output.rgb).all() and np.isfinite(output.alpha).all()
