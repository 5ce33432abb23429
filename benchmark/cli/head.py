"""``gsbench head``: the procedural default head model ``gsbench-head``."""

from __future__ import annotations

import time
from pathlib import Path

import click

from gsbench.progress import log, status


@click.group()
def head() -> None:
    """The FLAME-format default head model (gsbench-head)."""


@head.command("export")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--seed", default=0, show_default=True, help="Seed of the texture noise and random shape components."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["obj", "ply"]),
    default="obj",
    show_default=True,
    help="Mesh format (obj: OBJ+MTL+texture PNG; ply: vertex-coloured PLY + texture PNG).",
)
@click.option("--no-sheet", is_flag=True, help="Skip the contact sheet of renders.")
def export(out: Path, seed: int, fmt: str, no_sheet: bool) -> None:
    """Build gsbench-head and write its mesh, model .npz and a contact sheet PNG into OUT."""
    from tracking.head import build_default_head
    from tracking.head.export import export_head

    start = time.perf_counter()
    with status("building gsbench-head"):
        model = build_default_head(seed=seed)
    built = time.perf_counter() - start
    log(
        f"built {model.name}: {model.num_vertices} vertices, {len(model.faces)} faces, "
        f"{model.num_shape} shape / {model.num_expr} expression components in {built:.1f} s"
    )
    with status("writing mesh and contact sheet"):
        paths = export_head(model, out, fmt=fmt, sheet=not no_sheet)
    for path in paths:
        click.echo(str(path))
