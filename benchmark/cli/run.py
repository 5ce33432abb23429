"""``gsbench run --method all --data DATASET``: train, render and score every method x subject x protocol."""

from __future__ import annotations

from pathlib import Path

import click

from benchmark.cli._options import lmd_detector_option, lse_boxes_option, set_option
from gsbench.errors import StageError


def _split(values: tuple[str, ...]) -> tuple[str, ...] | None:
    names = tuple(v.strip() for value in values for v in value.split(",") if v.strip())
    return names or None


@click.command("run")
@click.option(
    "--method",
    "methods",
    default="all",
    show_default=True,
    help="'all' or a comma-separated list of methods (see `gsbench methods`).",
)
@click.option(
    "--data", type=click.Path(path_type=Path), help="Dataset folder (from `gsbench ingest`). Required."
)
@click.option(
    "--protocol",
    "protocols",
    multiple=True,
    help="mono-front, multiview, cross-id (repeat or comma-separate; default: all a method supports).",
)
@click.option("--subject", "subjects", multiple=True, help="Subjects to run (default: all).")
@click.option(
    "--budget",
    type=click.Choice(["smoke", "quick", "paper"]),
    default="quick",
    show_default=True,
    help="smoke: seconds (tests); quick: minutes on a CPU; paper: the paper's schedule (GPU).",
)
@click.option(
    "--runs",
    "runs_dir",
    type=click.Path(path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Where job folders go: RUNS/<dataset>/<protocol>/<method>/<subject>/.",
)
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option(
    "--address", default=None, help="Ray cluster address (with --executor ray; default: start a local one)."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--force", is_flag=True, help="Redo jobs whose results are already there.")
@click.option("--no-videos", is_flag=True, help="Skip the mp4s and comparison images (metrics only).")
@click.option(
    "--syncnet",
    default="syncnet-v2",
    show_default=True,
    help="SyncNet for LSE-D/LSE-C: syncnet-v2 (official) or a syncnet-gsbench-<sha8> trained here "
    "(gsbench weights train-syncnet). Missing weights make LSE 'missing', never substituted.",
)
@click.option(
    "--compositing",
    type=click.Choice(["harness", "own"]),
    default="harness",
    show_default=True,
    help="harness: the shared rule (head over the clean plate inside the GT mask, GT outside); own: the "
    "method's own compositor (methods that have one), a separate track never ranked with the shared rule.",
)
@set_option(
    "hicode.quick.head.refine_steps=500",
    "METHOD.KEY applies to every budget of METHOD, METHOD.BUDGET.KEY only to that budget (and wins); the "
    "settings are recorded in each job's config.json and change its config hash (the job re-runs)",
)
@click.option(
    "--list-settings",
    is_flag=True,
    help="Print the settings --set can change for the selected methods at --budget (with their values) "
    "and exit.",
)
@lse_boxes_option
@lmd_detector_option
def run(
    methods,
    data,
    protocols,
    subjects,
    budget,
    runs_dir,
    executor,
    address,
    seed,
    device,
    force,
    no_videos,
    syncnet,
    compositing,
    overrides,
    list_settings,
    lse_boxes,
    lmd_detector,
):
    """Train + render + score; exits non-zero if any job failed (the others still run).

    Method settings: --set METHOD[.BUDGET].KEY=VALUE (repeatable), e.g.
    --set hicode.quick.head.refine_steps=500 or --set audio-plane.fine_iterations=200;
    --list-settings shows the keys."""
    if list_settings:
        _print_settings(methods, budget)
        return
    if data is None:
        raise click.UsageError("Missing option '--data'.")
    from rich.table import Table

    from benchmark.executors import make_executor
    from benchmark.runner import RunOptions, outcome_rows, run_benchmark
    from benchmark.weights import WeightRegistry
    from gsbench.progress import print_table

    WeightRegistry().spec(syncnet)  # an unknown name fails here, before any job starts
    options = RunOptions(
        methods=methods,
        protocols=_split(protocols),
        subjects=_split(subjects),
        budget=budget,
        seed=seed,
        device=device,
        force=force,
        videos=not no_videos,
        syncnet=syncnet,
        compositing=compositing,
        lmd_detector=lmd_detector,
        lse_boxes=lse_boxes,
        overrides=tuple(overrides),
    )
    summary = run_benchmark(data, runs_dir, options, executor=make_executor(executor, address))
    table = Table(title=f"gsbench run: {len(summary.outcomes)} jobs in {runs_dir}")
    for column in ("protocol", "method", "subject", "status", "seconds", "detail"):
        table.add_column(column, overflow="fold")
    for row in outcome_rows(summary):
        style = {"failed": "red", "ok": "green"}.get(row["status"], "")
        table.add_row(
            *(row[c] for c in ("protocol", "method", "subject")),
            f"[{style}]{row['status']}[/]" if style else row["status"],
            row["seconds"],
            row["detail"],
        )
    print_table(table)
    for note in summary.notes:
        click.echo(f"note: {note}")
    if summary.failed:
        raise StageError(
            f"{len(summary.failed)} of {len(summary.outcomes)} jobs failed: "
            + ", ".join(o.job.label for o in summary.failed),
            fix="read the log.txt in each failed job folder, fix, and re-run (finished jobs are skipped)",
        )


def _print_settings(methods: str, budget: str) -> None:
    from benchmark.methods import method_settings, resolve_methods

    for name in resolve_methods(methods):
        settings = method_settings(name, budget)
        click.echo(f"{name} ({budget}):" + ("" if settings else " no settings"))
        for key, value in settings.items():
            click.echo(f"  --set {name}.{key}={_yaml_value(value)}")


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_yaml_value(item) for item in value) + "]"
    return str(value)
