"""Great Expectations loaded when a suite first needs it, not with the definitions (no GX
import here: the CLI and the launcher import this module).

A `segflow run` used to import GX (~2.5 s) before its first step, with the launcher. It is now
imported by the first suite (`runner()`), or ahead of it on a background thread (`warm()`)
that the launcher starts when the run starts: the Python import then overlaps work that
releases the GIL (DuckDB loading the raw files, Dagster's SQLite writes) on the second core.

GX imports pyspark's API whenever pyspark is installed (~0.4 CPU s; it is, for the Spark
engine), although segflow validates pandas frames only: unless the Spark engine is selected or
pyspark is already loaded, GX is imported with pyspark hidden (GX then records it as absent),
and a later `import pyspark` works as usual.

Inside `data_docs_once()` the suites store their results and the Data Docs HTML is built once,
when the block ends (expectations.runner), for every result of the block.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any

RUNNER = "expectations.runner"
# Inside data_docs_once(): the results whose Data Docs pages are still to build, by GX folder.
_PENDING_DOCS: dict[Path, list[Any]] | None = None
_WARMING: list[threading.Thread] = []


@contextmanager
def _without_spark() -> Iterator[None]:
    """Hide pyspark from the imports inside the block (see the module docstring)."""
    engine = os.environ.get("SEGFLOW_ENGINE", "").strip().lower()
    if engine not in ("", "duckdb") or "pyspark" in sys.modules:  # Spark (or unknown): as is
        yield
        return
    sys.modules["pyspark"] = None  # type: ignore[assignment] # `import pyspark` -> ImportError
    try:
        yield
    finally:
        if "pyspark" in sys.modules and sys.modules["pyspark"] is None:
            del sys.modules["pyspark"]


def runner() -> ModuleType:
    """expectations.runner, importing GX on first use (waits for a warm() import under way)."""
    if RUNNER in sys.modules and not _initializing(sys.modules[RUNNER]):
        return sys.modules[RUNNER]
    with _without_spark():
        return import_module(RUNNER)


def _initializing(module: ModuleType) -> bool:
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def warm() -> threading.Thread | None:
    """Import GX on a daemon thread (once per process); the first suite's import waits for it.
    A failure there is left to that import to raise again, on the run's thread."""
    if RUNNER in sys.modules or _WARMING:
        return None

    def load() -> None:
        try:
            runner()
        except Exception:  # noqa: BLE001 - the suite's own import reports it
            return

    thread = threading.Thread(target=load, name="segflow-gx-import", daemon=True)
    _WARMING.append(thread)
    thread.start()
    return thread


def pending_docs() -> dict[Path, list[Any]] | None:
    """Inside data_docs_once(): the results still to render, by GX folder; else None."""
    return _PENDING_DOCS


@contextmanager
def data_docs_once() -> Iterator[None]:
    """Inside the block, validate_table stores its results and returns the Data Docs index's
    path, and the HTML is built once when the block ends, for every result of the block.

    Each build renders its results' pages, the index and GX's static files again: a quarter
    of a small suite's CPU, four times in a daily run (three raw tables and the features).
    `segflow run` wraps its run in this; the pages and index are then those of building
    after each suite (the index lists the same stored results), written when the run ends."""
    global _PENDING_DOCS
    if _PENDING_DOCS is not None:  # nested: the outer block builds
        yield
        return
    _PENDING_DOCS = {}
    try:
        yield
    finally:
        pending, _PENDING_DOCS = _PENDING_DOCS, None
        for gx_dir, results in pending.items():  # any result means GX is loaded
            gx = runner()
            gx.build_data_docs(gx.open_context(gx_dir), gx_dir, results)
