"""Zoneless wall times to UTC without a time zone library call per row.

A zone's UTC offset changes on a few days a year; on every other local day one offset holds
from 00:00 to 24:00 (no zone changes and changes back within one day). `zone_days` asks DuckDB's own zone data (the one its conversions use)
once per zone and process for each day of PLAUSIBLE_YEARS: the offset, or null on a day a
change happens (and the day after: a change at midnight puts its gap on the next date). A wall
time is then `wall + offset[day]`, a list lookup; only the null days (and days outside the
range) pay for DuckDB's `timezone(...)`, which is slow and serialised across threads. The same
days are the only ones on which a wall time can fall in a daylight-saving gap or overlap.
"""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta

import duckdb
import pyarrow as pa

from contracts.raw import PLAUSIBLE_YEARS

FIRST_DAY = date(PLAUSIBLE_YEARS[0], 1, 1)
_LAST_DAY = date(PLAUSIBLE_YEARS[1], 12, 31)
_TABLE = "_segflow_zone_offsets_"  # + a slug of the zone: one registered Arrow table per zone
_SLUGS: dict[str, str] = {}  # slug -> zone, for `register_zone_offsets`


@functools.lru_cache(maxsize=32)
def zone_days(zone: str) -> tuple[tuple[date, ...], pa.Table]:
    """(the local days on which `zone`'s offset changes, and the day after; a one-row Arrow
    table holding `offsets`: seconds from wall time to UTC per day from FIRST_DAY, null on
    those days). One vectorised DuckDB query per zone, cached."""
    conn = duckdb.connect()
    try:
        rows = conn.execute(
            """with d as (
                 select d::date as day, epoch(timezone($z, d)) - epoch(d) as o0
                 from range($lo::timestamp, $hi::timestamp, interval 1 day) t(d))
               select day, o0::integer, o0 <> lead(o0) over (order by day)
               from d order by day""",
            {"z": zone, "lo": FIRST_DAY, "hi": _LAST_DAY + timedelta(days=2)},
        ).fetchall()
    finally:
        conn.close()
    changed = {day for day, _, moved in rows[:-1] if moved is not False}
    changes = {d for day in changed for d in (day, day + timedelta(days=1))}
    offsets = [None if day in changes else off for day, off, _ in rows[:-1]]
    table = pa.table({"offsets": pa.array([offsets], pa.list_(pa.int32()))})
    return tuple(sorted(changes)), table


def transition_days(zone: str) -> tuple[date, ...]:
    """Local dates (PLAUSIBLE_YEARS) on which `zone`'s UTC offset changes, and the day after:
    the only dates a wall time can fall in a daylight-saving gap or overlap."""
    return () if zone == "UTC" else zone_days(zone)[0]


def wall_to_utc_sql(wall: str, zone: str) -> str:
    """SQL: the naive wall time `wall` (read in `zone`) as a naive UTC timestamp, equal to
    `timezone('UTC', timezone(zone, wall))`; the query needs `register_zone_offsets`."""
    slug = re.sub(r"[^a-z0-9]", "_", zone.lower())
    _SLUGS[slug] = zone
    quoted = "'" + zone.replace("'", "''") + "'"
    # a day before FIRST_DAY gives index <= 0, which must not wrap to the list's end
    index = f"greatest(({wall})::date - date '{FIRST_DAY.isoformat()}' + 1, 0)"
    return (
        f"coalesce(({wall}) + to_seconds((select offsets from {_TABLE}{slug})[{index}]), "
        f"timezone('UTC', timezone({quoted}, {wall})))"
    )


def register_zone_offsets(conn: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Register the offset tables `sql` (built by `wall_to_utc_sql`) reads on `conn`."""
    for slug in set(re.findall(_TABLE + r"(\w+)", sql)):
        conn.register(_TABLE + slug, zone_days(_SLUGS[slug])[1])
