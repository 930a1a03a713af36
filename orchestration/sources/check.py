"""`segflow sources check`: a dry run of the declared mappings over a landing folder.

Every table is loaded into an in-memory DuckDB (nothing is written anywhere): events first, so
CRM and billing records can be matched to product users. The result lists, per file, the source
and preset that claimed it, rows read / loaded / quarantined by reason, and the first errors
with file and line; skipped files with their reason; and mapping errors. Declared custom
attributes whose values do not parse are recorded and reported as the run's WARN check does
(`bad_attribute_value`; not a gate).

The verdict is the run's (`orchestration/sources/verdict.py`, with the run's quality settings):
the check fails exactly where the run's quarantine gate would block, and lists the top reasons
with a one-line fix each. Data never crashes it: an unreadable file is an ERROR line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from contracts.attributes import QUARANTINE_TABLE
from contracts.raw import LATE_ARRIVAL_DAYS
from expectations.config import QualityConfig
from orchestration.sources.attribute_values import AttributeValueReport, record_bad_attribute_values
from orchestration.sources.compiler import DST_RULE
from orchestration.sources.files import SourceError
from orchestration.sources.load import RAW_TABLES, LoadReport, load_partitions
from orchestration.sources.mappings import MappingError, SourcesConfig, load_config
from orchestration.sources.verdict import Verdict, top_reasons, verdict

ORDER = ("events", *(t for t in RAW_TABLES if t != "events"))


@dataclass
class CheckResult:
    landing: Path
    config: SourcesConfig | None = None
    reports: dict[str, LoadReport] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # mapping errors, unreadable files
    first_errors: dict[str, list[tuple]] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    event_names: list[tuple[str, int]] = field(default_factory=list)  # unknown, most rows first
    # declared custom attributes whose values do not parse: the run's WARN check, not a gate
    attribute_values: AttributeValueReport | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and all(v.passed for v in self.verdicts.values())


def check_sources(
    landing: Path,
    sources_file: Path | None = None,
    late_arrival_days: int = LATE_ARRIVAL_DAYS,
    now: datetime | None = None,
    error_lines: int = 5,
    quality: QualityConfig | None = None,
    timestamp_floor=None,
) -> CheckResult:
    """`quality`: the run's gate settings (default: QualityConfig() defaults)."""
    quality = quality or QualityConfig()
    result = CheckResult(Path(landing))
    try:
        result.config = load_config(landing, sources_file)
    except MappingError as exc:
        result.errors.append(str(exc))
        return result
    with duckdb.connect() as conn:
        for table in ORDER:
            try:
                report = load_partitions(
                    conn,
                    table,
                    None,
                    landing,
                    "files",
                    late_arrival_days,
                    now=now,
                    config=result.config,
                    timestamp_floor=timestamp_floor,
                    max_amount=quality.max_amount,
                )
            except SourceError as exc:
                result.errors.append(f"{table}: {exc}")
                continue
            except (duckdb.Error, ValueError, OSError) as exc:  # never a traceback on data
                result.errors.append(f"{table}: cannot load ({type(exc).__name__}: {exc})")
                continue
            result.reports[table] = report
            result.verdicts[table] = verdict(conn, report, quality)
            result.first_errors[table] = _first_errors(conn, table, error_lines)
            if table == "crm_contacts" and result.config.attributes:  # as the run records them
                result.attribute_values = record_bad_attribute_values(
                    conn, result.config.attributes, None, now
                )
                result.first_errors[QUARANTINE_TABLE] = _first_errors(
                    conn, QUARANTINE_TABLE, error_lines
                )
        result.event_names = _unknown_event_names(conn)
    return result


def _first_errors(conn: duckdb.DuckDBPyConnection, table: str, limit: int) -> list[tuple]:
    return conn.execute(
        "select source_file, source_line, reason_code, reason_detail from raw.quarantine "
        "where table_name = ? order by source_file, source_line limit ?",
        [table, limit],
    ).fetchall()


def _unknown_event_names(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """Track event names quarantined as not in the tracking plan, most rows first."""
    return conn.execute(
        """select regexp_extract(reason_detail, 'track event ''(.*)'' is not in', 1) as name,
                  count(*) as n
           from raw.quarantine where table_name = 'events' and reason_code = 'unknown_event'
             and reason_detail like 'track event %'
           group by 1 order by n desc, name limit 10"""
    ).fetchall()


def render(result: CheckResult) -> str:
    lines = [
        f"landing: {result.landing}",
        f"mappings: {result.config.path if result.config and result.config.path else '(defaults: <table>/dt=YYYY-MM-DD/)'}",
    ]
    for err in result.errors:
        lines.append(f"ERROR {err}")
    for table, report in result.reports.items():
        lines.append(
            f"\n{table}: read {report.rows_read}, loaded {report.rows_loaded}, "
            f"quarantined {report.rows_quarantined}"
            + (f" {report.quarantined_by_reason}" if report.rows_quarantined else "")
        )
        for row in report.per_file_rows():
            if row["status"] == "loaded":
                by = f" [{row['quarantined_by_reason']}]" if row["quarantined_by_reason"] else ""
                extra = f", {row['footer_lines']} footer lines" if row["footer_lines"] else ""
                lines.append(
                    f"  {row['file']}: source {row['source']}"
                    f" (preset {row['preset'] or '-'}): read {row['rows_read']}, "
                    f"loaded {row['rows_loaded']}, quarantined "
                    f"{row['rows_quarantined']}{by}{extra}"
                )
            elif row["status"] == "skipped":
                lines.append(f"  {row['file']}: SKIPPED: {row['reason']}")
        if report.dst:
            lines.append(f"  daylight saving: {dict(sorted(report.dst.items()))} ({DST_RULE})")
        for warning in _notable(report.warnings)[:10]:
            lines.append(f"  warning {warning}")
        if report.identity:
            lines.append(f"  identity: {dict(sorted(report.identity.items()))}")
            for f, line, uid in report.unmatched_sample[:5]:
                lines.append(f"    unmatched {f}:{line} kept user_id {uid}")
        for f, line, code, detail in result.first_errors.get(table, []):
            lines.append(f"  error {f}:{line} {code}: {detail}")
        if table == "crm_contacts" and result.attribute_values is not None:
            lines.append(f"  custom attributes: {result.attribute_values.message()}")
            for f, line, code, detail in result.first_errors.get(QUARANTINE_TABLE, []):
                lines.append(f"  error {f}:{line} {code}: {detail}")
    ignored = {
        s.relative: s.reason for r in result.reports.values() for s in r.skipped if s.ignored
    }
    if ignored:
        lines.append(
            "\nnot read (ignored): "
            + "; ".join(f"{f} ({why})" for f, why in sorted(ignored.items()))
        )
    lines += _verdict_lines(result)
    return "\n".join(lines)


def _notable(warnings: list[str]) -> list[str]:
    """Warnings the per-file lines do not already say (skips, empty files, footers)."""
    said = ("skipped ", "empty file", "footer line")
    return [w for w in dict.fromkeys(warnings) if not any(s in w for s in said)]


def _verdict_lines(result: CheckResult) -> list[str]:
    lines = []
    if result.event_names:
        listed = ", ".join(f"{name!r} ({n:,} rows)" for name, n in result.event_names[:5])
        lines.append(
            f"\n{len(result.event_names)}{'+' if len(result.event_names) == 10 else ''} event "
            f"name(s) not in the tracking plan: {listed}; add them under vars.tracking_plan in "
            "dbt_project.yml or map them with a `map:` rule on columns.event"
        )
    reasons = top_reasons(result.reports)
    if reasons:
        lines.append("\ntop reasons (fix):")
        lines += [f"  {line}" for line in reasons]
    blocking = [b for v in result.verdicts.values() for b in v.blocking]
    if result.ok:
        lines.append("\nOK: the run would pass the load gates")
    else:
        lines.append("\nBLOCKED: the run would stop here:")
        lines += [f"  {b}" for b in result.errors + blocking]
    return lines
