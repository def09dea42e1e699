"""Jobs run in forked worker processes that leave stopping to the parent and never outlive it.

A terminal's Ctrl-C and a scheduler's SIGTERM reach the whole process group. multiprocessing.Pool is not made for
that: it replaces a worker that died at once (forking it while the stop is under way), and its terminate() waits
forever for a queue lock that an idle worker held when it died. Here a worker ignores Ctrl-C and dies on SIGTERM
or SIGHUP; it is forked with the stop signals blocked until it has set that, so a stop that lands during the fork
neither raises inside it nor is lost; none is replaced; and on any exception in the parent (the stop included) the
workers are ended, not waited for (a run in progress may take many minutes)."""

from __future__ import annotations

import multiprocessing as mp
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from .errors import first_line
from .signals import STOP_SIGNALS


class WorkerDied(RuntimeError):
    """A worker ended without a stop signal (the system killed it, e.g. out of memory): its job is lost."""


def _worker_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextmanager
def results(fn: Callable, items: Iterable, jobs: int) -> Iterator[Iterator]:
    """`fn(item)` for every item in `jobs` forked workers, started in order; yields an iterator over the results as
    they finish. SIGTERM and SIGHUP raise KeyboardInterrupt in this process meanwhile (as Ctrl-C does)."""
    items = list(items)
    before = set(mp.active_children())
    old = {s: signal.signal(s, signal.default_int_handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pool = ProcessPoolExecutor(max(1, min(jobs, len(items))), mp_context=mp.get_context("fork"),
                               initializer=_worker_signals)
    try:
        try:
            futures = [pool.submit(fn, item) for item in items]  # forks the workers, starts the pool's threads
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a stop that came meanwhile raises here
        yield (_result(f) for f in as_completed(futures))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        for p in set(mp.active_children()) - before:
            p.terminate()
        raise
    finally:
        pool.shutdown(wait=True)
        for s, h in old.items():
            signal.signal(s, h)


def _result(future):
    try:
        return future.result()
    except BrokenProcessPool as e:
        raise WorkerDied(f"a worker process died ({first_line(e)})") from None
