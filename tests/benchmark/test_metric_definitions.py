"""The metric definitions pinned by hand-computed values (issue 25).

Each input is built so that the plausible wrong definition gives another number: colour channels with
different errors (PSNR pooled over H, W and the 3 channels, not per channel then averaged), diagonal
landmark shifts (Euclidean distance, not L1 or one axis), points on the boundary of the mouth subset
(iBUG 48-67 exactly) and sequences of different lengths (frame-weighted means, every sequence counted).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.metrics import compute_metrics
from benchmark.metrics.image import psnr_per_frame
from benchmark.metrics.lmd import lmd_from_ibug68, lmd_per_frame
from benchmark.results import mean_metrics
from benchmark.weights import WeightRegistry
from tracking.landmarks import IBUG68_MOUTH, MEDIAPIPE_TO_IBUG68

# ----------------------------------------------------------------------------------------------- PSNR
# Channel errors 0.1, 0.02, 0.05: per-channel MSEs 1e-2, 4e-4, 2.5e-3.
CHANNEL_ERRORS = (0.1, 0.02, 0.05)
POOLED_MSE = (0.1**2 + 0.02**2 + 0.05**2) / 3  # 0.0043
PSNR_POOLED = -10 * math.log10(POOLED_MSE)  # 23.665 dB: the definition
PSNR_PER_CHANNEL_MEAN = sum(-10 * math.log10(e**2) for e in CHANNEL_ERRORS) / 3  # 26.667 dB: not it


def _channel_error_frames(num_frames: int = 2, scale: tuple[float, ...] = (1.0, 1.0)):
    gt = np.full((num_frames, 16, 16, 3), 0.5)
    pred = gt.copy()
    for t in range(num_frames):
        pred[t] += np.asarray(CHANNEL_ERRORS) * scale[t]
    return pred, gt


def test_psnr_pools_the_three_channels_before_the_log():
    assert PSNR_POOLED == pytest.approx(23.6653, abs=1e-4)  # the hand value, -10 log10(0.0043)
    assert abs(PSNR_POOLED - PSNR_PER_CHANNEL_MEAN) > 2.0
    pred, gt = _channel_error_frames()
    np.testing.assert_allclose(psnr_per_frame(pred, gt), PSNR_POOLED, atol=1e-9)
    masks = np.zeros((2, 16, 16), bool)
    masks[:, 4:9, 2:13] = True  # masked: the same pooling, over the mask pixels only
    np.testing.assert_allclose(psnr_per_frame(pred, gt, masks), PSNR_POOLED, atol=1e-9)


def test_clip_psnr_is_the_mean_of_per_frame_psnrs():
    """Frame 1 has twice the error of frame 0: its PSNR is 20 log10(2) = 6.02 dB lower. The clip's PSNR
    averages the per-frame dB values; the PSNR of the clip's pooled MSE would be another number."""
    pred, gt = _channel_error_frames(scale=(1.0, 2.0))
    expected_frames = [PSNR_POOLED, PSNR_POOLED - 20 * math.log10(2)]
    np.testing.assert_allclose(psnr_per_frame(pred, gt), expected_frames, atol=1e-9)
    result = compute_metrics(pred, gt, metrics=["psnr"], gt_landmarks=_no_face(2), weights=WeightRegistry([]))
    assert result["psnr"].value == pytest.approx(np.mean(expected_frames), abs=1e-6)
    pooled_clip = -10 * math.log10(POOLED_MSE * (1 + 4) / 2)
    assert abs(result["psnr"].value - pooled_clip) > 0.5


def _no_face(num_frames: int):
    return np.full((num_frames, 478, 2), np.nan), np.zeros(num_frames, bool)


# ------------------------------------------------------------------------------------------------ LMD
def _face68(num_frames: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(20, 200, (num_frames, 68, 2))


def test_lmd_is_euclidean_on_diagonal_shifts():
    """Ten of the 20 mouth points move by (3, 4) px: the mouth centroid moves (1.5, 2), so every mouth
    point is (1.5, 2) off its centred ground truth, |(1.5, 2)| = 2.5 px (L1 would say 3.5, one axis 2)."""
    gt = _face68()
    pred = gt.copy()
    pred[:, 48:58] += [3.0, 4.0]
    np.testing.assert_allclose(lmd_per_frame(pred, gt, IBUG68_MOUTH), 2.5, atol=1e-12)
    # all 68 points: the centroid moves (30, 40)/68; 10 points are (3, 4) * 58/68 off, 58 are (3, 4) * 10/68
    face = (10 * 5 * 58 / 68 + 58 * 5 * 10 / 68) / 68
    assert face == pytest.approx(1.25432, abs=1e-5)
    np.testing.assert_allclose(lmd_per_frame(pred, gt), face, atol=1e-12)


def test_lmd_mouth_subset_is_exactly_ibug_48_to_67():
    np.testing.assert_array_equal(IBUG68_MOUTH, np.arange(48, 68))
    gt = _face68()
    outside = gt.copy()
    outside[:, 47] += [6.0, 8.0]  # the last eye point: not a mouth point
    outside[:, 30] += [-6.0, 8.0]  # the nose tip
    np.testing.assert_allclose(lmd_per_frame(outside, gt, IBUG68_MOUTH), 0.0, atol=1e-12)
    assert (lmd_per_frame(outside, gt) > 0.1).all()
    for first_or_last in (48, 67):  # both ends are in: one point moved by |(6, 8)| = 10 px
        moved = gt.copy()
        moved[:, first_or_last] += [6.0, 8.0]
        # centroid moves 10/20 = 0.5 px along (0.6, 0.8): the moved point is 9.5 px off, 19 are 0.5 px
        np.testing.assert_allclose(lmd_per_frame(moved, gt, IBUG68_MOUTH), (9.5 + 19 * 0.5) / 20, atol=1e-12)


def test_lmd_and_lmd_face_through_compute_metrics(monkeypatch):
    """compute_metrics reports ``lmd`` on the mouth and ``lmd_face`` on all 68 points, mapped from the
    MediaPipe indices; per-frame values average over the frames where both sides have a face."""
    num_frames = 3
    gt68 = _face68(num_frames, seed=1)
    pred68 = gt68.copy()
    pred68[:, 48:58] += [3.0, 4.0]  # mouth 2.5 px, face 1.25432 px (see above)
    pred68[2, 48:58] += [3.0, 4.0]  # frame 2: twice the shift, twice the LMD
    gt478 = np.random.default_rng(2).uniform(20, 200, (num_frames, 478, 2))
    pred478 = gt478.copy()
    gt478[:, MEDIAPIPE_TO_IBUG68] = gt68
    pred478[:, MEDIAPIPE_TO_IBUG68] = pred68
    detected = np.ones(num_frames, bool)

    import tracking.landmarks

    monkeypatch.setattr(tracking.landmarks, "detect_landmarks", lambda frames, **_: (pred478, detected))
    frames = np.zeros((num_frames, 32, 32, 3), np.float32)
    results = compute_metrics(frames, frames, metrics=["lmd"], gt_landmarks=(gt478, detected))
    face = (10 * 5 * 58 / 68 + 58 * 5 * 10 / 68) / 68
    np.testing.assert_allclose(results["lmd"].details["per_frame"], [2.5, 2.5, 5.0], atol=1e-9)
    assert results["lmd"].value == pytest.approx(10.0 / 3, abs=1e-9)
    np.testing.assert_allclose(results["lmd_face"].details["per_frame"], [face, face, 2 * face], atol=1e-9)
    assert results["lmd_face"].value == pytest.approx(4 * face / 3, abs=1e-9)
    # a frame without a ground-truth face is not scored and not counted in the mean
    gt_detected = np.array([True, True, False])
    results = compute_metrics(frames, frames, metrics=["lmd"], gt_landmarks=(gt478, gt_detected))
    assert results["lmd"].value == pytest.approx(2.5, abs=1e-9)
    assert results["lmd"].details["failed_gt"] == 1 and results["lmd"].details["frames_scored"] == 2


def test_lmd_from_ibug68_keys():
    gt = _face68(2)
    pred = gt.copy()
    pred[:, 48:58] += [3.0, 4.0]
    found = lmd_from_ibug68(pred, np.ones(2, bool), gt, np.ones(2, bool))
    np.testing.assert_allclose(found["mouth"], 2.5, atol=1e-12)
    np.testing.assert_allclose(found["face"], (10 * 5 * 58 / 68 + 58 * 5 * 10 / 68) / 68, atol=1e-12)


# -------------------------------------------------------------------------------- means over sequences
def _ok(value: float, direction: str = "higher") -> dict:
    return {
        "value": value,
        "status": "ok",
        "reason": "",
        "weight_id": None,
        "direction": direction,
        "details": {},
    }


def test_mean_over_sequences_of_different_lengths_is_frame_weighted():
    """Three sequences of 10, 20 and 70 frames: the mean counts every frame once, (300 + 400 + 700) / 100
    = 14; the sequence-weighted mean would be 20, the first sequence alone 30, the last alone 10."""
    per_sequence = {
        "s01_t03": {"psnr": _ok(30.0), "lmd": _ok(1.0, "lower"), "lse_d": _ok(8.0, "lower")},
        "s01_t04": {"psnr": _ok(20.0), "lmd": _ok(2.0, "lower"), "lse_d": _ok(7.0, "lower")},
        "s01_t05": {"psnr": _ok(10.0), "lmd": _ok(4.0, "lower"), "lse_d": _ok(6.0, "lower")},
    }
    frames = {"s01_t03": 10, "s01_t04": 20, "s01_t05": 70}
    means = mean_metrics(per_sequence, frames)
    assert means["psnr"] == {
        "value": pytest.approx(14.0, abs=1e-12), "status": "ok", "reason": "", "direction": "higher",
        "weight_id": None, "details": {"weighting": "frames", "num_frames": 100},
    }  # fmt: skip
    assert means["lmd"]["value"] == pytest.approx((10 * 1 + 20 * 2 + 70 * 4) / 100, abs=1e-12)  # 3.3
    assert means["lse_d"]["value"] == pytest.approx((80 + 140 + 420) / 100, abs=1e-12)  # 6.4
    assert means["lse_d_video"]["value"] == pytest.approx(7.0, abs=1e-12)  # every video once
    assert means["psnr"]["details"]["num_frames"] == 100
    assert means["lse_d_video"]["details"]["num_videos"] == 3
    assert means["lmd"]["direction"] == "lower" and means["psnr"]["direction"] == "higher"
    # the order of the sequences does not matter
    reordered = mean_metrics(dict(reversed(list(per_sequence.items()))), frames)
    assert reordered["psnr"]["value"] == pytest.approx(14.0, abs=1e-12)


def test_mean_is_not_ok_when_any_sequence_is_not():
    per_sequence = {
        "a": {"psnr": _ok(30.0)},
        "b": {"psnr": {**_ok(20.0), "value": None, "status": "missing", "reason": "no face"}},
        "c": {"psnr": _ok(10.0)},
    }
    means = mean_metrics(per_sequence, {"a": 10, "b": 20, "c": 70})
    assert means["psnr"] == {
        "value": None, "status": "missing", "direction": "higher", "reason":
        "1/3 sequences not ok (e.g. b: no face)", "weight_id": None, "details": {},
    }  # fmt: skip
    means = mean_metrics({"b": per_sequence["b"]}, {"b": 20})  # the only sequence: its reason as it is
    assert means["psnr"]["reason"] == "no face" and means["psnr"]["status"] == "missing"
    # a metric absent from one sequence is not ok either
    del per_sequence["b"]["psnr"]
    means = mean_metrics(per_sequence, {"a": 10, "b": 20, "c": 70})
    assert means["psnr"]["status"] == "missing" and "b: not computed" in means["psnr"]["reason"]


# ------------------------------------------------------------------- PSNR / SSIM contracts (mutation review)
def test_psnr_masks_as_png_values_and_no_warnings():
    """Masks as read from the dataset's PNGs (0/255) score like boolean masks; identical frames give inf
    and an empty mask NaN without a numpy warning."""
    import warnings

    pred, gt = _channel_error_frames()
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 2:6, 3:9] = True
    masks[1, 8:, :] = True
    png = masks.astype(np.uint8) * 255
    np.testing.assert_array_equal(psnr_per_frame(pred, gt, png), psnr_per_frame(pred, gt, masks))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isinf(psnr_per_frame(gt, gt)).all()
        assert np.isnan(psnr_per_frame(pred, gt, np.zeros_like(masks))).all()


def test_ssim_data_range_and_frame_size_checks():
    from skimage.metrics import structural_similarity

    from benchmark.metrics.image import ssim_map, ssim_per_frame

    rng = np.random.default_rng(5)
    gt = rng.random((1, 24, 20, 3)) * 255
    pred = np.clip(gt + 20 * rng.standard_normal(gt.shape), 0, 255)
    to_torch = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)  # noqa: E731
    ours = float(ssim_map(to_torch(pred), to_torch(gt), data_range=255.0).mean())
    ref = structural_similarity(
        pred[0], gt[0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255,
        channel_axis=-1,
    )  # fmt: skip
    assert ours == pytest.approx(ref, abs=1e-10)
    for height, width in ((10, 64), (64, 10)):
        frames = np.zeros((1, height, width, 3))
        with pytest.raises(ValueError, match=rf"at least 11x11, got \({height}, {width}\)"):
            ssim_per_frame(frames, frames)
    exactly = np.zeros((1, 11, 11, 3))
    np.testing.assert_allclose(ssim_per_frame(exactly, exactly), 1.0)  # 11 x 11 is enough


def test_ssim_is_computed_in_float64_and_over_every_batch():
    from benchmark.metrics.image import ssim_per_frame

    rng = np.random.default_rng(6)
    gt = rng.random((20, 16, 16, 3)).astype(np.float32)  # 20 frames: more than one batch of 16
    pred = np.clip(gt + 0.1 * rng.standard_normal(gt.shape), 0, 1).astype(np.float32)
    as64 = ssim_per_frame(pred.astype(np.float64), gt.astype(np.float64))
    np.testing.assert_array_equal(ssim_per_frame(pred, gt), as64)  # float32 input, float64 arithmetic
    assert len(as64) == 20
    one_by_one = [ssim_per_frame(pred[t : t + 1], gt[t : t + 1])[0] for t in range(20)]
    np.testing.assert_allclose(as64, one_by_one, atol=1e-12)


def test_masked_ssim_per_frame_masks_single_pixel_and_empty():
    """Each frame's masked SSIM is the mean of its own map over its own (cropped) mask: two frames with
    different masks in one batch, a mask of one valid pixel (that pixel's SSIM), an empty mask (NaN)."""
    from benchmark.metrics.image import ssim_map, ssim_per_frame

    rng = np.random.default_rng(7)
    gt = rng.random((3, 20, 20, 3))
    pred = np.clip(gt + 0.2 * rng.standard_normal(gt.shape), 0, 1)
    full_map = ssim_map(torch.from_numpy(pred).permute(0, 3, 1, 2), torch.from_numpy(gt).permute(0, 3, 1, 2))
    full_map = full_map.mean(dim=1).numpy()  # [3, 10, 10]: valid region of a 20 x 20 frame
    masks = np.zeros((3, 20, 20), bool)
    masks[0, 5:15, 5:10] = True  # map rows 0-9, columns 0-4
    masks[1, 7, 12] = True  # exactly one valid pixel: map (2, 7)
    # frame 2: empty
    expected = [full_map[0, :, :5].mean(), full_map[1, 2, 7], np.nan]
    np.testing.assert_allclose(ssim_per_frame(pred, gt, masks), expected, atol=1e-12)


# ------------------------------------------------------------- LMD input types (mutation review)
def test_lmd_computes_in_float64_and_accepts_integer_flags():
    gt = _face68(3, seed=3)
    pred = gt + np.random.default_rng(4).normal(0, 2, gt.shape)
    as64 = lmd_per_frame(pred, gt, IBUG68_MOUTH)
    pred32, gt32 = pred.astype(np.float32), gt.astype(np.float32)
    np.testing.assert_array_equal(
        lmd_per_frame(pred32, gt32, IBUG68_MOUTH),
        lmd_per_frame(pred32.astype(np.float64), gt32.astype(np.float64), IBUG68_MOUTH),
    )
    flags = np.array([1, 0, 1])  # 0/1 integers, e.g. read back from a file, mean the same as booleans
    found = lmd_from_ibug68(pred, flags, gt, np.ones(3, np.uint8))
    assert found["failed_pred"] == 1 and found["failed_either"] == 1 and found["failed_gt"] == 0
    np.testing.assert_array_equal(found["scored"], [True, False, True])
    np.testing.assert_allclose(found["mouth"][[0, 2]], as64[[0, 2]], atol=1e-12)
    assert np.isnan(found["mouth"][1])


# ------------------------------------------------------- results.json entries and means (mutation review)
def test_metric_entry_from_a_result_and_from_a_dict():
    import dataclasses
    import types

    from benchmark.metrics.compute import MetricResult
    from benchmark.results import metric_entry

    result = MetricResult("lmd", np.float32(2.5), "ok", "", "det:abc", {"per_frame": np.array([2.0, 3.0])})
    assert metric_entry(result) == {
        "value": 2.5, "status": "ok", "reason": "", "weight_id": "det:abc", "direction": "lower",
        "details": {"per_frame": [2.0, 3.0]},
    }  # fmt: skip
    assert metric_entry(dataclasses.asdict(result)) == metric_entry(result)
    missing = {"name": "lpips", "value": None, "status": "missing", "reason": "no AlexNet file"}
    assert metric_entry(missing) == {
        "value": None, "status": "missing", "reason": "no AlexNet file", "weight_id": None,
        "direction": "lower", "details": {},
    }  # fmt: skip
    bare = types.SimpleNamespace(name="psnr", value=31)  # defaults: ok, no reason, no details
    assert metric_entry(bare) == {
        "value": 31.0, "status": "ok", "reason": "", "weight_id": None, "direction": "higher", "details": {},
    }  # fmt: skip
    assert metric_entry({"name": "psnr", "value": 1.0, "reason": None, "details": None})["reason"] == ""


def test_jsonable_turns_arrays_and_other_objects_into_json():
    from pathlib import Path

    from benchmark.results import _jsonable

    value = {"a": np.arange(3), "b": np.float32(0.5), "c": Path("x/y"), "d": [np.int64(4)], "e": "s"}
    assert _jsonable(value) == {"a": [0, 1, 2], "b": 0.5, "c": "x/y", "d": [4], "e": "s"}


def test_mean_of_bad_entries_keeps_their_status_reason_and_weights():
    def entry(value, status="ok", reason="", weight_id=None, details=None):
        return {"value": value, "status": status, "reason": reason, "weight_id": weight_id,
                "direction": "higher", "details": details or {}}  # fmt: skip

    frames = {"a": 10, "b": 30}
    # cross-id: every sequence skipped for the same reason -> the mean is skipped with that reason
    skipped = {s: {"psnr": entry(None, "skipped", "cross-id: no ground truth")} for s in frames}
    means = mean_metrics(skipped, frames)
    assert means["psnr"]["status"] == "skipped" and means["psnr"]["reason"] == "cross-id: no ground truth"
    # different reasons -> counted, with the first one as the example
    different = {"a": {"psnr": entry(None, "missing", "no face")}, "b": {"psnr": entry(None, "missing", "x")}}
    assert mean_metrics(different, frames)["psnr"]["reason"] == "2/2 sequences not ok (e.g. a: no face)"
    # absent from two sequences, "not computed" in the third: all bad for one reason, said once
    absent = {"a": {}, "b": {"psnr": entry(None, "missing", "not computed")}, "c": {"lmd": entry(1.0)}}
    means = mean_metrics(absent, {"a": 10, "b": 30, "c": 5})
    assert means["psnr"]["status"] == "missing" and means["psnr"]["reason"] == "not computed"
    only = mean_metrics(
        {"a": {"lmd": entry(1.0)}, "b": {"psnr": entry(None, "missing", "not computed")}}, frames
    )
    assert only["psnr"]["status"] == "missing"
    # weight ids of the sequences, sorted and joined, on ok and on bad means
    weights = {"a": {"lpips": entry(0.1, weight_id="w:2")}, "b": {"lpips": entry(0.3, weight_id="w:1")}}
    assert mean_metrics(weights, frames)["lpips"]["weight_id"] == "w:1,w:2"
    weights["b"]["lpips"] = entry(None, "missing", "gone", weight_id="w:1")
    assert mean_metrics(weights, frames)["lpips"]["weight_id"] == "w:1,w:2"
    same = {s: {"lpips": entry(0.2, weight_id="w:1")} for s in frames}
    assert mean_metrics(same, frames)["lpips"]["weight_id"] == "w:1"


def test_mean_keeps_only_the_conventions_every_sequence_shares():
    def entry(details):
        return {"value": 1.0, "status": "ok", "reason": "", "weight_id": None, "direction": "lower",
                "details": details}  # fmt: skip

    one = {"detector": "mediapipe", "resolution": "64x48", "units": "px", "subset": None}
    two = {"detector": "mediapipe", "resolution": "32x24", "units": "px"}
    means = mean_metrics({"a": {"lmd": entry(one)}, "b": {"lmd": entry(two)}}, {"a": 1, "b": 1})
    assert means["lmd"]["details"] == {"weighting": "frames", "num_frames": 2, "detector": "mediapipe",
                                       "units": "px"}  # fmt: skip
    single = mean_metrics({"a": {"lmd": entry(one)}}, {"a": 3})  # one sequence: all of its conventions
    assert single["lmd"]["details"] == {"weighting": "frames", "num_frames": 3, "detector": "mediapipe",
                                        "resolution": "64x48", "units": "px"}  # fmt: skip
    no_details = {"value": 1.0, "status": "ok", "reason": "", "weight_id": None, "direction": "lower"}
    means = mean_metrics({"a": {"lmd": no_details}, "b": {"lmd": entry(one)}}, {"a": 1, "b": 1})
    assert means["lmd"]["details"] == {"weighting": "frames", "num_frames": 2}


# ------------------------------------------------------------------------- lip box (mutation review)
def _mouth_at(centres: list[tuple[float, float]], half: float = 3.0) -> np.ndarray:
    """[T, 478, 2] MediaPipe points whose 20 iBUG mouth points lie on a square around each centre."""
    points = np.zeros((len(centres), 478, 2))
    ring = np.stack([np.cos(np.arange(20) * np.pi / 10), np.sin(np.arange(20) * np.pi / 10)], 1) * half
    for t, centre in enumerate(centres):
        points[t, MEDIAPIPE_TO_IBUG68[48:68]] = np.asarray(centre) + ring
    return points


def test_lip_boxes_at_the_edges_and_for_undetected_frames():
    from benchmark.metrics.mouth import mouth_boxes

    height, width, size = 40, 60, 12
    # frame 0 near the top-left corner, 1 near the bottom-right corner, 2 undetected, 3 NaN points,
    # 4 in the middle: boxes are shifted inside the frame, never shrunk
    points = _mouth_at([(2.0, 3.0), (58.0, 39.0), (30.0, 20.0), (30.0, 20.0), (25.0, 17.0)])
    points[3, MEDIAPIPE_TO_IBUG68[50]] = np.nan
    detected = np.array([True, True, False, True, True])
    boxes = mouth_boxes(points, detected, size, (height, width))
    np.testing.assert_array_equal(boxes.valid, [True, True, False, False, True])
    np.testing.assert_array_equal(boxes.corners[[0, 1, 4]], [[0, 0], [width - size, height - size], [19, 11]])
    # frames without a face get the box of the first frame with one (frame 0), not of another one
    np.testing.assert_array_equal(boxes.corners[[2, 3]], [[0, 0], [0, 0]])
    integer_flags = mouth_boxes(points, detected.astype(np.int64), size, (height, width))
    np.testing.assert_array_equal(integer_flags.valid, boxes.valid)
    np.testing.assert_array_equal(integer_flags.corners, boxes.corners)
    frames = np.arange(5 * height * width).reshape(5, height, width, 1)
    crops = boxes.crop(frames)
    assert crops.shape == (5, size, size, 1)
    np.testing.assert_array_equal(crops[4], frames[4, 11:23, 19:31])
    with pytest.raises(ValueError):
        boxes.crop(frames[:4])  # one box per frame: a frame count that does not match is an error


def test_mouth_extent_and_box_size_by_hand():
    from benchmark.metrics.mouth import mouth_box_size, mouth_extent

    points = _mouth_at([(20.0, 20.0), (30.0, 20.0), (30.0, 25.0)], half=3.0)  # ring of radius 3: 6 x 6
    np.testing.assert_allclose(mouth_extent(points, np.array([True, False, True])), [6.0, 6.0], atol=1e-9)
    np.testing.assert_allclose(mouth_extent(points, np.array([1, 0, 0])), [6.0], atol=1e-9)  # one frame
    assert mouth_extent(points, np.zeros(3, bool)).shape == (0,)
    assert mouth_box_size(np.array([10.0, 10.0, 50.0]), (40, 60)) == 16  # median 10, padded by 1.6
    assert mouth_box_size(np.array([2.0]), (40, 60)) == 11  # at least one SSIM window
    assert mouth_box_size(np.array([100.0]), (40, 60)) == 40  # at most the frame's shorter side
    assert (
        mouth_box_size(np.array([np.nan, 20.0]), (40, 60)) == 32
        and mouth_box_size(np.zeros(0), (40, 60)) == 0
    )
