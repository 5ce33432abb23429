"""``gsbench export``: write a tracked dataset in another tool's layout (GaussianAvatars / VHAP)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["gaussian-avatars"]),
    default="gaussian-avatars",
    show_default=True,
    help="Target layout (GaussianAvatars/VHAP transforms_*.json + flame_param/).",
)
@click.option("--subject", "subjects", multiple=True, help="Export only these subjects (repeatable).")
@click.option("--recentre", is_flag=True, help="Move the origin to the mean head position (saved as a 4x4).")
@click.option("--no-images", is_flag=True, help="Write cameras and FLAME parameters only.")
def export(
    dataset: Path, out: Path, fmt: str, subjects: tuple[str, ...], recentre: bool, no_images: bool
) -> None:
    """Export DATASET (after `gsbench track`) to OUT/<subject>/ in the GaussianAvatars layout."""
    from tracking.export_gaussian_avatars import export_gaussian_avatars

    summary = export_gaussian_avatars(
        dataset, out, subjects=list(subjects) or None, recentre=recentre, copy_images=not no_images
    )
    for subject, entry in summary.items():
        click.echo(
            f"{subject}: {entry['timesteps']} timesteps, {entry['train']} train / {entry['val']} val / "
            f"{entry['test']} test views -> {entry['folder']}"
        )
