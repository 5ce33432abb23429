"""``gsbench synth OUT``: write a synthetic 16-camera raw rig session with ground truth."""

from __future__ import annotations

import click


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option(
    "--preset",
    default="default",
    show_default=True,
    metavar="tiny|default|full",
    help="Session size: tiny (tests, seconds), default (16 cameras, 2 subjects), full (larger).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same bytes.")
@click.option("--workers", default=None, type=int, help="Worker processes (default: CPU count, at most 4).")
def synth(out: str, preset: str, seed: int, workers: int | None) -> None:
    """Generate a synthetic rig session in OUT (takes, calibration, background plates, rig.yaml,
    ground_truth/, contact_sheet.png)."""
    from capture_tools.synth import generate_session

    summary = generate_session(out, preset=preset, seed=seed, workers=workers)
    click.echo(
        f"{summary.root}: {len(summary.takes)} takes x {len(summary.cameras)} cameras "
        f"(frontal {summary.frontal_camera}), {summary.num_frames} frames in {summary.seconds:.1f} s"
    )
