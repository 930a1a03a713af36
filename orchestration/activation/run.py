"""Sync every configured destination (SEGFLOW_DESTINATIONS) one after another.

New privacy requests from the landing folder are applied first, so a removed person is
never sent. Each destination keeps its own state, so a diff, a failure or a refusal in one
never affects another. Used by the `destination_sync` asset and the tests.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb

from .destinations import build_destination
from .privacy import process_landing
from .report import SyncReport
from .sync import SyncOptions, sync


def sync_all(
    conn: duckdb.DuckDBPyConnection,
    settings: Any,
    as_of: date | None = None,
    *,
    dry_run: bool = False,
    override_breaker: bool = False,
    options: SyncOptions | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[SyncReport], list[dict[str, Any]]]:
    """(one report per destination in settings.destinations order, privacy audit rows).
    `overrides` maps a destination name to constructor overrides (tests, benchmarks)."""
    overrides = overrides or {}
    names = settings.destinations
    destinations = [build_destination(n, settings, **overrides.get(n, {})) for n in names]
    audit = [] if dry_run else process_landing(conn, settings, destinations)
    options = options or SyncOptions.from_settings(settings)
    reports = [
        sync(
            conn,
            destination,
            as_of=as_of,
            dry_run=dry_run,
            override_breaker=override_breaker,
            options=options,
        )
        for destination in destinations
    ]
    return reports, audit
