"""The clean plates travel into the dataset (``backgrounds/<cam>.png``) undistorted and resized like the
frames, so that the harness composites a method's head over what each camera saw behind it."""

import json

import cv2
import numpy as np
import pytest
from session_factory import write_session

from benchmark.dataset import load_dataset
from capture_tools.frames import FrameParams
from capture_tools.ingest import IngestParams, ingest

STAGES = ["probe", "sync", "calibrate", "frames", "masks", "backgrounds"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    session = tmp_path_factory.mktemp("session")
    write_session(session)
    out = tmp_path_factory.mktemp("dataset")
    summary = ingest(session, out, IngestParams(frames=FrameParams(size=(96, 96))), stages=STAGES)
    return session, out, summary


def test_plates_are_carried_at_the_frame_geometry(dataset):
    _, out, summary = dataset
    assert "backgrounds" in summary.ran
    result = json.loads((out / "reports" / "backgrounds.json").read_text())["result"]
    assert result == {"cameras": ["cam00", "cam01", "cam02"], "without_plate": []}
    data = load_dataset(out, check_files=False)  # no landmarks/track stages here
    plates = {c: data.load_background(c).astype(np.float32) for c in data.camera_ids}
    for camera in data.camera_ids:
        assert plates[camera].shape == (96, 96, 3)
        images = data.load_images("s01_t00", camera).astype(np.float32)
        masks = data.load_masks("s01_t00", camera)
        # background pixels: outside the (dilated) disc mask and inside the undistorted image area
        keep = ~np.stack([cv2.dilate(m.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0 for m in masks])
        keep &= (plates[camera].sum(-1) > 0)[None]
        error = np.abs(images - plates[camera][None])[keep].mean()
        other = next(c for c in data.camera_ids if c != camera)
        other_error = np.abs(images - plates[other][None])[keep].mean()
        # the frames show their own camera's plate (video coding noise only), not another camera's
        assert error < 4.0, (camera, error)
        assert other_error > 5 * error, (camera, other_error, error)


def test_backgrounds_stage_is_resumable_and_hashed(dataset):
    session, out, _ = dataset
    for sequence in ("s01_t00", "s01_t01"):  # stand-ins for the stages not run here (hashed as bytes)
        for name in ("flame.npz", "landmarks.npz"):
            (out / "sequences" / sequence / name).write_bytes(b"stand-in")
    before = load_dataset(out).content_hash
    again = ingest(session, out, IngestParams(frames=FrameParams(size=(96, 96))), stages=STAGES)
    assert again.ran == [] and "backgrounds" in again.skipped
    plate = (out / "backgrounds" / "cam01.png").read_bytes()
    (out / "backgrounds" / "cam01.png").unlink()
    assert load_dataset(out).content_hash != before  # the plates are part of the dataset's identity
    redo = ingest(session, out, IngestParams(frames=FrameParams(size=(96, 96))), stages=STAGES)
    assert redo.ran == ["backgrounds"]
    assert (out / "backgrounds" / "cam01.png").read_bytes() == plate  # deterministic
