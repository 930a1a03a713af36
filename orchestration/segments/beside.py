"""Independent warehouse work of one step on a second thread with its own cursor.

DuckDB runs a query without the GIL, so while one thread is in Python (building frames,
JSON, rows to insert) the other's queries use the second core. Only for work that reads
committed tables and writes tables nothing else in the step touches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import duckdb


@contextmanager
def beside(
    conn: duckdb.DuckDBPyConnection,
    work: Callable[..., Any],
    *args: Any,
    here: bool = False,
) -> Iterator[Future]:
    """`work(cursor, *args)` on a second thread while the caller goes on with `conn`; the
    future gives (result, seconds) and is waited for on leaving. `here`: run it on this
    thread first instead (a connection whose tables are its own views, e.g. Spark's)."""

    def timed(target: duckdb.DuckDBPyConnection) -> tuple[Any, float]:
        mark = time.perf_counter()
        return work(target, *args), time.perf_counter() - mark

    if here:
        done: Future = Future()
        done.set_result(timed(conn))
        yield done
        return
    cursor = conn.cursor()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="segments-beside") as pool:
            yield pool.submit(timed, cursor)
    finally:
        cursor.close()
