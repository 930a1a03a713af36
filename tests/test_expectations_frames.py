"""The frames a suite validates: timestamps in the dtype GX vectorises, the partition counts and
id reuse read with constant filters (same values as before, without a scan of every row group)."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from expectations.config import QualityConfig
from expectations.frames import _ns_times, declared_columns, partition_frame, row_frame
from expectations.tables import table_spec
from orchestration.sources.raw_write import ensure_raw_schema


def _events(conn: duckdb.DuckDBPyConnection) -> None:
    ensure_raw_schema(conn)
    rows = [  # (message_id, day): m1 reused on a later day, m3 twice on one day
        ("m1", "2026-12-01"),
        ("m2", "2026-12-01"),
        ("m1", "2026-12-03"),
        ("m3", "2026-12-03"),
        ("m3", "2026-12-03"),
        ("m4", "2026-12-04"),
    ]
    for message_id, day in rows:
        conn.execute(
            """insert into raw.events (message_id, type, event, user_id, "timestamp",
                 _partition_date, _loaded_at, _source, _source_file, _source_line)
               values ($m, 'track', 'Signed In', 'u1', $d::timestamp + interval 3 hour, $d,
                 now()::timestamp, 'files', 'f.jsonl', 1)""",
            {"m": message_id, "d": day},
        )


def test_row_frame_timestamps_are_nanoseconds() -> None:
    """GX's ExpectColumnValuesToBeBetween is vectorised only for datetime64[ns]: DuckDB's
    microseconds went through one Python call per value."""
    conn = duckdb.connect()
    _events(conn)
    spec = table_spec("raw.events")
    frame = row_frame(
        conn, spec, declared_columns(conn, spec), [date(2026, 12, 3)], QualityConfig()
    )
    assert len(frame) == 3
    assert frame["timestamp"].dtype == "datetime64[ns]"
    assert frame["timestamp"].min() == pd.Timestamp("2026-12-03 03:00")


def test_out_of_nanosecond_range_stays() -> None:
    frame = pd.DataFrame({"t": pd.Series([pd.Timestamp("2500-01-01")], dtype="datetime64[us]")})
    assert str(_ns_times(frame)["t"].dtype) == "datetime64[us]"


def test_partition_frame_counts_and_reuse() -> None:
    conn = duckdb.connect()
    _events(conn)
    spec = table_spec("raw.events")
    declared = declared_columns(conn, spec)
    frame = partition_frame(
        conn, spec, declared, [date(2026, 12, 4), date(2026, 12, 3)], QualityConfig()
    )
    got = frame[["partition_date", "row_count", "rows_reusing_earlier_id"]].to_dict("records")
    assert [
        (str(r["partition_date"])[:10], r["row_count"], r["rows_reusing_earlier_id"]) for r in got
    ] == [
        ("2026-12-03", 3, 1),
        ("2026-12-04", 1, 0),
    ]
    empty = partition_frame(conn, spec, declared, [], QualityConfig())
    assert empty.empty
