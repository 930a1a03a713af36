"""Row counts summed over partitions, written once for the two reports that show them: the
quarantine check's summary (expectations/quarantine.py, counted in the warehouse) and the
loader's report (orchestration/sources/load_report.py, counted while reading the files)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


class PartitionTotals:
    """Mixin for a report with `partitions` (each with `rows_loaded` and `rows_quarantined`):
    the report's totals are the sums over its partitions."""

    @property
    def rows_loaded(self) -> int:
        return sum(p.rows_loaded for p in self.partitions)  # type: ignore[attr-defined]

    @property
    def rows_quarantined(self) -> int:
        return sum(p.rows_quarantined for p in self.partitions)  # type: ignore[attr-defined]


def reason_totals(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Quarantined rows per reason code over several partitions or files, by code."""
    total: Counter[str] = Counter()
    for count in counts:
        total.update(count)
    return dict(sorted(total.items()))


def reason_text(counts: Mapping[str, int]) -> str:
    """`code=rows, ...` by code: the reasons column of a metadata table."""
    return ", ".join(f"{code}={n}" for code, n in sorted(counts.items()))
