"""`segflow sources check`: a dry run of the declared mappings over a landing folder.

Every table is loaded into an in-memory DuckDB (nothing is written anywhere): events first, so
CRM and billing records can be matched to product users. The result lists, per file, the source
and preset that claimed it, rows read / loaded / quarantined by reason, and the first errors
with file and line; skipped files with their reason; and mapping errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from orchestration.sources.files import SourceError
from orchestration.sources.load import RAW_TABLES, LoadReport, load_partitions
from orchestration.sources.mappings import MappingError, SourcesConfig, load_config

ORDER = ("events", *(t for t in RAW_TABLES if t != "events"))


@dataclass
class CheckResult:
    landing: Path
    config: SourcesConfig | None = None
    reports: dict[str, LoadReport] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # mapping errors, unreadable files
    first_errors: dict[str, list[tuple]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and not any(r.blocking_skipped for r in self.reports.values())


def check_sources(
    landing: Path,
    sources_file: Path | None = None,
    late_arrival_days: int = 3,
    now: datetime | None = None,
    error_lines: int = 5,
) -> CheckResult:
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
                )
            except SourceError as exc:
                result.errors.append(f"{table}: {exc}")
                continue
            result.reports[table] = report
            result.first_errors[table] = conn.execute(
                "select source_file, source_line, reason_code, reason_detail from raw.quarantine "
                "where table_name = ? order by source_file, source_line limit ?",
                [table, error_lines],
            ).fetchall()
    return result


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
        if report.identity:
            lines.append(f"  identity: {dict(sorted(report.identity.items()))}")
            for f, line, uid in report.unmatched_sample[:5]:
                lines.append(f"    unmatched {f}:{line} kept user_id {uid}")
        for f, line, code, detail in result.first_errors.get(table, []):
            lines.append(f"  error {f}:{line} {code}: {detail}")
    ignored = {
        s.relative: s.reason for r in result.reports.values() for s in r.skipped if s.ignored
    }
    if ignored:
        lines.append(
            "\nnot read (ignored): "
            + "; ".join(f"{f} ({why})" for f, why in sorted(ignored.items()))
        )
    lines.append("\nOK" if result.ok else "\nPROBLEMS: see ERROR / SKIPPED lines above")
    return "\n".join(lines)
