"""Quarantine reconciliation: per partition, rows read = rows loaded + rows quarantined, the
count by reason code, and a blocking check when the quarantined share passes its threshold.

Counts come from the warehouse itself (the raw table and `raw.quarantine`, rows not yet
replayed), so they hold whatever loaded them; the loader's own `rows_read` can be passed in
to reconcile against what it read from the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import duckdb
import pandas as pd

from expectations.config import QualityConfig
from expectations.outcome import CheckOutcome, SuiteResult
from expectations.row_counts import PartitionTotals, reason_text, reason_totals
from expectations.tables import table_spec


@dataclass(frozen=True)
class PartitionCounts:
    partition_date: date
    rows_loaded: int
    rows_quarantined: int
    by_reason: dict[str, int] = field(default_factory=dict)
    reported_rows_read: int | None = None  # what the loader says it read, when given

    @property
    def rows_read(self) -> int:
        return self.rows_loaded + self.rows_quarantined

    @property
    def reconciles(self) -> bool:
        return self.reported_rows_read is None or self.reported_rows_read == self.rows_read

    @property
    def quarantined_share(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


@dataclass(frozen=True)
class QuarantineSummary(PartitionTotals):
    table: str
    partitions: list[PartitionCounts]
    rows_unassigned: int = 0  # quarantined rows of undated files with no usable date (no partition)

    @property
    def rows_read(self) -> int:
        return self.rows_loaded + self.rows_quarantined

    @property
    def by_reason(self) -> dict[str, int]:
        return reason_totals(p.by_reason for p in self.partitions)

    def frame(self) -> pd.DataFrame:
        """One row per partition (for metadata tables)."""
        return pd.DataFrame(
            [
                {
                    "partition_date": p.partition_date.isoformat(),
                    "rows_read": p.rows_read,
                    "rows_loaded": p.rows_loaded,
                    "rows_quarantined": p.rows_quarantined,
                    "quarantined_share": round(p.quarantined_share, 6),
                    "reported_rows_read": p.reported_rows_read,
                    "reconciles": p.reconciles,
                    "by_reason": reason_text(p.by_reason),
                }
                for p in self.partitions
            ]
        )


def quarantine_summary(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    partition_dates: Sequence[date],
    rows_read: Mapping[date, int] | None = None,
) -> QuarantineSummary:
    """Loaded and quarantined (not yet replayed) row counts per partition and reason."""
    spec = table_spec(table)
    dates = sorted(set(partition_dates))
    loaded: dict[date, int] = {}
    if _exists(conn, spec.schema, spec.short_name):
        loaded = dict(
            conn.execute(
                f"select {spec.partition_column}::date, count(*) from {spec.name} "
                f"where {spec.partition_column} in (select unnest(?::date[])) group by 1",
                [dates],
            ).fetchall()
        )
    reasons: dict[date, dict[str, int]] = {}
    if _exists(conn, "raw", "quarantine"):
        for day, reason, n in conn.execute(
            "select partition_date::date, reason_code, count(*) from raw.quarantine "
            "where table_name in (?, ?) and replayed_at is null "
            "and partition_date in (select unnest(?::date[])) group by 1, 2",
            [spec.short_name, spec.name, dates],
        ).fetchall():
            reasons.setdefault(day, {})[reason] = n
    unassigned = 0
    if _exists(conn, "raw", "quarantine"):
        unassigned = conn.execute(
            "select count(*) from raw.quarantine where table_name in (?, ?) "
            "and replayed_at is null and partition_date is null",
            [spec.short_name, spec.name],
        ).fetchall()[0][0]
    reported = _reported_rows(rows_read, spec.name)
    return QuarantineSummary(
        spec.name,
        [
            PartitionCounts(
                d,
                loaded.get(d, 0),
                sum(reasons.get(d, {}).values()),
                dict(sorted(reasons.get(d, {}).items())),
                reported.get(d),
            )
            for d in dates
        ],
        unassigned,
    )


def _reported_rows(rows_read: Mapping | None, table: str) -> dict[date, int]:
    """The loader's rows read per partition date. Rows of undated files with no usable date
    have no partition (key None): they are counted in `rows_unassigned`, not reconciled per
    day. Any other key that is not a date is an error naming the table and the key."""
    reported: dict[date, int] = {}
    for d, n in (rows_read or {}).items():
        if d is None:
            continue
        if isinstance(d, date):
            reported[d] = n
            continue
        try:
            reported[date.fromisoformat(str(d))] = n
        except ValueError as exc:
            raise ValueError(
                f"{table}: rows_read has partition key {d!r}, expected a date YYYY-MM-DD "
                "(or None for undated rows without a usable date)"
            ) from exc
    return reported


def check_quarantine(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    partition_dates: Sequence[date],
    config: QualityConfig | None = None,
    rows_read: Mapping[date, int] | None = None,
) -> SuiteResult:
    """Blocking checks: quarantined share <= max_quarantine_share per partition (judged once a
    partition has `quarantine_min_rows` quarantined rows, so one bad invoice in a day of ten
    does not stop the pipeline), and (when the loader's rows_read is given) rows read = rows
    loaded + rows quarantined."""
    config = config or QualityConfig()
    summary = quarantine_summary(conn, table, partition_dates, rows_read)
    dates = [p.partition_date for p in summary.partitions]
    limit = config.max_quarantine_share
    floor = config.quarantine_min_rows
    over = [
        p for p in summary.partitions if p.quarantined_share > limit and p.rows_quarantined >= floor
    ]
    short = summary.table.split(".")[-1]
    where = f"{summary.table} [{', '.join(d.isoformat() for d in dates[:3])}" + (
        f", ... ({len(dates)} partitions)]" if len(dates) > 3 else "]"
    )
    share_msg = (
        f"quarantined share above {limit:.1%} in "
        + "; ".join(
            f"{p.partition_date}: {p.rows_quarantined}/{p.rows_read} "
            f"({p.quarantined_share:.1%}) by reason {p.by_reason}"
            for p in over[:5]
        )
        if over
        else f"quarantined share at most {limit:.1%} in every partition"
    )
    outcomes = [
        CheckOutcome(
            check=f"{short}.quarantine.share",
            table=summary.table,
            column=None,
            expectation="quarantined_share_at_most",
            severity="error",
            passed=not over,
            expected=f"at most {limit:.1%} of rows read quarantined per partition "
            f"(partitions with {floor}+ quarantined rows)",
            message=f"{'ok' if not over else 'FAILED'} {where}: {share_msg}",
            unexpected_count=len(over),
            unexpected_percent=100.0 * len(over) / len(dates) if dates else 0.0,
            sample_unexpected=[
                {
                    "partition_date": p.partition_date.isoformat(),
                    "rows_read": p.rows_read,
                    "rows_quarantined": p.rows_quarantined,
                    "by_reason": p.by_reason,
                }
                for p in over[: config.sample_size]
            ],
            observed_value={
                "rows_read": summary.rows_read,
                "rows_loaded": summary.rows_loaded,
                "rows_quarantined": summary.rows_quarantined,
                "by_reason": summary.by_reason,
                "rows_unassigned": summary.rows_unassigned,
            },
            partitions=[d.isoformat() for d in dates],
        )
    ]
    if rows_read is not None:
        off = [p for p in summary.partitions if not p.reconciles]
        outcomes.append(
            CheckOutcome(
                check=f"{short}.quarantine.reconciles",
                table=summary.table,
                column=None,
                expectation="rows_read_equals_loaded_plus_quarantined",
                severity="error",
                passed=not off,
                expected="rows read = rows loaded + rows quarantined",
                message=(
                    f"{'ok' if not off else 'FAILED'} {where}: "
                    + (
                        "; ".join(
                            f"{p.partition_date}: loader read {p.reported_rows_read}, warehouse "
                            f"holds {p.rows_loaded} loaded + {p.rows_quarantined} quarantined"
                            for p in off[:5]
                        )
                        if off
                        else "rows read = loaded + quarantined"
                    )
                ),
                unexpected_count=len(off),
                sample_unexpected=[
                    {
                        "partition_date": p.partition_date.isoformat(),
                        "reported_rows_read": p.reported_rows_read,
                        "rows_loaded": p.rows_loaded,
                        "rows_quarantined": p.rows_quarantined,
                    }
                    for p in off[:20]
                ],
                partitions=[d.isoformat() for d in dates],
            )
        )
    return SuiteResult(
        f"raw_{short}_quarantine",
        summary.table,
        dates,
        summary.rows_read,
        outcomes,
        None,
        datetime.now(UTC).replace(tzinfo=None),
    )


def _exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = conn.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(rows[0][0])
