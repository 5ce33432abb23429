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

# Before anything imports torch: OpenMP threads that busy-wait for a descheduled peer cost up to 20x wall
# time on a shared 2-core machine (one training step 5.1 s -> 0.24 s with PASSIVE at load ~12, README).
# A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from gsbench import __version__  # noqa: E402
from gsbench.errors import GsbenchError  # noqa: E402

# name -> ("module:attribute" of a click command or group, its one-line help for ``gsbench --help``).
# The short help lives here so that listing the commands imports none of them; a test checks that it
# matches each command's own docstring.
COMMANDS: dict[str, tuple[str, str]] = {
    "audio": (
        "benchmark.cli.audio:audio",
        "Speech encoders (wav2vec 2.0, HuBERT, DeepSpeech, offline) and a dataset's audio features.",
    ),
    "doctor": (
        "benchmark.cli.doctor:doctor",
        "Report every missing piece (package, binary, library, weight file).",
    ),
    "export": (
        "benchmark.cli.export:export",
        "Export a tracked dataset for other tools (GaussianAvatars/VHAP layout).",
    ),
    "head": ("benchmark.cli.head:head", "The FLAME-format default head model (gsbench-head)."),
    "import": (
        "benchmark.cli.import_dataset:import_dataset",
        "A dataset in another layout (GaussianAvatars/VHAP export) -> a gsbench dataset.",
    ),
    "ingest": (
        "benchmark.cli.ingest:ingest",
        "Raw rig session -> dataset: sync, calibrate, frames, masks, landmarks, FLAME.",
    ),
    "leaderboard": ("benchmark.cli.leaderboard:leaderboard", "Leaderboards generated from results files."),
    "methods": ("benchmark.cli.methods:methods", "List every method, its protocols and pretrained networks."),
    "metrics": (
        "benchmark.cli.metrics:metrics",
        "Score PRED against GT (videos or frame folders) with every metric.",
    ),
    "run": ("benchmark.cli.run:run", "Train + render + score methods on a dataset's protocols."),
    "synth": ("benchmark.cli.synth:synth", "Generate a synthetic 16-camera rig session with ground truth."),
    "track": ("benchmark.cli.track:track", "Fit FLAME to a dataset's landmarks (sequences/*/flame.npz)."),
    "weights": ("benchmark.cli.weights:weights", "Pretrained networks: list, register, verify."),
}


def load_command(name: str) -> click.Command:
    module_name, attribute = COMMANDS[name][0].split(":")
    return getattr(importlib.import_module(module_name), attribute)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


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


def os_error_line(error: OSError) -> str:
    """``<path>: <reason> (fix: ...)`` of an operating-system error (permission, disk full, ...)."""
    import errno

    reason = error.strerror or str(error) or type(error).__name__
    path = error.filename if error.filename is not None else "(no path)"
    if error.filename2 is not None:
        path = f"{path} -> {error.filename2}"
    fixes = {
        errno.EACCES: "make the folder writable for this user, or choose another output folder",
        errno.EPERM: "make the folder writable for this user, or choose another output folder",
        errno.EROFS: "the file system is read-only: choose an output folder on a writable disk",
        errno.ENOSPC: "the disk is full: free space or choose an output folder on another disk",
        errno.EDQUOT: "the disk quota is used up: free space or choose another output folder",
        errno.ENOENT: "check that the path exists",
        errno.ENOTDIR: "a file stands where a folder belongs in this path: choose another path",
    }
    fix = fixes.get(error.errno or 0, "check the path, its permissions and the free disk space")
    return f"{path}: {reason} (fix: {fix})"


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
    except OSError as error:  # a read-only, full or missing output folder: the path, not a traceback
        click.echo(f"error: {os_error_line(error)}", err=True)
        sys.exit(1)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
