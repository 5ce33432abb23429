from __future__ import annotations

import sys

import click
from rich.table import Table

from gsbench.progress import print_table


@click.command()
def doctor() -> None:
    """Report every missing piece (package, binary, system library, weight file) with its fix."""
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
    missing = [check.name for check in checks if check.required and not check.ok]
    if missing:
        click.echo(f"{len(missing)} required piece(s) missing: {', '.join(missing)}", err=True)
        sys.exit(1)
