"""What a load found, for the run's metadata, the gate and the dry run: counts per partition
and per file, quarantine reasons, skipped files, fallbacks used, identity matches,
daylight-saving notes, incomplete exports and mappings that matched nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from expectations.row_counts import PartitionTotals, reason_text, reason_totals
from orchestration.sources.discover import SkippedFile


@dataclass
class PartitionCounts:
    partition_date: date | None  # None: undated rows whose date column is unusable
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    duplicate_keys: int = 0  # extra rows sharing a message_id/invoice_id in the day
    duplicate_keys_other_partitions: int = 0  # keys also loaded in nearby other partitions


@dataclass
class LoadReport(PartitionTotals):
    table: str
    source_name: str
    source_dir: Path
    partitions: list[PartitionCounts]
    preview: pd.DataFrame
    quarantine_preview: pd.DataFrame
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    skipped: list[SkippedFile] = field(default_factory=list)
    rows_per_file: dict[str, int] = field(default_factory=dict)  # rows staged per file
    file_counts: dict[str, dict] = field(default_factory=dict)  # loaded/quarantined per file
    file_sources: dict[str, str | None] = field(default_factory=dict)
    presets: dict[str, str | None] = field(default_factory=dict)
    footer_lines: dict[str, int] = field(default_factory=dict)
    identity: dict[str, int] = field(default_factory=dict)  # external_id/email/unmatched
    unmatched_sample: list[tuple] = field(default_factory=list)
    fallbacks: dict[str, int] = field(default_factory=dict)  # "<col><-fallback" -> rows loaded
    # rows quarantined before their date was known (no partition): file -> reason -> rows
    unassigned: dict[str, dict[str, int]] = field(default_factory=dict)
    incomplete: dict[str, str] = field(default_factory=dict)  # file -> pagination marker
    dst: dict[str, int] = field(default_factory=dict)  # "<col> gap|overlap" -> rows (DST_RULE)
    mapping_errors: list[str] = field(default_factory=list)  # a mapped money/required field empty

    @property
    def blocking_skipped(self) -> list[SkippedFile]:
        """Files not read that fail the load's gate (not hidden, not `on_skip: ignore`)."""
        return [s for s in self.skipped if not s.ignored]

    def per_file_rows(self) -> list[dict]:
        """One row per file read or skipped: rows read = loaded + quarantined (+ rows of
        undated files that belong to days outside this load)."""
        rows = []
        for rel, read in sorted(self.rows_per_file.items()):
            c = self.file_counts.get(rel, {"loaded": 0, "quarantined": 0, "by_reason": {}})
            rows.append(
                {
                    "file": rel,
                    "status": "loaded",
                    "source": self.file_sources.get(rel),
                    "preset": self.presets.get(rel),
                    "rows_read": read,
                    "rows_loaded": c["loaded"],
                    "rows_quarantined": c["quarantined"],
                    "rows_other_days": read - c["loaded"] - c["quarantined"],
                    "footer_lines": self.footer_lines.get(rel, 0),
                    "quarantined_by_reason": reason_text(c["by_reason"]),
                    "reason": "",
                }
            )
        for s in self.skipped:
            rows.append(
                {
                    "file": s.relative,
                    "status": "ignored" if s.ignored else "skipped",
                    "source": None,
                    "preset": None,
                    "rows_read": 0,
                    "rows_loaded": 0,
                    "rows_quarantined": 0,
                    "rows_other_days": 0,
                    "footer_lines": 0,
                    "quarantined_by_reason": "",
                    "reason": s.reason,
                }
            )
        return rows

    @property
    def rows_read(self) -> int:
        return sum(p.rows_read for p in self.partitions)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        return reason_totals(p.quarantined_by_reason for p in self.partitions)

    @property
    def files(self) -> list[str]:
        return sorted({f for p in self.partitions for f in p.files})

    @property
    def duplicate_keys(self) -> int:
        return sum(p.duplicate_keys for p in self.partitions)

    def per_partition_rows(self) -> list[dict]:
        return [
            {
                "partition_date": str(p.partition_date),
                "rows_read": p.rows_read,
                "rows_loaded": p.rows_loaded,
                "rows_quarantined": p.rows_quarantined,
                "quarantined_by_reason": reason_text(p.quarantined_by_reason),
                "duplicate_keys": p.duplicate_keys,
                "files": len(p.files),
            }
            for p in self.partitions
        ]


@dataclass
class ReplayReport:
    table: str
    candidates: int
    replayed: int
    still_failing_by_reason: dict[str, int]
