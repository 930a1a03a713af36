"""Data quality gates: GX suites for the raw tables and `fct_user_features`, the runner that
validates DuckDB partitions with them, and the quarantine reconciliation. Plain Python; the
Dagster wiring turns `SuiteResult`s into asset checks."""

from importlib import import_module
from typing import Any

# Attributes load on first use: importing `expectations.tables` (the raw contract the sources
# read) must not import Great Expectations.
_LAZY = {
    "AcceptedValues": "expectations.config",
    "QualityConfig": "expectations.config",
    "QualityConfigError": "expectations.config",
    "CheckOutcome": "expectations.outcome",
    "SuiteResult": "expectations.outcome",
    "QuarantineSummary": "expectations.quarantine",
    "check_quarantine": "expectations.quarantine",
    "quarantine_summary": "expectations.quarantine",
    "validate_table": "expectations.runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'expectations' has no attribute {name!r}")


__all__ = [
    "AcceptedValues",
    "CheckOutcome",
    "QualityConfig",
    "QualityConfigError",
    "QuarantineSummary",
    "SuiteResult",
    "check_quarantine",
    "quarantine_summary",
    "validate_table",
]
