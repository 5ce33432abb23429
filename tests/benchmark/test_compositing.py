"""Compositing rules (benchmark.protocols): the head over the clean plate inside the GT mask, the GT frame
outside; the version-1 fallback without a plate; cross-id over the plate; a method's own compositor as a
separate track that the leaderboard never ranks with the shared rule."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from avatars.methods.base import Method, RenderOutput, TrainStats
from benchmark.dataset import load_dataset
from benchmark.protocols import composite, compositing_record, eval_items, harness_background
from benchmark.runner import Job, RunOptions, plan_jobs, scored_frames
from gsbench.errors import ConfigError
from gsbench.io import write_json

PLATE_RGB = (10, 200, 30)


def test_shared_rule_by_hand():
    gt = np.full((1, 1, 2, 3), 0.8, np.float32)
    rgb = np.full((1, 1, 2, 3), 0.2, np.float32)
    alpha = np.array([[[0.25, 0.25]]], np.float32)
    mask = np.array([[[True, False]]])  # pixel 0 inside the head mask, pixel 1 outside
    plate = np.full((1, 2, 3), 0.4, np.float32)
    out = composite(rgb, alpha, gt, mask, plate)
    np.testing.assert_allclose(out[0, 0, 0], 0.25 * 0.2 + 0.75 * 0.4, atol=1e-7)  # over the plate
    np.testing.assert_allclose(out[0, 0, 1], 0.25 * 0.2 + 0.75 * 0.8, atol=1e-7)  # over the GT frame
    out = composite(rgb, alpha, gt, mask)  # no plate: black inside the mask (rule version 1)
    np.testing.assert_allclose(out[0, 0, 0], 0.25 * 0.2, atol=1e-7)
    background, rule = harness_background(None, None, plate, rgb.shape)
    assert rule == "cross-id-over-plate" and np.allclose(background, 0.4)
    assert harness_background(None, None, None, rgb.shape)[1] == "cross-id-over-black"


def _job(compositing: str = "harness") -> Job:
    return Job("", "tiny", "", "mono-front", None, "m", "s01", "smoke", 0, "cpu", "", compositing=compositing)


def _white_head(item, alpha: float) -> RenderOutput:
    shape = (item.request.num_frames, item.request.camera.height, item.request.camera.width)
    return RenderOutput(np.ones((*shape, 3), np.float32), np.full(shape, alpha, np.float32))


def _write_plate(dataset) -> None:
    height, width = dataset.image_size
    plate = np.empty((height, width, 3), np.uint8)
    plate[:] = PLATE_RGB
    (dataset.root / "backgrounds").mkdir(exist_ok=True)
    cv2.imwrite(str(dataset.background_path(dataset.frontal_camera)), plate[..., ::-1])


def test_runner_scores_over_the_dataset_plate(tiny_dataset):
    dataset = load_dataset(tiny_dataset)
    (item,) = eval_items(dataset, "mono-front", "s01")
    _, _, _, rule = scored_frames(_job(), dataset, item, _white_head(item, 0.25))
    assert rule == "head-over-black"  # the tiny dataset has no plates: the fallback, named
    _write_plate(dataset)
    pred, gt, masks, rule = scored_frames(_job(), dataset, item, _white_head(item, 0.25))
    assert rule == "head-over-plate" and masks.any() and (~masks).any()
    plate = np.array(PLATE_RGB, np.float32) / 255.0
    np.testing.assert_allclose(
        pred[masks], np.broadcast_to(0.25 + 0.75 * plate, pred[masks].shape), atol=1e-6
    )
    np.testing.assert_allclose(pred[~masks], 0.25 + 0.75 * gt[~masks], atol=1e-6)
    (cross,) = eval_items(dataset, "cross-id", "s01")
    pred, _, masks, rule = scored_frames(_job(), dataset, cross, _white_head(cross, 0.0))
    assert rule == "cross-id-over-plate" and masks is None
    np.testing.assert_allclose(pred, np.broadcast_to(plate, pred.shape), atol=1e-6)


class OwnCompositorMethod(Method):
    """Test-only: a compositor of its own that paints the blanked background's hole grey."""

    name = "own-compositor-test"
    compositing = ("harness", "own")
    received: list[np.ndarray] = []

    def train(self, train_view, budget, workdir):
        return TrainStats()

    def render(self, request):  # pragma: no cover - not used here
        raise AssertionError

    def composite(self, output, backgrounds):
        type(self).received.append(backgrounds)
        hole = backgrounds.sum(-1, keepdims=True) == 0
        return np.where(hole, 0.5, backgrounds)

    def save(self, path):  # pragma: no cover
        pass

    def load(self, path):  # pragma: no cover
        pass


def test_own_compositor_gets_the_blanked_frame_and_is_scored_as_is(tiny_dataset):
    dataset = load_dataset(tiny_dataset)
    _write_plate(dataset)  # not used by this rule outside cross-id
    (item,) = eval_items(dataset, "mono-front", "s01")
    method = OwnCompositorMethod()
    pred, gt, masks, rule = scored_frames(_job("own"), dataset, item, _white_head(item, 1.0), method)
    assert rule == "own-compositor"
    (background,) = OwnCompositorMethod.received[-1:]
    np.testing.assert_array_equal(background[masks], 0.0)  # head region blanked
    np.testing.assert_allclose(background[~masks], gt[~masks])
    np.testing.assert_allclose(pred[masks], 0.5)  # its frame, not the harness composite of a white head


def test_plan_own_compositor_jobs(tiny_dataset_master, tmp_path):
    from avatars.methods import BUILTIN_METHODS

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(BUILTIN_METHODS, OwnCompositorMethod.name, f"{__name__}:OwnCompositorMethod")
        plan = plan_jobs(
            tiny_dataset_master,
            tmp_path,
            RunOptions(
                methods=f"{OwnCompositorMethod.name},retrieval",
                protocols=("mono-front",),
                compositing="own",
                device="cpu",
            ),  # fmt: skip
        )
    assert {j.method for j in plan.jobs} == {OwnCompositorMethod.name}
    assert all(Path(j.run_dir).parent.name == f"{OwnCompositorMethod.name}+own-compositor" for j in plan.jobs)
    assert any("retrieval: has no compositor of its own" in n for n in plan.notes)
    with pytest.raises(ConfigError, match="no job to run"):
        plan_jobs(
            tiny_dataset_master, tmp_path, RunOptions(methods="retrieval", compositing="own", device="cpu")
        )


def _results(runs: Path, method: str, subject: str, psnr: float, mode: str) -> None:
    folder = method if mode == "harness" else f"{method}+own-compositor"
    rule = "head-over-plate" if mode == "harness" else "own-compositor"
    write_json(
        runs / "ds" / "mono-front" / folder / subject / "results.json",
        {
            "schema": "gsbench.results",
            "schema_version": 1,
            "status": "ok",
            "dataset": {"name": "ds", "hash": "d" * 64, "subjects": ["a", "b"]},
            "protocol": "mono-front",
            "method": method,
            "subject": subject,
            "method_info": {"oracle": False},
            "compositing": compositing_record(mode, [rule], "p" * 64),
            "metrics": {"psnr": {"value": psnr, "status": "ok", "direction": "higher"}},
        },
    )


def test_leaderboard_never_ranks_the_own_compositor_track_with_the_shared_rule(tmp_path):
    from leaderboards.publish import publish, render_markdown

    runs = tmp_path / "runs"
    for subject in ("a", "b"):
        _results(runs, "plain", subject, 25.0, "harness")
        _results(runs, "fancy", subject, 24.0, "harness")
        _results(runs, "fancy", subject, 40.0, "own")  # better, but on the other track
    (board,) = publish(runs, tmp_path / "out", plot=False)
    means = {r["method"]: r for r in board.rows if r["row_type"] == "mean"}
    assert set(means) == {"plain", "fancy", "fancy+own-compositor"}
    assert means["plain"]["rank"] == "1" and means["fancy"]["rank"] == "2"
    assert (
        means["fancy+own-compositor"]["rank"] == "" and means["fancy+own-compositor"]["psnr ↑"] == "40.0000"
    )
    assert means["fancy+own-compositor"]["compositing"] == "own-compositor"
    text = render_markdown(board, reference=False)
    assert "`head-over-plate`: head over the camera's clean plate" in text
    assert "`own-compositor`: the method's own compositor" in text
    assert (
        json.loads((runs / "ds/mono-front/plain/a/results.json").read_text())["compositing"]["track"]
        == "shared"
    )
