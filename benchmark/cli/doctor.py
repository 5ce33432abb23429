from __future__ import annotations

import sys

import click
from rich.table import Table

from gsbench.progress import print_table


@click.command()
def doctor() -> None:
    """Report every missing piece (package, binary, system library, weight file) with its fix, and which
    rasterizer backend `auto` picks (gsplat on a CUDA device, else the CPU kernel) and why."""
    from gsbench.doctor import run_checks

    checks = run_checks()
    table = Table(title="gsbench doctor")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        if check.ok:
            mark = "[green]ok"
        elif check.required:
            mark = "[red]MISSING"
        else:
            mark = "[yellow]optional"
        table.add_row(check.name, mark, check.detail, "" if check.ok else check.fix)
    print_table(table)
    # the one line a GPU user looks for: which rasterizer runs and why (the table may fold it)
    for check in checks:
        if check.name == "rasterizer (auto)":
            click.echo(f"rasterizer backend (auto): {check.detail.splitlines()[0]}")
    missing = [check.name for check in checks if check.required and not check.ok]
    if missing:
        click.echo(f"{len(missing)} required piece(s) missing: {', '.join(missing)}", err=True)
        sys.exit(1)
