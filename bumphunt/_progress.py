"""Progress bars for long work (rich), silent when disabled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class _ProgressBar:
    def __init__(self, progress):
        self._progress = progress

    def add(self, description: str, total: float) -> Callable[[float], None]:
        """Add a task; returns the function that advances it."""
        if self._progress is None:
            return lambda amount: None
        task = self._progress.add_task(description, total=total)
        return lambda amount: self._progress.advance(task, amount)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[_ProgressBar]:
    """A rich progress display on stderr while the block runs."""
    if not enabled:
        yield _ProgressBar(None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield _ProgressBar(progress)
