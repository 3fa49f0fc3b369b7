"""Progress bars for long work (rich), silent when disabled.

``bumphunt run`` opens one display for the whole chain (:func:`shared_progress`): the
stages' own bars then appear in it, below the chain's, and leave when their stage ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: The display of a running chain, while one is open.
_shared = None


class _ProgressBar:
    def __init__(self, progress):
        self._progress = progress
        self.tasks = []

    def add(self, description: str, total: float) -> Callable[[float], None]:
        """Add a task; returns the function that advances it."""
        if self._progress is None:
            return lambda amount: None
        task = self._progress.add_task(description, total=total)
        self.tasks.append(task)
        return lambda amount: self._progress.advance(task, amount)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[_ProgressBar]:
    """A rich progress display on stderr while the block runs; inside :func:`shared_progress`,
    the bars go to the chain's display and are removed at the end of the block."""
    if not enabled:
        yield _ProgressBar(None)
        return
    if _shared is not None:
        bar = _ProgressBar(_shared)
        try:
            yield bar
        finally:
            for task in bar.tasks:
                _shared.remove_task(task)
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


@contextmanager
def shared_progress(enabled: bool = True) -> Iterator[_ProgressBar]:
    """One display for a chain of stages: every :func:`progress_bar` opened inside the block
    shows its bars in it."""
    global _shared
    with progress_bar(enabled) as bar:
        _shared = bar._progress
        try:
            yield bar
        finally:
            _shared = None
