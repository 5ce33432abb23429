"""``--set``: method settings of ``gsbench run`` (validated up front, recorded in config.json, hashed so a
changed setting re-runs the job and an unchanged one resumes) and the same parser in ``track`` and ``ingest``.

A test-only method with a budget config (``tunable-test``) renders a flat grey head whose shade is one of
its settings, so a setting reaching the job shows in what was rendered and scored.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from avatars.methods.base import BUDGETS, Method, RenderOutput, RenderRequest, TrainStats
from benchmark.cli import main
from benchmark.runner import RunOptions, canonical_hash, plan_jobs, run_benchmark
from gsbench.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Look:
    shade: float = 0.5
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class TunableConfig:
    iterations: int = 1
    look: Look = Look()


class TunableMethod(Method):
    """Test-only: a grey head of ``look.shade``; ``iterations`` is reported as trained iterations."""

    name = "tunable-test"
    description = "test-only method with settings"
    protocols = ("mono-front",)
    budget_configs = {budget: TunableConfig(iterations=1 + i) for i, budget in enumerate(BUDGETS)}

    def train(self, train_view, budget, workdir):
        self._config = self.budget_config(budget)
        return TrainStats(iterations=self._config.iterations)

    def render(self, request: RenderRequest) -> RenderOutput:
        shape = (request.num_frames, request.camera.height, request.camera.width)
        colour = self._config.look.shade * np.asarray(self._config.look.tint, np.float32)
        return RenderOutput(np.broadcast_to(colour, (*shape, 3)).copy(), np.ones(shape, np.float32))

    def save(self, path):
        (Path(path) / "look.json").write_text(json.dumps(dataclasses.asdict(self._config)))

    def load(self, path):
        raw = json.loads((Path(path) / "look.json").read_text())
        self._config = TunableConfig(
            raw["iterations"], Look(raw["look"]["shade"], tuple(raw["look"]["tint"]))
        )


@pytest.fixture
def tunable(monkeypatch):
    from avatars.methods import BUILTIN_METHODS

    monkeypatch.setitem(BUILTIN_METHODS, TunableMethod.name, f"{__name__}:TunableMethod")
    return TunableMethod


def _cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def _options(*overrides: str, budget: str = "smoke") -> RunOptions:
    return RunOptions(
        methods="tunable-test",
        protocols=("mono-front",),
        subjects=("s01",),
        budget=budget,
        device="cpu",
        videos=False,
        overrides=overrides,
    )


def test_settings_reach_the_job_config_hash_and_render_and_resume(tunable, tiny_dataset_master, tmp_path):
    runs = tmp_path / "runs"
    job_dir = runs / "tiny" / "mono-front" / "tunable-test" / "s01"
    code = _cli(
        [
            "--quiet",
            "run",
            "--method=tunable-test",
            f"--data={tiny_dataset_master}",
            f"--runs={runs}",
            "--budget=smoke",
            "--protocol=mono-front",
            "--subject=s01",
            "--device=cpu",
            "--no-videos",
            "--set=tunable-test.look.shade=0.25",
            "--set=tunable-test.look.tint=[1, 0, 0]",
            "--set=tunable-test.smoke.iterations=7",
        ]
    )
    assert code == 0
    config = json.loads((job_dir / "config.json").read_text())
    expected = {"look.shade": 0.25, "look.tint": [1, 0, 0], "iterations": 7}
    assert config["overrides"] == expected
    assert config["method_config"]["look"] == {"shade": 0.25, "tint": [1.0, 0.0, 0.0]}
    assert config["method_config"]["iterations"] == 7
    results = json.loads((job_dir / "results.json").read_text())
    assert results["config_hash"] == canonical_hash(config)
    assert results["method_info"]["overrides"] == expected and results["train_stats"]["iterations"] == 7
    saved = json.loads((job_dir / "checkpoint" / "look.json").read_text())
    assert saved == {"iterations": 7, "look": {"shade": 0.25, "tint": [1.0, 0.0, 0.0]}}

    same = run_benchmark(
        tiny_dataset_master,
        runs,
        _options(
            "tunable-test.smoke.iterations=7",
            "tunable-test.look.tint=[1, 0, 0]",
            "tunable-test.look.shade=0.25",
        ),
    )
    assert [o.status for o in same.outcomes] == ["skipped"]  # same settings (in any order): resumed
    changed = run_benchmark(
        tiny_dataset_master, runs, _options("tunable-test.look.shade=0.75", "tunable-test.smoke.iterations=7")
    )
    assert [o.status for o in changed.outcomes] == ["ok"]  # a changed setting re-runs the job
    rerun = json.loads((job_dir / "results.json").read_text())
    assert rerun["config_hash"] != results["config_hash"]
    assert json.loads((job_dir / "config.json").read_text())["overrides"] == {
        "look.shade": 0.75,
        "iterations": 7,
    }
    assert json.loads((job_dir / "checkpoint" / "look.json").read_text())["look"]["shade"] == 0.75

    plain = run_benchmark(tiny_dataset_master, runs, _options())
    assert [o.status for o in plain.outcomes] == ["ok"]
    config = json.loads((job_dir / "config.json").read_text())
    assert "overrides" not in config and "overrides" not in config["method_config"]
    assert "overrides" not in json.loads((job_dir / "results.json").read_text())["method_info"]
    assert [o.status for o in run_benchmark(tiny_dataset_master, runs, _options()).outcomes] == ["skipped"]


def test_budget_settings_win_over_every_budget_ones_and_apply_only_to_their_budget(
    tunable, tiny_dataset_master, tmp_path
):
    overrides = (
        "tunable-test.iterations=3",
        "tunable-test.smoke.iterations=7",
        "tunable-test.look.shade=0.1",
    )
    smoke = plan_jobs(tiny_dataset_master, tmp_path, _options(*overrides))
    assert smoke.jobs[0].overrides == {"iterations": 7, "look.shade": 0.1}
    quick = plan_jobs(tiny_dataset_master, tmp_path, _options(*overrides, budget="quick"))
    assert quick.jobs[0].overrides == {"iterations": 3, "look.shade": 0.1}
    assert "tunable-test: --set tunable-test.smoke.* not used at budget quick" in quick.notes
    unset = plan_jobs(tiny_dataset_master, tmp_path, _options())
    assert unset.jobs[0].overrides == {}


def test_settings_of_a_method_not_run_are_checked_and_noted(tunable, tiny_dataset_master, tmp_path):
    options = dataclasses.replace(_options("tunable-test.look.shade=0.2"), methods="retrieval")
    plan = plan_jobs(tiny_dataset_master, tmp_path, options)
    assert (
        "tunable-test: --set tunable-test.* not used, tunable-test is not among the methods run" in plan.notes
    )
    assert all(job.overrides == {} for job in plan.jobs)
    with pytest.raises(ConfigError, match="'look.shad'"):
        plan_jobs(
            tiny_dataset_master,
            tmp_path,
            dataclasses.replace(_options("tunable-test.look.shad=0.2"), methods="retrieval"),
        )


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (
            "tunable-test.look.shad=0.2",
            "error: --set tunable-test.*: unknown tunable-test key 'look.shad' ('look.shad': did you mean "
            "'look.shade'?) (fix: use one of: iterations, look.shade, look.tint)",
        ),
        (
            "tunable-test.smoke.look.shade=dark",
            "error: --set tunable-test.smoke.*: tunable-test key 'look.shade' expects a number, got 'dark' "
            "(fix: e.g. look.shade=0.5)",
        ),
        (
            "tunable-tset.look.shade=0.2",
            "error: --set 'tunable-tset.look.shade=0.2': unknown method 'tunable-tset' (did you mean "
            "'tunable-test'?)",
        ),
        ("tunable-test.quick=3", "error: --set 'tunable-test.quick=3' names no setting of tunable-test"),
        ("shade", "error: --set 'shade' is not KEY=VALUE with a dotted KEY"),
    ],
)
def test_a_bad_setting_is_one_error_line_and_no_job_starts(
    tunable, tiny_dataset_master, tmp_path, capsys, option, expected
):
    runs = tmp_path / "runs"
    code = _cli(
        [
            "--quiet",
            "run",
            "--method=tunable-test",
            f"--data={tiny_dataset_master}",
            f"--runs={runs}",
            "--set",
            option,
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(expected) and "\n" not in err
    assert not runs.exists()


def test_list_settings_prints_every_key_with_its_value_for_the_budget(tunable, capsys):
    assert _cli(["run", "--method=tunable-test", "--budget=quick", "--list-settings"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "tunable-test (quick):",
        "  --set tunable-test.iterations=2",
        "  --set tunable-test.look.shade=0.5",
        "  --set tunable-test.look.tint=[1.0, 1.0, 1.0]",
    ]
    assert _cli(["run", "--method=tunable-test"]) == 2  # without --list-settings, --data is required


def test_track_takes_the_same_set_syntax(tiny_dataset, monkeypatch, capsys):
    import tracking.fit

    seen = {}

    def fake_track_dataset(dataset, head_model, config, **kwargs):
        seen["config"] = config
        return {"subjects": {}}

    monkeypatch.setattr(tracking.fit, "track_dataset", fake_track_dataset)
    argv = ["track", str(tiny_dataset), "--no-plots"]
    # the spelling before the shared parser (KEY=VALUE, booleans as 1/0) keeps working; tracking.KEY too
    assert (
        _cli(
            [
                *argv,
                "--set",
                "dense_iterations=200",
                "--set",
                "dense_jaw=1",
                "--set",
                "tracking.robust_scale_px=2",
            ]
        )
        == 0
    )
    config = seen["config"]
    assert (config.dense_iterations, config.dense_jaw, config.robust_scale_px, config.dense) == (
        200,
        True,
        2.0,
        True,
    )
    assert _cli([*argv, "--landmarks-only", "--set", "shape_prior=1e-2"]) == 0
    assert (seen["config"].dense, seen["config"].shape_prior) == (False, 0.01)
    capsys.readouterr()
    assert _cli([*argv, "--set", "dense_iteration=5"]) == 1
    err = capsys.readouterr().err
    assert "unknown tracking key 'dense_iteration'" in err and "did you mean 'dense_iterations'" in err
    assert "use one of: num_shape, num_expr," in err
    assert _cli([*argv, "--set", "dense=maybe"]) == 1
    assert "tracking key 'dense' expects true or false, got 'maybe'" in capsys.readouterr().err


def test_ingest_takes_the_same_set_syntax(tmp_path, monkeypatch, capsys):
    import capture_tools.ingest
    import capture_tools.monocular

    seen = {}

    def fake_ingest(session, out, params, stages=None, force=False):
        seen["params"] = params
        raise ConfigError("stopped by the test after the parameters were built")

    def fake_ingest_videos(videos, out, params):
        seen["params"] = params
        raise ConfigError("stopped by the test after the parameters were built")

    monkeypatch.setattr(capture_tools.ingest, "ingest", fake_ingest)
    monkeypatch.setattr(capture_tools.monocular, "ingest_videos", fake_ingest_videos)
    session = tmp_path / "session"
    session.mkdir()
    (session / "rig.yaml").write_text("schema_version: 1\n")
    out = str(tmp_path / "dataset")
    argv = ["ingest", str(session), "-o", out, "--sync-min-confidence", "0.2"]
    assert (
        _cli(
            [*argv, "--set", "sync.band_hz=[50, 8000]", "--set", "frames.size=[64, 48]", "--set", "workers=2"]
        )
        == 1
    )
    params = seen.pop("params")
    assert params.sync.band_hz == (50.0, 8000.0) and params.sync.min_confidence == 0.2
    assert (params.frames.size, params.workers) == ((64, 48), 2)
    assert _cli([*argv, "--set", "sync.min_confidence=0.4"]) == 1
    assert seen.pop("params").sync.min_confidence == 0.4  # --set is applied after the other options
    capsys.readouterr()
    assert _cli([*argv, "--set", "sync.min_confidance=0.4"]) == 1
    assert "unknown ingest key 'sync.min_confidance'" in capsys.readouterr().err and "params" not in seen
    assert _cli([*argv, "--set", "tracking.dense_iterations=60", "--set", "tracking.dense_jaw=true"]) == 1
    tracking = seen.pop("params").tracking
    assert (tracking.dense_iterations, tracking.dense_jaw, tracking.num_expr) == (60, True, 50)
    assert _cli(argv) == 1
    assert seen.pop("params").tracking is None  # no tracking setting: the track stage's defaults
    videos = tmp_path / "videos"
    videos.mkdir()
    assert _cli(["ingest", str(videos), "-o", out, "--set", "min_pause_s=0.3"]) == 1
    assert seen.pop("params").min_pause_s == 0.3
    capsys.readouterr()
    assert _cli(["ingest", str(videos), "-o", out, "--set", "tracking.dense_iterations=60"]) == 1
    err = capsys.readouterr().err
    assert "video ingest tracks with the monocular defaults" in err
    assert f"--no-track, then gsbench track {out} --set tracking.dense_iterations=60" in err


def test_the_track_stage_key_changes_only_with_tracking_settings():
    from capture_tools.ingest import IngestParams
    from capture_tools.stages.track import STAGE
    from tracking.fit import TrackingConfig

    assert STAGE.params(IngestParams()) == {}  # an ingest without tracking settings resumes as before
    changed = STAGE.params(IngestParams(tracking=TrackingConfig(dense_iterations=60)))
    assert changed["tracking"]["dense_iterations"] == 60
    assert changed != STAGE.params(IngestParams(tracking=TrackingConfig()))
