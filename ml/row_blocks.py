"""Row blocks spread over a few threads, for the per-row numeric work of scoring.

The tree walks (scikit-learn's Cython predictor, `nogil`) and numpy's gathers and sums
release the GIL, so two threads on a 2-core machine score up to twice the rows per second.
Each block writes only its own rows of preallocated outputs, so results do not depend on
the number of threads or on which thread ran a block: a row's numbers come from the same
operations in the same order either way. One thread unless a caller opts in with `limit`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar

_WORKERS: ContextVar[int] = ContextVar("segflow_row_block_workers", default=1)


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def limit(workers: int | None) -> Iterator[None]:
    """Let `each_block` in this context use up to `workers` threads (None: every core this
    process may use). Outside any `limit`, one thread."""
    token = _WORKERS.set(default_workers() if workers is None else max(1, int(workers)))
    try:
        yield
    finally:
        _WORKERS.reset(token)


def workers() -> int:
    """The threads `each_block` may use here (see `limit`)."""
    return _WORKERS.get()


def each_block(rows: int, block_rows: int, work: Callable[[int, int], None]) -> None:
    """Call work(start, stop) for consecutive blocks of `rows` on up to `workers()` threads;
    returns when all are done and re-raises the first error."""
    blocks = [(start, min(start + block_rows, rows)) for start in range(0, rows, block_rows)]
    threads = min(_WORKERS.get(), len(blocks))
    if threads <= 1:
        for start, stop in blocks:
            work(start, stop)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(work, start, stop) for start, stop in blocks]:
            future.result()
