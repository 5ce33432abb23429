"""``gsbench methods``: the registered methods (built-in and ``gsbench.methods`` entry points)."""

from __future__ import annotations

import json

import click


@click.command("methods")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def methods(as_json: bool) -> None:
    """List every method, its protocols, pretrained networks and where it comes from."""
    from benchmark.methods import describe_methods

    rows = describe_methods()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    from gsbench.progress import print_table

    table = Table(title="gsbench methods")
    for column in ("name", "protocols", "oracle", "pretrained networks", "source", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(row["name"], "-", "-", "-", row["source"], f"[red]cannot load: {row['error']}[/]")
            continue
        table.add_row(
            row["name"],
            ", ".join(row["protocols"]),
            "yes" if row["oracle"] else "no",
            ", ".join(row["pretrained_networks"]) or "none",
            row["source"],
            row["description"],
        )
    print_table(table)
