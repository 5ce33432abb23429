"""``gsbench synth --preset tiny`` -> ``gsbench ingest`` from the CLI, compared with ground_truth/.

The tiny preset (4 cameras, 128 px, a 3 s calibration take with 6 board holds) is too small for an
accurate calibration: here only sync is held to the issue's targets; calibration accuracy is measured
on the default preset by benchmarks/ingest.py.
"""

import json

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.dataset import load_dataset


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    session, out = root / "session", root / "dataset"
    for argv in (
        ["--quiet", "synth", str(session), "--preset", "tiny"],
        ["--quiet", "ingest", str(session), "-o", str(out)],
    ):
        try:
            main(argv)
        except SystemExit as exit_:  # main() exits only on errors
            pytest.fail(f"{argv} exited with {exit_.code}")
    return session, out


def test_ingest_of_synth_tiny_validates_and_syncs(synth_dataset):
    session, out = synth_dataset
    dataset = load_dataset(out)  # every file of the layout, flame.npz from the track stage included
    truth = json.loads((session / "ground_truth" / "cameras.json").read_text())
    assert set(dataset.camera_ids) == set(truth)
    sync = json.loads((out / "reports" / "sync.json").read_text())["result"]["takes"]
    errors = [
        abs(r["offset_s"] - truth[c]["time_offset_s"]) * dataset.fps
        for take in sync.values()
        for c, r in take["cameras"].items()
    ]
    assert np.median(errors) < 0.1 and max(errors) < 0.25
    for seq in dataset.sequences:
        landmarks = np.load(out / "sequences" / seq / "landmarks.npz")
        assert landmarks[f"{dataset.frontal_camera}_detected"].mean() > 0.8  # the synthetic head is a face
        with np.load(out / "sequences" / seq / "flame.npz") as flame:
            assert flame["jaw_pose"].shape == (dataset.sequences[seq].num_frames, 3)
            assert np.isfinite(flame["expr"]).all()


def test_calibration_of_synth_tiny_converges(synth_dataset):
    """128 px and 6 board holds leave focal length and depth confounded (focal errors up to ~50 % seen),
    so only convergence and the orientations are checked here."""
    import importlib.util
    from pathlib import Path

    session, out = synth_dataset
    calibration = json.loads((out / "reports" / "calibration.json").read_text())["result"]
    truth = json.loads((session / "ground_truth" / "cameras.json").read_text())
    assert calibration["rms_px"] < 0.5
    script = Path(__file__).parents[2] / "benchmarks" / "ingest.py"
    spec = importlib.util.spec_from_file_location("bench_ingest", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    errors = bench.camera_errors(calibration["cameras"], truth)
    assert errors["rotation_deg"].max() < 3.0
