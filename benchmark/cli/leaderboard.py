"""``gsbench leaderboard publish``: results.json files -> leaderboards/<dataset>/<protocol>.{csv,md,png}."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("leaderboard")
def leaderboard() -> None:
    """Leaderboards generated from results files (never edited by hand)."""


@leaderboard.command("publish")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path), default=Path("leaderboards"), show_default=True
)
@click.option("--no-plot", is_flag=True, help="Skip the PNG plots.")
@click.option(
    "--site",
    "site_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the static site (tables, plots, videos) into this folder; see leaderboards/site.py.",
)
def publish(runs_dir: Path, out_dir: Path, no_plot: bool, site_dir: Path | None) -> None:
    """Merge every results.json under RUNS into the CSVs under OUT, then print the tables."""
    from leaderboards.publish import markdown_summary
    from leaderboards.publish import publish as publish_boards

    boards = publish_boards(runs_dir, out_dir, plot=not no_plot)
    click.echo(markdown_summary(boards, reference=False))
    for board in boards:
        written = [board.csv_path, board.markdown_path] + ([] if no_plot else [board.plot_path])
        click.echo(f"wrote {', '.join(str(p) for p in written)}", err=True)
    if site_dir is not None:
        from leaderboards.site import build_site

        click.echo(f"site: {build_site(boards, runs_dir, site_dir)}", err=True)
