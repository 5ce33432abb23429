"""rich progress bars that respect ``--quiet``; one place so every stage looks the same."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

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

console = Console(stderr=True)


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
