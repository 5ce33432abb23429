"""S3FD crop boxes for LSE: syncnet_python's own detector and tracker, registered weights only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from benchmark.metrics import compute_metrics, s3fd
from benchmark.weights import REGISTRY, WeightRegistry
from gsbench.io import sha256_file

pytest.importorskip("syncnet_python")

T = 30


def _box(t: int) -> list[float]:
    """A 120 x 140 px face box sliding 2 px per frame to the right and 1 px down."""
    x, y = 40.0 + 2 * t, 50.0 + t
    return [x, y, x + 120.0, y + 140.0]


def test_track_interpolates_gaps_and_holds_the_ends():
    detections = [
        [] if t < 2 or 10 <= t < 15 else [{"frame": t, "bbox": _box(t), "conf": 0.99}] for t in range(T)
    ]
    track, details = s3fd.track_from_detections(detections, T)
    assert track.shape == (T, 3)
    assert details["frames_outside_track"] == 2 and details["frames_without_detection"] == 7
    interior = np.arange(8, 24)  # away from the median filter's zero-padded ends
    expected = np.array([[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, 140.0 / 2] for b in map(_box, interior)])
    np.testing.assert_allclose(track[interior], expected, atol=1e-9)  # the gap 10..14 is interpolated


def test_small_faces_give_no_track():
    tiny = [[{"frame": t, "bbox": [10.0, 10.0, 60.0, 60.0], "conf": 0.99}] for t in range(T)]
    with pytest.raises(Exception, match="no S3FD face track"):
        s3fd.track_from_detections(tiny, T)


def test_registered_weights_run_and_missing_weights_are_reported(tmp_path):
    from syncnet_python.detectors.s3fd.nets import S3FDNet

    torch.manual_seed(0)
    path = tmp_path / "sfd_face.pth"
    torch.save(S3FDNet(device="cpu").state_dict(), path)
    spec = dataclasses.replace(REGISTRY["s3fd-sfd-face"], expected_sha256=sha256_file(path))
    registry = WeightRegistry([tmp_path], specs={"s3fd-sfd-face": spec})
    assert registry.status("s3fd-sfd-face")[0] == "ok"
    detector = s3fd.build_s3fd(registry.find("s3fd-sfd-face").path)
    frames = np.random.default_rng(0).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    found = s3fd.detect_faces(detector, frames)
    assert len(found) == 3 and all(d["frame"] == i for i, f in enumerate(found) for d in f)
    junk = tmp_path / "junk.pth"
    torch.save({"vgg.0.weight": torch.zeros(1)}, junk)
    assert "S3FD" in s3fd.check_s3fd_state_dict(junk)
    from benchmark.metrics import syncnet

    ours = tmp_path / "ours.pt"
    syncnet.save_syncnet(syncnet.SyncNet(width=0.0625, embedding_dim=64), ours)
    name = f"syncnet-gsbench-{sha256_file(ours)[:8]}"
    ours.rename(tmp_path / f"{name}.pt")
    clip = frames.astype(np.float32) / 255
    audio = np.zeros(3 * 640, np.float32)

    def lse(registry_dir):
        return compute_metrics(
            clip, clip, audio=audio, weights=WeightRegistry([registry_dir], syncnet=name), metrics=["lse_d"],
            lse_boxes="s3fd",
        )["lse_d"]  # fmt: skip

    # registered (random) S3FD: it runs, finds no face track in noise, and says so
    assert "no S3FD face track" in lse(tmp_path).reason
    path.unlink()
    without = lse(tmp_path)
    assert without.status == "missing" and "sfd_face.pth" in without.reason
    assert without.weight_id.startswith(name)  # the SyncNet was found; the boxes' weights were not


def test_run_options_carry_the_lse_boxes(tiny_dataset_master, tmp_path):
    from benchmark.runner import RunOptions, job_config, plan_jobs

    options = RunOptions(methods="retrieval", protocols=("mono-front",), lse_boxes="s3fd", device="cpu")
    plan = plan_jobs(tiny_dataset_master, tmp_path, options)
    assert {j.lse_boxes for j in plan.jobs} == {"s3fd"}
    assert job_config(plan.jobs[0], {})["lse_boxes"] == "s3fd"  # part of the config hash
