"""Build the report's pages from the warehouse (read-only) and, when given, run history and
model-registry data. Every chart is built only when its data exists; a page lists what it
could not show yet instead of drawing an empty chart. One module per page under pages/."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from orchestration.report.inputs import ReportInputs, ReportResult, Warehouse
from orchestration.report.pages import (
    experiments,
    models,
    onboarding,
    overview,
    realtime,
    retention,
    segments,
    sync,
)
from orchestration.report.render import Page
from orchestration.report.svg_cache import SvgCache
from orchestration.settings import Settings

# --- entry point -----------------------------------------------------------------------------

PAGE_ORDER = (
    "overview",
    "segments",
    "onboarding",
    "retention",
    "experiments",
    "models",
    "sync",
    "realtime",
)


def _safely(slug: str, title: str, build: Callable[[], Page], log) -> Page:
    """A page whose data breaks its builder still renders, naming the error, so the report
    (and the run that builds it) never fails on one page."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - reported on the page and in the log
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if log:
            log(f"{slug}: page not built: {message}")
        page = Page(slug, title, "This page could not be built from the current data.")
        page.missing.append(f"page error: {message}")
        return page


def build_report(
    duckdb_path: Path | str | None,
    out_dir: Path | str,
    inputs: ReportInputs | None = None,
    min_sample: int = Settings.experiment_min_sample,
    now: datetime | None = None,
    log: Callable[[str], Any] | None = None,
    conn: duckdb.DuckDBPyConnection | None = None,
) -> ReportResult:
    """Write the report folder (replaced as a whole) and return what it holds. Reads the
    warehouse through `conn` when given, else opens `duckdb_path` read-only.

    Pages are built in order on a second thread with its own cursor while this one renders
    the page before: a page's warehouse queries run without the GIL beside the chart
    rendering (which holds it), and the charts render in the same order as before."""
    inputs = inputs or ReportInputs()
    now = now or datetime.now(UTC)
    out_dir = Path(out_dir)
    own = conn is None
    if own:
        conn = duckdb.connect(str(duckdb_path), read_only=True)
    # the file name only: a report (and its screenshots) never shows a machine path
    label = Path(duckdb_path).name if duckdb_path else "warehouse"
    cursor = conn.cursor()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="report-pages")
    try:
        wh = Warehouse(cursor)
        builders = [
            ("overview", "Overview", lambda: overview.build(wh, inputs, now)),
            ("segments", "Segments", lambda: segments.build(wh)),
            ("onboarding", "Onboarding", lambda: onboarding.build(wh)),
            ("retention", "Retention", lambda: retention.build(wh)),
            ("experiments", "Experiments", lambda: experiments.build(wh, min_sample)),
            ("models", "Models", lambda: models.build(wh, inputs)),
            ("sync", "Sync", lambda: sync.build(wh)),
            ("realtime", "Real time", lambda: realtime.build(wh)),
        ]
        built = [pool.submit(_built, slug, title, build) for slug, title, build in builders]
        nav = [Page(slug, title, "") for slug, title, _ in builders]  # what the menu shows
        tmp = out_dir.with_name(out_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cache = SvgCache.for_report(out_dir)
        pages = [_write(future, tmp, nav, now, label, cache, log) for future in built]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        cursor.close()
        if own:
            conn.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    cache.prune()
    if log:
        log(f"charts rendered: {cache.rendered}, unchanged and reused: {cache.hits}")
    return ReportResult(
        out_dir=out_dir,
        pages={p.filename: len(p.charts) for p in pages},
        missing={p.filename: p.missing for p in pages if p.missing},
    )


def _write(
    built: Future, tmp: Path, nav: list[Page], now: datetime, label: str, cache: SvgCache, log
) -> Page:
    """Render one built page into `tmp` (here, on the caller's thread: its log too)."""
    page, messages = built.result()
    for message in messages if log else ():
        log(message)
    (tmp / page.filename).write_text(page.html(nav, now, label, cache), encoding="utf-8")
    if log:
        log(f"{page.filename}: {len(page.charts)} chart(s); not shown: {page.missing or 'none'}")
    return page


def _built(slug: str, title: str, build: Callable[[], Page]) -> tuple[Page, list[str]]:
    """One page and its log lines (logged by the caller's thread)."""
    messages: list[str] = []
    return _safely(slug, title, build, messages.append), messages
