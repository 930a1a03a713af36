"""Data quality gates: GX suites for the raw tables and `fct_user_features`, the runner that
validates DuckDB partitions with them, and the quarantine reconciliation. Plain Python; the
Dagster wiring turns `SuiteResult`s into asset checks."""

from expectations.config import AcceptedValues, QualityConfig, QualityConfigError, env_var_table
from expectations.outcome import CheckOutcome, SuiteResult
from expectations.quarantine import QuarantineSummary, check_quarantine, quarantine_summary
from expectations.runner import validate_table

__all__ = [
    "AcceptedValues",
    "CheckOutcome",
    "QualityConfig",
    "QualityConfigError",
    "QuarantineSummary",
    "SuiteResult",
    "check_quarantine",
    "env_var_table",
    "quarantine_summary",
    "validate_table",
]
