"""Quality thresholds and accepted values, as one dataclass the Dagster wiring passes in.

`expectations/` never imports `orchestration` (DESIGN section 1): the tracking plan's event
names and plans arrive as arguments, thresholds from `SEGFLOW_DQ_*` environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import date

# Contract-level vocabularies (docs/contracts.md); overridable per deployment via arguments.
EVENT_TYPES = ("track", "identify", "page")
CURRENCIES = ("USD", "EUR", "GBP")
COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
INVOICE_STATUSES = ("paid", "open", "void", "refunded")
PLANS = ("free", "trial", "pro", "enterprise")


class QualityConfigError(ValueError):
    """A SEGFLOW_DQ_* variable holds a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class AcceptedValues:
    """Value sets the suites accept. `event_names=None` skips the tracking-plan check."""

    event_names: frozenset[str] | None = None
    event_types: tuple[str, ...] = EVENT_TYPES
    plans: tuple[str, ...] = PLANS
    currencies: tuple[str, ...] = CURRENCIES
    company_sizes: tuple[str, ...] = COMPANY_SIZES
    invoice_statuses: tuple[str, ...] = INVOICE_STATUSES


# Environment variable of each numeric field. Late arrival and quarantine share are shared with
# the loader, so they keep the names orchestration/settings.py already reads.
_ENV_NAMES = {
    "duplicate_warn_share": "SEGFLOW_DQ_DUPLICATE_WARN_SHARE",
    "max_quarantine_share": "SEGFLOW_QUARANTINE_MAX_SHARE",
    "quarantine_min_rows": "SEGFLOW_DQ_QUARANTINE_MIN_ROWS",
    "row_count_drop_share": "SEGFLOW_DQ_ROW_COUNT_DROP_SHARE",
    "row_count_history_days": "SEGFLOW_DQ_ROW_COUNT_HISTORY_DAYS",
    "row_count_min_history": "SEGFLOW_DQ_ROW_COUNT_MIN_HISTORY",
    "row_count_min_baseline": "SEGFLOW_DQ_ROW_COUNT_MIN_BASELINE",
    "late_arrival_days": "SEGFLOW_LATE_ARRIVAL_DAYS",
    "future_tolerance_minutes": "SEGFLOW_DQ_FUTURE_TOLERANCE_MINUTES",
    "max_amount": "SEGFLOW_DQ_MAX_AMOUNT",
    "max_property_bytes": "SEGFLOW_DQ_MAX_PROPERTY_BYTES",
    "max_session_minutes": "SEGFLOW_DQ_MAX_SESSION_MINUTES",
    "features_min_mean_events_28d": "SEGFLOW_DQ_FEATURES_MIN_MEAN_EVENTS_28D",
    "features_max_mean_events_28d": "SEGFLOW_DQ_FEATURES_MAX_MEAN_EVENTS_28D",
    "sample_size": "SEGFLOW_DQ_SAMPLE_SIZE",
    "gx_keep_results": "SEGFLOW_DQ_GX_KEEP_RESULTS",
    "chunk_days": "SEGFLOW_DQ_CHUNK_DAYS",
}


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality gates; every numeric field has an environment variable."""

    duplicate_warn_share: float = 0.01  # share of rows sharing a message_id/invoice_id -> warn
    max_quarantine_share: float = 0.05  # quarantined / read per partition above this -> error
    quarantine_min_rows: int = 10  # ...once a partition has at least this many quarantined rows
    row_count_drop_share: float = 0.8  # a partition this much below the trailing median -> error
    row_count_history_days: int = 14  # trailing window for that median
    row_count_min_history: int = 3  # partitions with data needed before the volume rule applies
    row_count_min_baseline: int = 20  # ...and a trailing median of at least this many rows
    late_arrival_days: int = 3  # event/invoice timestamps may be this many days before dt=
    future_tolerance_minutes: int = 15  # clock skew allowed before "in the future"
    max_amount: float = 1_000_000.0  # invoice amounts above this warn
    max_property_bytes: int = 1_048_576  # properties/context JSON text above this warn
    max_session_minutes: float = 720.0  # avg_session_minutes_28d above this warns
    features_min_mean_events_28d: float = 0.1
    features_max_mean_events_28d: float = 5_000.0
    sample_size: int = 20  # unexpected values kept per check (each truncated to 200 chars)
    gx_keep_results: int = 30  # validation results kept per suite in the GX store / Data Docs
    chunk_days: int = 7  # partitions validated per pandas frame (bounds memory on backfills)
    timestamp_floor: date | None = None  # set by the wiring from SEGFLOW_TIMESTAMP_FLOOR
    accepted: AcceptedValues = field(default_factory=AcceptedValues)

    @classmethod
    def from_env(
        cls,
        *,
        event_names: Iterable[str] | None = None,
        plans: Iterable[str] | None = None,
        environ: dict[str, str] | None = None,
    ) -> QualityConfig:
        """Defaults overridden by SEGFLOW_DQ_* variables; value sets come from the caller."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in _ENV_NAMES.items():
            raw = env.get(var, "").strip()
            if not raw:
                continue
            try:
                values[name] = int(raw) if types[name] == "int" else float(raw)
            except ValueError as exc:
                kind = "an integer" if types[name] == "int" else "a number"
                raise QualityConfigError(f"{var}={raw!r}: expected {kind}") from exc
        config = cls(**values)  # type: ignore[arg-type]
        config.validate()
        accepted = config.accepted
        if event_names is not None:
            accepted = replace(accepted, event_names=frozenset(event_names))
        if plans is not None:
            accepted = replace(accepted, plans=tuple(plans))
        return replace(config, accepted=accepted)

    def validate(self) -> None:
        for name in ("duplicate_warn_share", "max_quarantine_share", "row_count_drop_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise QualityConfigError(
                    f"{_ENV_NAMES[name]}={value}: expected a share between 0 and 1"
                )
        for name in (
            "row_count_history_days",
            "row_count_min_baseline",
            "late_arrival_days",
            "sample_size",
            "quarantine_min_rows",
            "gx_keep_results",
            "chunk_days",
        ):
            if getattr(self, name) < 0:
                raise QualityConfigError(f"{_ENV_NAMES[name]}={getattr(self, name)}: expected >= 0")


def env_var_table() -> list[dict[str, object]]:
    """Rows for the README configuration table: variable, default, meaning (field name)."""
    defaults = QualityConfig()
    return [
        {"variable": var, "default": getattr(defaults, name), "field": name}
        for name, var in _ENV_NAMES.items()
    ]
