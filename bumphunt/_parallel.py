"""Running independent tasks in order: in process, on local processes, or on a Dask cluster.

Every heavy stage hands its tasks to one :func:`executor` and reads the results back in
order (:func:`ordered_map`), so where the tasks run never changes the numbers. A Dask
cluster is reached by its scheduler's address: ``--scheduler`` of the command, else the
configuration's ``dask.scheduler`` (:func:`dask_scheduler`); docs/cluster.md.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor

from .errors import BumphuntError

#: Seconds to wait for a Dask scheduler to answer before giving up.
CONNECT_TIMEOUT = 5.0
#: Where the docs explain running on a cluster (named in the errors).
_CLUSTER_DOCS = "docs/cluster.md"


class InlineExecutor(Executor):
    """Runs tasks in the calling process (one worker, or debugging)."""

    def submit(self, fn, /, *args, **kwargs):
        future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # delivered through the future like a real executor
            future.set_exception(error)
        return future


class DaskExecutor(Executor):
    """The workers of a Dask cluster as an executor: every task submitted runs (none is taken
    for a copy of another, ``pure=False``) and its future has the same ``result()``.

    Parameters
    ----------
    client : distributed.Client
        Connected to the cluster's scheduler; closed (the cluster keeps running) at shutdown.
    """

    def __init__(self, client):
        self.client = client

    @property
    def address(self) -> str:
        """The scheduler's address."""
        return self.client.scheduler.address

    def submit(self, fn, /, *args, **kwargs):
        # a task carries its data (a chunk of events) through the scheduler, which keeps it until
        # the task is done: a task lost with its worker (a batch job at its walltime) runs again
        # on another one, where data scattered to the lost worker would be gone with it
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            return self.client.submit(fn, *args, pure=False, **kwargs)

    def threads(self) -> int:
        """Threads of the workers connected now (0 while the batch jobs of a cluster wait to start)."""
        return sum(self.client.nthreads().values())

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.client.close()


def dask_scheduler(config: Mapping, scheduler: str | None = None) -> str | None:
    """The address of the Dask scheduler a stage runs on: ``scheduler`` when given, else the
    configuration's ``dask.scheduler``; None: this machine."""
    if scheduler:
        return scheduler
    return (config.get("dask") or {}).get("scheduler") or None


def connect(scheduler: str, *, timeout: float = CONNECT_TIMEOUT) -> DaskExecutor:
    """An executor on the Dask cluster whose scheduler is at ``scheduler`` (``tcp://host:8786``).

    Raises
    ------
    BumphuntError
        One line naming the address: dask.distributed is not installed, the address is not
        one, or no scheduler answers there within ``timeout`` seconds.
    """
    try:
        from distributed import Client
        from distributed.comm import parse_address
        from distributed.comm.addressing import parse_host_port
    except ImportError:
        raise BumphuntError(
            f"running on the Dask cluster at {scheduler} needs dask.distributed: pip install 'bumphunt[dask]'"
        ) from None
    try:
        protocol, location = parse_address(scheduler)
        if protocol in ("tcp", "tls"):  # a refused or unknown address fails at once, not after the timeout
            socket.create_connection(parse_host_port(location), timeout=timeout).close()
        client = Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, ValueError, TypeError) as error:
        reason = " ".join((getattr(error, "strerror", None) or str(error) or type(error).__name__).split())
        raise BumphuntError(f"cannot reach the Dask scheduler at {scheduler} ({reason}; {_CLUSTER_DOCS})") from None
    return DaskExecutor(client)


def executor(workers: int, scheduler: str | None = None) -> Executor:
    """An executor for ``workers`` local processes (in process for one), or for the Dask
    cluster at ``scheduler`` (:func:`connect`: its errors)."""
    if scheduler:
        return connect(scheduler)
    if workers <= 1:
        return InlineExecutor()
    # spawn, not fork: the caller may hold threads (TensorFlow, BLAS) that fork would copy mid-flight
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def task_slots(executor: Executor, workers: int) -> int:
    """How many tasks ``executor`` runs at once: the threads of a Dask cluster's workers (at
    least ``workers``, for the workers still to come), else ``workers``."""
    if isinstance(executor, DaskExecutor):
        return max(executor.threads(), workers, 1)
    return max(workers, 1)


def check_worker_access(executor: Executor, *, read: Iterable = (), write: Iterable = ()) -> None:
    """Check that every worker of a Dask cluster can read the files or folders ``read`` and write
    into the folders ``write`` (nothing to check on this machine). Paths must be absolute: a
    worker's working directory is its own.

    Raises
    ------
    BumphuntError
        One line naming the path and the worker: the workers need the analysis' files on a
        filesystem they share with this machine.
    """
    if not isinstance(executor, DaskExecutor):
        return
    read, write = [str(p) for p in read], [str(p) for p in write]
    for worker, problems in sorted(executor.client.run(_inaccessible, read, write).items()):
        if problems:
            path, access = problems[0]
            raise BumphuntError(
                f"{path}: not {access} on the Dask worker {worker}; the workers need the analysis' files on a "
                f"filesystem shared with this machine ({_CLUSTER_DOCS})"
            )


def _inaccessible(read: list[str], write: list[str]) -> list[tuple[str, str]]:
    """(path, "readable" or "writable") of the paths this process cannot use (run on each worker)."""
    problems = [(path, "readable") for path in read if not os.access(path, os.R_OK)]
    return problems + [(path, "writable") for path in write if not os.access(path, os.W_OK | os.X_OK)]


def call(task):
    """Run a task that is a function of no arguments (a :func:`functools.partial`)."""
    return task()


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
