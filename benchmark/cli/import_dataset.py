"""``gsbench import --format gaussian-avatars DIR -o DATASET``: the inverse of ``gsbench export``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("import")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "layout",
    type=click.Choice(["gaussian-avatars"]),
    default="gaussian-avatars",
    show_default=True,
    help="Layout of SOURCE (GaussianAvatars/VHAP: transforms*.json, flame_param/, images/, fg_masks/).",
)
@click.option("--no-landmarks", is_flag=True, help="Skip MediaPipe landmarks on the imported images.")
def import_dataset(source: Path, out: Path, layout: str, no_landmarks: bool) -> None:
    """Import SOURCE (one subject folder or a folder of them) as a gsbench dataset at OUT."""
    from tracking.import_gaussian_avatars import import_gaussian_avatars

    summary = import_gaussian_avatars(source, out, landmarks=not no_landmarks)
    click.echo(f"import: {out} ({summary['sequences']} sequences, subjects {', '.join(summary['subjects'])})")
