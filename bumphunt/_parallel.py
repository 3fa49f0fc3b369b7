"""Running independent tasks in order: in process, on local processes, or on a Dask cluster."""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor


class InlineExecutor(Executor):
    """Runs tasks in the calling process (one worker, or debugging)."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # delivered through the future like a real executor
            future.set_exception(error)
        return future


def executor(workers: int, scheduler: str | None = None):
    """An executor for ``workers`` local processes (in process for one), or a Dask client of
    the cluster at ``scheduler`` (its futures have the same ``result()``)."""
    if scheduler:
        from distributed import Client

        return Client(scheduler)
    if workers <= 1:
        return InlineExecutor()
    # spawn, not fork: the caller may hold threads (TensorFlow, BLAS) that fork would copy mid-flight
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def ordered_map(executor: Executor, fn, tasks, *, max_in_flight: int) -> Iterator:
    """Like ``executor.map`` but with at most ``max_in_flight`` tasks submitted at once.

    In-process execution runs a task at submission; there one task in flight lets the
    caller act on (e.g. save) each result as soon as it exists.
    """
    if isinstance(executor, InlineExecutor):
        max_in_flight = 1
    pending: deque = deque()
    for task in tasks:
        pending.append(executor.submit(fn, task))
        if len(pending) >= max_in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()
