"""The runner's scoring path against values computed independently from the dataset files (issue 25).

Dataset: two subjects, two test sequences each of different lengths (s01: 12 and 8 frames, s02: 7 and
10), geometric ground-truth landmarks (tests/benchmark/conftest.py ``face_landmarks``). Method: a flat grey
head with alpha 0.2 everywhere. The expected scores are computed here from the JPEG/PNG files with
OpenCV, scikit-image and the formulas, not with benchmark code: the scored frame is the composite
``0.2 * grey + 0.8 * B`` (B = ground truth outside the mask, black inside: the tiny dataset has no clean
plate), each sequence's value is the mean over its frames, and the job's value is the frame-weighted mean
over its sequences. LMD: the MediaPipe detector is replaced by one that returns the ground-truth points
with ten mouth points moved by a known diagonal shift per sequence.
Also: a finished job is skipped only while its config hash is unchanged; a job killed while training
retrains cleanly; cross-id trains under the method's own protocol (multiview for a multiview-first method).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from avatars.methods.base import Method, RenderOutput, TrainStats
from benchmark.runner import RunOptions, plan_jobs, run_benchmark, run_job
from gsbench.io import TEMP_MARKER

GREY, ALPHA = 0.3, 0.2
SEQUENCE_FRAMES = {"s01_t03": 12, "s01_t04": 8, "s02_t03": 7, "s02_t04": 10}
MOUTH_SHIFT = {"s01_t03": (3.0, 4.0), "s01_t04": (6.0, 8.0), "s02_t03": (0.6, 0.8), "s02_t04": (9.0, 12.0)}


class GreyHeadMethod(Method):
    """Test-only: a flat grey head (alpha 0.2 everywhere); records the train views it was given."""

    name = "grey-head-test"
    description = "test-only flat grey head"
    protocols = ("mono-front", "multiview", "cross-id")
    grey = GREY
    train_views: list[dict] = []

    def config(self, budget):
        return {"grey": type(self).grey}

    def train(self, train_view, budget, workdir):
        type(self).train_views.append(
            {"trained_as": train_view.trained_as, "cameras": list(train_view.cameras),
             "sequences": list(train_view.sequences), "subject": train_view.subject}
        )  # fmt: skip
        return TrainStats()

    def render(self, request):
        shape = (request.num_frames, request.camera.height, request.camera.width)
        return RenderOutput(
            np.full((*shape, 3), type(self).grey, np.float32), np.full(shape, ALPHA, np.float32)
        )

    def save(self, path):
        (Path(path) / "grey.txt").write_text(str(type(self).grey))

    def load(self, path):
        assert (Path(path) / "grey.txt").is_file()


class MultiviewFirstMethod(GreyHeadMethod):
    """Declares multiview first: its own protocol, the one cross-id trains under, is multiview."""

    name = "multiview-first-test"
    protocols = ("multiview", "mono-front", "cross-id")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_dataset_writer) -> Path:
    return tiny_dataset_writer(
        tmp_path_factory.mktemp("datasets") / "two-test",
        sequences_per_subject=5,
        test_sequences_per_subject=2,
        sequence_frames=SEQUENCE_FRAMES,
        name="twotest",
    )


@pytest.fixture
def methods():
    from avatars.methods import BUILTIN_METHODS

    with pytest.MonkeyPatch.context() as patch:
        for cls in (GreyHeadMethod, MultiviewFirstMethod):
            patch.setitem(BUILTIN_METHODS, cls.name, f"{__name__}:{cls.__name__}")
        patch.setattr(GreyHeadMethod, "train_views", [])
        yield


@pytest.fixture
def shifted_detector(dataset, monkeypatch):
    """Replaces MediaPipe on the rendered frames: the ground-truth points of the sequence (known by its
    length), ten outer-lip points moved by MOUTH_SHIFT[sequence]."""
    import tracking.landmarks

    by_length = {n: seq for seq, n in SEQUENCE_FRAMES.items()}

    def detect(frames, **_):
        sequence = by_length[len(frames)]
        with np.load(dataset / "sequences" / sequence / "landmarks.npz") as data:
            points, detected = data["cam01"].astype(np.float64), data["cam01_detected"]
        from tracking.landmarks import MEDIAPIPE_TO_IBUG68

        points[:, MEDIAPIPE_TO_IBUG68[48:58]] += MOUTH_SHIFT[sequence]
        return points, detected

    monkeypatch.setattr(tracking.landmarks, "detect_landmarks", detect)


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[:, :, ::-1].astype(np.float64) / 255.0


def _expected_sequence(dataset: Path, sequence: str, grey: float = GREY) -> dict[str, float]:
    """PSNR, masked PSNR, SSIM and LMD of one sequence, from the files and the formulas."""
    folder = dataset / "sequences" / sequence
    num_frames = SEQUENCE_FRAMES[sequence]
    psnr, psnr_masked, ssim = [], [], []
    for frame in range(num_frames):
        gt = _read_rgb(folder / "images" / "cam01" / f"{frame:05d}.jpg")
        mask = cv2.imread(str(folder / "masks" / "cam01" / f"{frame:05d}.png"), cv2.IMREAD_GRAYSCALE) > 127
        background = np.where(mask[..., None], 0.0, gt)
        scored = np.float32(ALPHA) * np.float32(grey) + (1 - np.float32(ALPHA)) * background
        error2 = (scored - gt) ** 2
        psnr.append(-10 * math.log10(error2.mean()))
        psnr_masked.append(-10 * math.log10(error2[mask].mean()))
        ssim.append(
            structural_similarity(
                scored, gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
                channel_axis=-1,
            )
        )  # fmt: skip
    # ten of the 20 mouth points moved by (dx, dy): every mouth point is |(dx, dy)| / 2 off (centred)
    lmd = math.hypot(*MOUTH_SHIFT[sequence]) / 2
    return {"psnr": np.mean(psnr), "psnr_masked": np.mean(psnr_masked), "ssim": np.mean(ssim), "lmd": lmd}


def _results(runs: Path, protocol: str, method: str, subject: str) -> dict:
    return json.loads((runs / "twotest" / protocol / method / subject / "results.json").read_text())


def test_scores_are_the_frame_weighted_composited_scores(dataset, methods, shifted_detector, tmp_path):
    runs = tmp_path / "runs"
    options = RunOptions(methods=GreyHeadMethod.name, protocols=("mono-front",), budget="smoke",
                         device="cpu", videos=False)  # fmt: skip
    summary = run_benchmark(dataset, runs, options)
    assert [o.status for o in summary.outcomes] == ["ok", "ok"]
    for subject in ("s01", "s02"):
        results = _results(runs, "mono-front", GreyHeadMethod.name, subject)
        sequences = [f"{subject}_t03", f"{subject}_t04"]
        assert sorted(results["sequences"]) == sequences
        expected = {seq: _expected_sequence(dataset, seq) for seq in sequences}
        total = sum(SEQUENCE_FRAMES[seq] for seq in sequences)
        for name in ("psnr", "psnr_masked", "ssim", "lmd"):
            for seq in sequences:
                entry = results["sequences"][seq]["metrics"][name]
                assert entry["status"] == "ok", (name, entry)
                assert entry["value"] == pytest.approx(expected[seq][name], abs=1e-4), (name, seq)
            weighted = sum(expected[seq][name] * SEQUENCE_FRAMES[seq] for seq in sequences) / total
            assert results["metrics"][name]["value"] == pytest.approx(weighted, abs=1e-4), name
            assert results["metrics"][name]["details"]["num_frames"] == total
        # the two sequences' values differ enough that the sequence-weighted mean is another number
        unweighted = np.mean([expected[seq]["lmd"] for seq in sequences])
        assert abs(results["metrics"]["lmd"]["value"] - unweighted) > 0.1
        assert results["sequences"][sequences[0]]["compositing"] == "head-over-black"
        assert results["timing"]["frames_rendered"] == total
    # scoring the raw render (grey, not composited) would give another number: the checks tell them apart
    gt = _read_rgb(dataset / "sequences" / "s01_t03" / "images" / "cam01" / "00000.jpg")
    raw_psnr = -10 * math.log10(((GREY - gt) ** 2).mean())
    assert abs(raw_psnr - _expected_sequence(dataset, "s01_t03")["psnr"]) > 0.5


def test_changed_config_reruns_a_finished_job(dataset, methods, shifted_detector, tmp_path, monkeypatch):
    runs = tmp_path / "runs"

    def job(**changes):
        options = RunOptions(methods=GreyHeadMethod.name, protocols=("mono-front",), subjects=("s01",),
                             budget="smoke", device="cpu", videos=False, **changes)  # fmt: skip
        (planned,) = plan_jobs(dataset, runs, options).jobs
        return planned

    results_path = runs / "twotest" / "mono-front" / GreyHeadMethod.name / "s01" / "results.json"
    assert run_job(job()).status == "ok"
    first = json.loads(results_path.read_text())
    assert run_job(job()).status == "skipped" and len(GreyHeadMethod.train_views) == 1
    monkeypatch.setattr(GreyHeadMethod, "grey", 0.5)  # the method's config changes: the hash changes
    outcome = run_job(job())
    assert outcome.status == "ok" and len(GreyHeadMethod.train_views) == 2
    second = json.loads(results_path.read_text())
    assert second["config_hash"] != first["config_hash"]
    expected = _expected_sequence(dataset, "s01_t03", grey=0.5)["psnr"] * 12
    expected = (expected + _expected_sequence(dataset, "s01_t04", grey=0.5)["psnr"] * 8) / 20
    assert second["metrics"]["psnr"]["value"] == pytest.approx(expected, abs=1e-4)
    assert run_job(job(seed=1)).status == "ok"  # so does the seed
    assert run_job(job(seed=1)).status == "skipped"


def test_job_killed_while_training_retrains_cleanly(dataset, methods, shifted_detector, tmp_path):
    """A kill during training leaves a staging work folder and a half-written checkpoint staging folder,
    no checkpoint record and no results: the re-run trains again and gives the same results."""
    options = RunOptions(methods=GreyHeadMethod.name, protocols=("mono-front",), subjects=("s01",),
                         budget="smoke", device="cpu", videos=False)  # fmt: skip
    (job,) = plan_jobs(dataset, tmp_path / "runs", options).jobs
    run_dir = Path(job.run_dir)
    assert run_job(job).status == "ok"
    first = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").unlink()
    (run_dir / "checkpoint.json").unlink()  # removed before checkpoint/ is replaced
    (run_dir / f".work{TEMP_MARKER}killed").mkdir()
    (run_dir / f".checkpoint{TEMP_MARKER}killed").mkdir()
    (run_dir / f".checkpoint{TEMP_MARKER}killed" / "half.bin").write_bytes(b"\0")
    assert run_job(job).status == "ok"
    assert len(GreyHeadMethod.train_views) == 2  # retrained: no record says checkpoint/ is complete
    again = json.loads((run_dir / "results.json").read_text())
    assert again["metrics"]["psnr"] == first["metrics"]["psnr"]
    assert again["timing"]["checkpoint_from"] is None
    assert not [p for p in run_dir.rglob("*") if TEMP_MARKER in p.name]


def test_cross_id_trains_under_the_methods_own_protocol(dataset, methods, shifted_detector, tmp_path):
    runs = tmp_path / "runs"
    options = RunOptions(methods=f"{GreyHeadMethod.name},{MultiviewFirstMethod.name}",
                         protocols=("cross-id",), subjects=("s01",), budget="smoke", device="cpu",
                         videos=False)  # fmt: skip
    summary = run_benchmark(dataset, runs, options)
    assert [o.status for o in summary.outcomes] == ["ok", "ok"]
    views = {v["trained_as"]: v for v in GreyHeadMethod.train_views}
    assert views["mono-front"]["cameras"] == ["cam01"]
    assert views["multiview"]["cameras"] == ["cam00", "cam02"]
    for view in views.values():
        assert view["subject"] == "s01" and view["sequences"] == ["s01_t00", "s01_t01"]
    mv = _results(runs, "cross-id", MultiviewFirstMethod.name, "s01")
    assert mv["method_info"]["trained_as"] == "multiview"
    assert mv["method_info"]["driven_by_subject"] == "s02"
    assert sorted(mv["sequences"]) == ["s02_t03", "s02_t04"]
    assert _results(runs, "cross-id", GreyHeadMethod.name, "s01")["method_info"]["trained_as"] == "mono-front"
