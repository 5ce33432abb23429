"""rich progress bars that respect ``--quiet``; one place so every stage looks the same."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True, soft_wrap=True)  # a long line (a path) is never broken in two


def is_quiet() -> bool:
    """Quiet when ``--quiet`` was given (the CLI sets GSBENCH_QUIET) or when not on a terminal in CI."""
    return os.environ.get("GSBENCH_QUIET", "") == "1"


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=is_quiet(),
        transient=False,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar (silent under ``--quiet``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def log(message: str) -> None:
    """One status line on stderr, unless quiet."""
    if not is_quiet():
        console.print(message)


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    if is_quiet():
        yield
        return
    with console.status(message):
        yield


def warn(message: str) -> None:
    """A warning on stderr, shown under ``--quiet`` too (quiet silences progress, not problems), and
    on the ``gsbench`` logger so a job's log.txt keeps it."""
    logger = logging.getLogger("gsbench")
    if logger.hasHandlers():  # a job's log.txt; without any handler logging would print it a second time
        logger.warning(message)
    console.print(f"[yellow]warning:[/yellow] {message}", markup=True, highlight=False)


_warned: set[str] = set()


def warn_once(message: str) -> None:
    """:func:`warn`, the first time this exact message comes up in this process (a missing weight
    file is said once per run, not once per sequence or per job)."""
    if message not in _warned:
        _warned.add(message)
        warn(message)


class TrainingProgress:
    """The handle :func:`training_progress` yields: call :meth:`update` after each optimisation step."""

    def __init__(self, total: int, description: str, progress: Progress | None, log_every_s: float):
        self.total = total
        self.description = description
        self._progress = progress
        self._task = progress.add_task(description, total=total, loss="") if progress is not None else None
        self._logger = logging.getLogger("gsbench.training")
        self._log_every_s = log_every_s
        self._start = time.perf_counter()
        self._last_log = self._start
        self.step = 0
        self.loss: float | None = None

    def eta_s(self) -> float | None:
        """Seconds left at the mean speed so far (None before the first step)."""
        if self.step <= 0:
            return None
        elapsed = time.perf_counter() - self._start
        return elapsed / self.step * max(0, self.total - self.step)

    def update(self, step: int, loss: float | None = None, **values: Any) -> None:
        """Step ``step`` (1-based, of ``total``) is done; ``loss`` and ``values`` are shown beside it."""
        self.step = step
        if loss is not None:
            self.loss = float(loss)
        shown = {"loss": self.loss, **values}
        text = " ".join(f"{k} {_short(v)}" for k, v in shown.items() if v is not None)
        if self._progress is not None:
            self._progress.update(self._task, completed=step, loss=text)
        now = time.perf_counter()
        if now - self._last_log >= self._log_every_s or step >= self.total:
            self._last_log = now
            eta = self.eta_s()
            self._logger.info(
                "%s: step %d/%d, %s, %.0f s elapsed, ETA %s",
                self.description,
                step,
                self.total,
                text or "no loss",
                now - self._start,
                "-" if eta is None else f"{eta:.0f} s",
            )


def _short(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return str(value)


@contextlib.contextmanager
def training_progress(total: int, description: str, log_every_s: float = 30.0) -> Iterator[TrainingProgress]:
    """A progress bar for a method's training loop: step/total, loss, elapsed time and ETA on the
    terminal (nothing under ``--quiet``), and a line every ``log_every_s`` seconds (and at the end) on the
    ``gsbench.training`` logger, which the benchmark runner writes into the job's log.txt::

        with training_progress(config.iterations, "gaussian-avatars: training") as progress:
            for step in range(1, config.iterations + 1):
                ...
                progress.update(step, loss=float(loss))
    """
    if is_quiet():
        yield TrainingProgress(total, description, None, log_every_s)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        yield TrainingProgress(total, description, progress, log_every_s)


def print_table(table: Any, file: Any = None) -> None:
    """Print a rich ``Table``: as rich lays it out on a terminal (its width), and as plain
    tab-separated lines when the output is a pipe or file, so that nothing is wrapped at 80 columns
    (``gsbench methods | grep ...`` gets one row per line)."""
    import sys

    from rich.text import Text

    out = Console(file=file or sys.stdout)
    if out.is_terminal:
        out.print(table)
        return

    def plain(cell: Any) -> str:
        text = cell.plain if isinstance(cell, Text) else Text.from_markup(str(cell)).plain
        return " ".join(text.split())

    lines = []
    if table.title:
        lines.append(plain(table.title))
    if table.show_header:
        lines.append("\t".join(plain(column.header) for column in table.columns))
    for row in range(table.row_count):
        lines.append("\t".join(plain(column._cells[row]) for column in table.columns))
    (file or sys.stdout).write("\n".join(lines) + "\n")
