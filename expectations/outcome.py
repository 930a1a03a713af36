"""Result objects the Dagster wiring turns into asset-check metadata (JSON-safe throughout)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

Severity = Literal["error", "warn"]
MAX_TEXT = 200


def json_safe(value: Any, max_text: int = MAX_TEXT) -> Any:
    """Plain JSON types only: numpy/pandas scalars unwrapped, NaN/NA -> None, text truncated."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if len(value) <= max_text else value[:max_text] + f"... ({len(value)} chars)"
    if isinstance(value, dict):
        return {str(k): json_safe(v, max_text) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, max_text) for v in value]
    if hasattr(value, "isoformat"):
        try:
            return value.isoformat()
        except ValueError:  # NaT
            return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return json_safe(str(value), max_text)


@dataclass(frozen=True)
class CheckOutcome:
    """One expectation's verdict on a table's partitions."""

    check: str  # stable name, e.g. "events.message_id.not_null"
    table: str  # e.g. "raw.events"
    column: str | None
    expectation: str  # GX expectation type
    severity: Severity
    passed: bool
    expected: str
    message: str  # what was expected and what was found, naming table/partition/column
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    element_count: int | None = None  # rows the check looked at (non-null for column rules)
    sample_unexpected: list[Any] = field(default_factory=list)  # JSON-safe, truncated
    observed_value: Any = None  # JSON-safe
    partitions: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        """A failed structural check: downstream assets must not run on this data."""
        return not self.passed and self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "blocking": self.blocking}


@dataclass(frozen=True)
class SuiteResult:
    """Every outcome of one table's suite over the validated partitions."""

    suite: str  # e.g. "raw_events"
    table: str
    partition_dates: list[date]
    row_count: int
    outcomes: list[CheckOutcome]
    data_docs_index: Path | None = None
    validated_at: datetime | None = None

    @property
    def passed(self) -> bool:
        """True when nothing blocks (warnings allowed)."""
        return not self.blocking_failures

    @property
    def blocking_failures(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if o.blocking]

    @property
    def warnings(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.passed and o.severity == "warn"]

    @property
    def failing(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.passed]

    @property
    def severity(self) -> Severity:
        """`error` when a structural check failed, else `warn` (what a Dagster check reports)."""
        return "error" if self.blocking_failures else "warn"

    @property
    def data_docs_url(self) -> str | None:
        return self.data_docs_index.resolve().as_uri() if self.data_docs_index else None

    def outcome(self, check: str) -> CheckOutcome:
        for item in self.outcomes:
            if item.check == check:
                return item
        raise KeyError(f"{self.suite}: no check named {check!r}")

    def summary(self) -> str:
        parts = ", ".join(d.isoformat() for d in self.partition_dates[:3])
        if len(self.partition_dates) > 3:
            parts += f", ... ({len(self.partition_dates)} partitions)"
        return (
            f"{self.table} [{parts}]: {len(self.outcomes)} checks, "
            f"{len(self.blocking_failures)} blocking failure(s), "
            f"{len(self.warnings)} warning(s), {self.row_count} rows"
        )

    def failing_table(self, sample_chars: int = 120) -> list[dict[str, Any]]:
        """Flat rows (one per failing check) for a markdown metadata table."""
        return [
            {
                "check": o.check,
                "severity": o.severity,
                "column": o.column or "",
                "unexpected_count": o.unexpected_count,
                "unexpected_percent": round(o.unexpected_percent, 3)
                if o.unexpected_percent is not None
                else None,
                "sample": json_safe(repr(o.sample_unexpected[:3]), sample_chars),
                "message": o.message,
            }
            for o in self.failing
        ]

    def metadata(self) -> dict[str, Any]:
        """JSON-safe dict for check metadata: counts, failing checks, Data Docs link."""
        return {
            "suite": self.suite,
            "table": self.table,
            "partitions": [d.isoformat() for d in self.partition_dates],
            "row_count": self.row_count,
            "checks_evaluated": len(self.outcomes),
            "blocking_failures": len(self.blocking_failures),
            "warnings": len(self.warnings),
            "failing_checks": [o.to_dict() for o in self.failing],
            "data_docs_url": self.data_docs_url,
        }
