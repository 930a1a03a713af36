"""Filling a load's report (`LoadReport`) from what the readers saw and from the typed rows:
the report before any row is read, the reader's notes, per-file counts, identity matches,
fallback and daylight-saving notes from a batch's `grouped_counts`, and the previews."""

from __future__ import annotations

from datetime import date

import pandas as pd

from orchestration.sources.load_report import LoadReport

UNMATCHED_SAMPLE = 20  # rows whose identity matched nothing, shown in the report


def new_report(table, source_name, source_dir, files, skipped, sources) -> LoadReport:
    """The report before any row is read: skipped files, file notes, sources and presets."""
    report = LoadReport(table, source_name, source_dir, [], pd.DataFrame(), pd.DataFrame())
    report.skipped = skipped
    report.warnings += [
        f"{table}: skipped {s.relative}: {s.reason}" for s in skipped if not s.ignored
    ]
    report.warnings += [f.note for f in files if f.note]
    report.file_sources = {f.relative: f.source for f in files}
    report.presets = {f.relative: sources[f.source].preset for f in files if f.source in sources}
    return report


def file_counts(conn, typed: str, where: str, report: LoadReport, groups: list, rf=None) -> None:
    """Per file: rows loaded / quarantined by reason, and identity matches (from the batch's
    `grouped_counts`); the first unmatched rows as a sample (raw-first `rf`: read from raw by
    the token's identity character, without decoding every row's token)."""
    for _day, file, code, ident, used, dst, n in groups:
        for hit in (dst or "").split(",") if dst else ():
            report.dst[hit] = report.dst.get(hit, 0) + n
        if used and code is None:
            for col in used.split(","):
                key = f"{col}<-fallback"
                report.fallbacks[key] = report.fallbacks.get(key, 0) + n
        counts = report.file_counts.setdefault(
            file, {"loaded": 0, "quarantined": 0, "by_reason": {}}
        )
        if code is None:
            counts["loaded"] += n
        else:
            counts["quarantined"] += n
            counts["by_reason"][code] = counts["by_reason"].get(code, 0) + n
        if ident is not None:
            report.identity[ident] = report.identity.get(ident, 0) + n
    if any(ident == "unmatched" for *_, ident, _used, _dst, _n in groups):
        rows = (
            rf.unmatched_sql(where, groups)
            if rf is not None
            else f"select source_file, source_line, user_id from {typed} where {where} and "
            "_identity = 'unmatched'"
        )
        report.unmatched_sample += conn.execute(
            f"select * from ({rows}) order by source_file, source_line limit {UNMATCHED_SAMPLE}"
        ).fetchall()


def note_read(report: LoadReport, read) -> None:
    """What the reader saw in a group of files (`stage.ReadResult`), as report facts and
    warnings."""
    report.extra_columns.update(read.extra_columns)
    report.incomplete.update(read.incomplete)
    report.warnings += read.warnings
    report.warnings += [f"{rel}: incomplete export: {why}" for rel, why in read.incomplete.items()]
    report.rows_per_file.update(read.rows_per_file)
    report.footer_lines.update(read.footer_lines)
    report.warnings += [
        f"{rel}: {n} footer line(s) of a report export not loaded"
        for rel, n in read.footer_lines.items()
    ]
    report.empty_files += read.empty_files
    for rel, cols in read.extra_columns.items():
        report.warnings.append(
            f"{rel}: extra columns outside the contract kept only in the payload: {', '.join(cols)}"
        )
    report.warnings += [f"{rel}: empty file (no rows)" for rel in read.empty_files]


def finish_report(
    conn, table: str, dates: list[date], report: LoadReport, line_bound: int | None = None
) -> None:
    """The first rows loaded and quarantined, for the report (`line_bound`: no row loaded
    past that source line is among the first, see `RawFirst.preview_bound`)."""
    bounded = "" if line_bound is None else f" and _source_line <= {int(line_bound)}"
    report.preview = conn.execute(
        f"""select * from raw.{table} where list_contains($d, _partition_date){bounded}
            order by _partition_date, _source_file, _source_line limit 20""",
        {"d": dates},
    ).df()
    report.quarantine_preview = conn.execute(
        """select * from raw.quarantine where table_name = $t
             and (list_contains($d, partition_date) or partition_date is null)
           order by partition_date, source_file, source_line limit 20""",
        {"t": table, "d": dates},
    ).df()
