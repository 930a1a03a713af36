"""The load gate's verdict, one implementation for the run and for `segflow sources check`.

A load blocks when (1) the warehouse quarantine gate (`expectations.check_quarantine`: the
quarantined share per partition, and read = loaded + quarantined) fails, (2) rows quarantined
before their date was known (no partition; e.g. undecodable lines of an undated file) pass the
same share of the rows this load read, (3) a landing file was skipped, or (4) a JSON document
is one page of a paginated export (`has_more: true`, ...). The ingest asset and
the dry run both call `verdict`, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from contracts import tracking_plan
from expectations.config import QualityConfig
from expectations.quarantine import check_quarantine
from orchestration.sources.load import LoadReport

# One line of advice per reason code: what to change so the rows load.
FIXES = {
    "unknown_event": "add the event names under vars.tracking_plan in dbt_project.yml, or map "
    "them with a `map:` rule on columns.event in sources.yml",
    "bad_encoding": "set `encoding:` for the source in sources.yml (e.g. latin-1), or re-export "
    "the file as UTF-8",
    "malformed_json": "check the file is JSON lines or one JSON document (set `format:`); "
    "truncated files need re-exporting",
    "malformed_csv": "check the delimiter (`csv: {delimiter: ';'}`) and quoting of the file",
    "missing_required_column": "map the column under `columns:` in sources.yml (the detail "
    "names the header found)",
    "wrong_type": "declare the value's format under `columns.<col>.format` (e.g. epoch_ms, "
    "%d/%m/%Y)",
    "implausible_timestamp": "the epoch unit is wrong: set `format:` to the unit the detail "
    "suggests",
    "null_key": "map the key column (ids) under `columns:`, or drop rows without one upstream",
    "missing_paid_date": "map paid_at, or declare `fallback:` under columns.paid_at",
    "invalid_value": "map the values with `map:` (the detail lists the accepted ones)",
    "timestamp_in_future": "declare the time zone of naive timestamps (`time_zone:`)",
    "outside_late_window": "raise SEGFLOW_LATE_ARRIVAL_DAYS, or load the file into the "
    "partition of its events",
    "negative_amount": "refunds / credits belong in status refunded, not negative amounts",
    "bad_attribute_value": "fix the value in the CRM export (dates YYYY-MM-DD, numbers with a "
    "dot), or declare the attribute as a category under `attributes:`; the contact loads",
    "amount_out_of_range": "check the amount's unit (`minor_units: true`, `divide_by:`), or "
    "raise SEGFLOW_DQ_MAX_AMOUNT",
}


def gate_config(settings) -> QualityConfig:
    """The settings' thresholds with the tracking plan's event names and plans: the run's
    gates and `segflow sources check` use this one definition."""
    plan = tracking_plan.load()
    return settings.quality.accepting(event_names=plan.known_events, plans=plan.plans)


@dataclass
class Verdict:
    table: str
    blocking: list[str] = field(default_factory=list)  # why the run would stop
    checks: list = field(default_factory=list)  # the warehouse gate's CheckOutcomes

    @property
    def passed(self) -> bool:
        return not self.blocking


def unassigned_failure(report: LoadReport, config: QualityConfig) -> str | None:
    """Quarantined rows with no partition, against the rows this load read."""
    rows = sum(sum(r.values()) for r in report.unassigned.values())
    read = report.rows_read
    if (
        not rows
        or rows < config.quarantine_min_rows
        or rows / max(read, 1) <= config.max_quarantine_share
    ):
        return None
    files = "; ".join(
        f"{f}: " + ", ".join(f"{k}={n}" for k, n in sorted(r.items()))
        for f, r in sorted(report.unassigned.items())[:5]
    )
    return (
        f"{report.table}: {rows} of {read} rows read ({rows / max(read, 1):.1%}, limit "
        f"{config.max_quarantine_share:.1%}) were quarantined before their date was known "
        f"(no partition): {files}"
    )


def skipped_failure(report: LoadReport) -> str | None:
    skipped = report.blocking_skipped
    if not skipped:
        return None
    listed = "; ".join(f"{s.relative}: {s.reason}" for s in skipped[:5])
    return (
        f"{report.table}: {len(skipped)} landing file(s) not read ({listed}); fix them or "
        "declare `on_skip: ignore` / `ignore:` in sources.yml"
    )


def incomplete_failure(report: LoadReport) -> str | None:
    if not report.incomplete:
        return None
    listed = "; ".join(f"{f}: {why}" for f, why in sorted(report.incomplete.items())[:5])
    return f"{report.table}: {len(report.incomplete)} file(s) are one page of a longer export ({listed})"


def load_failures(report: LoadReport, config: QualityConfig) -> list[str]:
    """What blocks a load besides the warehouse gate: partitionless quarantined rows, skipped
    files, paginated exports holding one page, a required / money mapping that matched
    nothing."""
    found = (
        unassigned_failure(report, config),
        skipped_failure(report),
        incomplete_failure(report),
        *report.mapping_errors,
    )
    return [f for f in found if f]


def verdict(conn: duckdb.DuckDBPyConnection, report: LoadReport, config: QualityConfig) -> Verdict:
    """Every gate rule over a finished load (`report`) and the warehouse it wrote to."""
    dates = sorted(p.partition_date for p in report.partitions if p.partition_date is not None)
    rows_read = {p.partition_date: p.rows_read for p in report.partitions if p.partition_date}
    result = Verdict(report.table)
    if dates:
        gate = check_quarantine(conn, f"raw.{report.table}", dates, config, rows_read=rows_read)
        result.checks = gate.outcomes
        result.blocking += [o.message for o in gate.outcomes if not o.passed]
    result.blocking += load_failures(report, config)
    return result


def top_reasons(reports: dict[str, LoadReport], limit: int = 5) -> list[str]:
    """The most frequent quarantine reasons with a one-line fix each."""
    counts: dict[tuple[str, str], int] = {}
    for table, report in reports.items():
        for reason, n in report.quarantined_by_reason.items():
            counts[(table, reason)] = counts.get((table, reason), 0) + n
    lines = []
    for (table, reason), n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]:
        fix = FIXES.get(reason, "see the error lines above")
        lines.append(f"{table}: {n} row(s) {reason}: {fix}")
    return lines
