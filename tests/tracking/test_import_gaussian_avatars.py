"""``gsbench import --format gaussian-avatars``: export -> import gives the same dataset up to image
encoding (cameras, FLAME parameters, masks, splits, audio), with and without --recentre."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from gsbench.errors import InputError
from gsbench.io import save_npz
from gsbench.media import write_wav
from tracking.export_gaussian_avatars import export_gaussian_avatars
from tracking.fit.solver import FRAME_KEYS
from tracking.fit.synthetic import build_toy_head, write_synthetic_dataset
from tracking.import_gaussian_avatars import import_gaussian_avatars


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    syn = write_synthetic_dataset(
        root,
        head=build_toy_head(seed=1),
        num_frames=3,
        num_cameras=3,
        write_images=True,
        seed=3,
        subjects={"s01": ["s01_t00", "s01_t01", "s01_t02"]},
    )
    rng = np.random.default_rng(0)
    for sequence, params in syn.params.items():
        save_npz(
            root / "sequences" / sequence / "flame.npz",
            **{k: np.asarray(v, np.float32) for k, v in params.items()},
        )
        write_wav(root / "sequences" / sequence / "audio.wav", 0.1 * rng.standard_normal(1920), 16000)
    return root


@pytest.mark.parametrize("recentre", [False, True])
def test_export_then_import_gives_the_same_dataset(tmp_path, dataset, recentre):
    export_gaussian_avatars(dataset, tmp_path / "ga", recentre=recentre)
    out = tmp_path / "back"
    import_gaussian_avatars(tmp_path / "ga", out, landmarks=False)
    before = json.loads((dataset / "dataset.json").read_text())
    after = json.loads((out / "dataset.json").read_text())
    assert after["cameras"] == sorted(before["cameras"])
    assert after["frontal_camera"] == before["frontal_camera"]
    assert after["splits"]["s01"]["test"] == before["splits"]["s01"]["test"]
    assert sorted(after["splits"]["s01"]["train"] + after["splits"]["s01"]["val"]) == sorted(
        before["splits"]["s01"]["train"] + before["splits"]["s01"]["val"]
    )
    cams_before = json.loads((dataset / "cameras.json").read_text())
    cams_after = json.loads((out / "cameras.json").read_text())
    for camera, entry in cams_before.items():
        assert np.allclose(cams_after[camera]["K"], entry["K"], atol=1e-9)
        assert np.allclose(cams_after[camera]["world_to_cam"], entry["world_to_cam"], atol=1e-9)
    for sequence, info in before["sequences"].items():
        assert after["sequences"][sequence]["num_frames"] == info["num_frames"]
        source, target = dataset / "sequences" / sequence, out / "sequences" / sequence
        with np.load(source / "flame.npz") as a, np.load(target / "flame.npz") as b:
            for key in (*FRAME_KEYS, "shape"):
                assert np.allclose(a[key], b[key], atol=1e-6), key  # recentring undone
        assert (source / "audio.wav").read_bytes() == (target / "audio.wav").read_bytes()
        for camera in before["cameras"]:
            for t in range(info["num_frames"]):
                image_a = cv2.imread(str(source / "images" / camera / f"{t:05d}.jpg")).astype(int)
                image_b = cv2.imread(str(target / "images" / camera / f"{t:05d}.jpg")).astype(int)
                assert np.abs(image_a - image_b).mean() < 2.0  # JPEG -> PNG -> JPEG
                mask_a = cv2.imread(str(source / "masks" / camera / f"{t:05d}.png"), 0) > 127
                mask_b = cv2.imread(str(target / "masks" / camera / f"{t:05d}.png"), 0) > 127
                assert np.array_equal(mask_a, mask_b)


def test_a_sequence_without_audio_is_refused(tmp_path, dataset):
    export_gaussian_avatars(dataset, tmp_path / "ga")
    audio = tmp_path / "ga" / "s01" / "s01_t01" / "audio.wav"
    audio.unlink()
    with pytest.raises(InputError, match="has no audio") as error:
        import_gaussian_avatars(tmp_path / "ga", tmp_path / "back", landmarks=False)
    assert str(audio) in str(error.value)


def test_a_folder_without_transforms_is_refused(tmp_path):
    with pytest.raises(InputError, match="no transforms.json"):
        import_gaussian_avatars(tmp_path, tmp_path / "out")
