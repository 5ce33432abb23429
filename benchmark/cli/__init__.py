"""The ``gsbench`` command. Thin: each subcommand parses, calls one library function, prints.

Subcommands live in their own modules and are imported lazily, so ``gsbench --help`` does not pay
for torch/open3d imports. To add one, write ``benchmark/cli/<name>.py`` defining a click command
and list it in ``COMMANDS``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from gsbench import __version__
from gsbench.errors import GsbenchError

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "doctor": "benchmark.cli.doctor:doctor",
    "export": "benchmark.cli.export:export",
    "head": "benchmark.cli.head:head",
    "ingest": "benchmark.cli.ingest:ingest",
    "leaderboard": "benchmark.cli.leaderboard:leaderboard",
    "methods": "benchmark.cli.methods:methods",
    "run": "benchmark.cli.run:run",
    "metrics": "benchmark.cli.metrics:metrics",
    "synth": "benchmark.cli.synth:synth",
    "track": "benchmark.cli.track:track",
    "weights": "benchmark.cli.weights:weights",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="gsbench")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines.")
def cli(quiet: bool) -> None:
    """gsbench: audio-driven 3D Gaussian talking-head avatars, from a 16-camera capture to leaderboards.

    \b
    gsbench synth  /rig/session1              synthetic 16-camera capture with ground truth
    gsbench ingest /rig/session1 -o data/s1   sync, calibrate, frames, masks, landmarks, FLAME
    gsbench run --method all --data data/s1   train + render + score every method
    gsbench leaderboard publish               results -> leaderboards/*.csv
    """
    if quiet:
        os.environ["GSBENCH_QUIET"] = "1"


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        cli.main(args=argv, prog_name="gsbench", standalone_mode=False)
    except GsbenchError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
