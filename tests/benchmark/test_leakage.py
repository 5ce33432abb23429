"""What a method may read while training, under every protocol (issue 25).

The train view of a subject holds that subject's train sequences and the protocol's training cameras
(cross-id: those of the method's own protocol). Everything else -- the subject's validation and test
sequences, every sequence of another subject (including the one that drives this subject under
cross-id), unknown sequences, cameras outside the protocol -- raises MethodError from every reader.
"""

from __future__ import annotations

import pytest

from benchmark.dataset import load_dataset
from benchmark.protocols import TrainView, cross_id_source
from gsbench.errors import MethodError

# (protocol, own protocol, training cameras) of the tiny dataset: cam01 is the frontal camera
VIEWS = [
    ("mono-front", None, ["cam01"]),
    ("multiview", None, ["cam00", "cam02"]),
    ("cross-id", "mono-front", ["cam01"]),
    ("cross-id", "multiview", ["cam00", "cam02"]),
]
CAMERA_READERS = ("load_images", "load_masks", "load_landmarks")
READERS = ("num_frames", "load_audio", "load_flame", *CAMERA_READERS)


def _read(view: TrainView, reader: str, sequence: str, camera: str):
    if reader in CAMERA_READERS:
        return getattr(view, reader)(sequence, camera)
    return getattr(view, reader)(sequence)


@pytest.fixture(scope="module")
def dataset(tiny_dataset_master):
    return load_dataset(tiny_dataset_master)


@pytest.mark.parametrize(("protocol", "own", "cameras"), VIEWS, ids=[f"{p}-{o}" for p, o, _ in VIEWS])
@pytest.mark.parametrize("subject", ["s01", "s02"])
def test_train_view_refuses_everything_but_the_subjects_train_sequences(
    dataset, protocol, own, cameras, subject
):
    view = TrainView(dataset, protocol, subject, own=own)
    other = "s02" if subject == "s01" else "s01"
    assert list(view.cameras) == cameras
    assert view.trained_as == (own or protocol)
    train = list(dataset.subject_sequences(subject, "train"))
    assert list(view.sequences) == train == [f"{subject}_t00", f"{subject}_t01"]
    for reader in READERS:  # allowed: own train sequences, training cameras
        for sequence in train:
            for camera in cameras:
                assert _read(view, reader, sequence, camera) is not None
    forbidden = [
        *dataset.subject_sequences(subject, "val"),
        *dataset.subject_sequences(subject, "test"),
        *(f"{other}_t{k:02d}" for k in range(4)),  # every split of the other subject
        "nobody_t00",
    ]
    assert f"{subject}_t02" in forbidden and f"{subject}_t03" in forbidden
    driver = dataset.subject_sequences(cross_id_source(dataset, subject), "test")[0]
    assert driver in forbidden  # the sequence that drives this subject under cross-id
    for reader in READERS:
        for sequence in forbidden:
            with pytest.raises(MethodError, match="does not contain"):
                _read(view, reader, sequence, cameras[0])
    for reader in CAMERA_READERS:
        for camera in sorted(set(dataset.camera_ids) - set(cameras)):
            with pytest.raises(MethodError, match="not a training camera"):
                _read(view, reader, train[0], camera)


def test_forbidden_reads_name_the_sequence_and_what_is_allowed(dataset):
    view = TrainView(dataset, "mono-front", "s01")
    with pytest.raises(MethodError, match=r"'s01_t02'.*\['s01_t00', 's01_t01'\]"):
        view.load_audio("s01_t02")
    with pytest.raises(MethodError, match=r"'s02_t00'.*\['s01_t00', 's01_t01'\]"):
        view.load_flame("s02_t00")
