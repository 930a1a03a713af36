"""Quality thresholds and accepted values, as one plain dataclass the wiring passes in.

`expectations/` never imports `orchestration` (DESIGN section 1) and reads no environment:
`orchestration/settings.py` reads the `SEGFLOW_DQ_*` variables into `Settings.quality` (the
defaults are this dataclass's), and the wiring adds the tracking plan's event names and plans.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date

from contracts.raw import (  # contract vocabularies, overridable per deployment
    COMPANY_SIZES,
    CURRENCIES,
    EVENT_TYPES,
    FUTURE_TOLERANCE_MINUTES,
    INVOICE_STATUSES,
    LATE_ARRIVAL_DAYS,
    MAX_AMOUNT,
    MAX_FIELD_BYTES,
)

PLANS = ("free", "trial", "pro", "enterprise")


class QualityConfigError(ValueError):
    """A threshold holds a value that cannot be used; `field` names it (Settings maps it to
    its environment variable)."""

    def __init__(self, field_name: str, value: object, expected: str) -> None:
        super().__init__(f"{field_name}={value}: expected {expected}")
        self.field = field_name
        self.value = value
        self.expected = expected


@dataclass(frozen=True)
class AcceptedValues:
    """Value sets the suites accept. `event_names=None` skips the tracking-plan check."""

    event_names: frozenset[str] | None = None
    event_types: tuple[str, ...] = EVENT_TYPES
    plans: tuple[str, ...] = PLANS
    currencies: tuple[str, ...] = CURRENCIES
    company_sizes: tuple[str, ...] = COMPANY_SIZES
    invoice_statuses: tuple[str, ...] = INVOICE_STATUSES


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the quality gates; each numeric field is a setting (Settings.quality)."""

    duplicate_warn_share: float = 0.01  # share of rows sharing a message_id/invoice_id -> warn
    max_quarantine_share: float = 0.05  # quarantined / read per partition above this -> error
    quarantine_min_rows: int = 10  # ...once a partition has at least this many quarantined rows
    row_count_drop_share: float = 0.8  # a partition this much below the trailing median -> error
    row_count_history_days: int = 14  # trailing window for that median
    row_count_min_history: int = 3  # partitions with data needed before the volume rule applies
    row_count_min_baseline: int = 20  # ...and a trailing median of at least this many rows
    late_arrival_days: int = LATE_ARRIVAL_DAYS  # days a timestamp may precede dt=
    future_tolerance_minutes: int = FUTURE_TOLERANCE_MINUTES  # skew before "in the future"
    max_amount: float = MAX_AMOUNT  # invoice amounts above this: the loader quarantines
    # properties/context JSON text above this warns; the default is the loader's quarantine
    # limit for one value (a lower setting warns before rows are quarantined)
    max_property_bytes: int = MAX_FIELD_BYTES
    max_session_minutes: float = 720.0  # avg_session_minutes_28d above this warns
    features_min_mean_events_28d: float = 0.1
    features_max_mean_events_28d: float = 5_000.0
    sample_size: int = 20  # unexpected values kept per check (each truncated to 200 chars)
    gx_keep_results: int = 30  # validation results kept per suite in the GX store / Data Docs
    chunk_days: int = 7  # partitions validated per pandas frame (bounds memory on backfills)
    timestamp_floor: date | None = None  # set by the wiring from SEGFLOW_TIMESTAMP_FLOOR
    accepted: AcceptedValues = field(default_factory=AcceptedValues)

    def __post_init__(self) -> None:
        self.validate()

    def accepting(
        self, *, event_names: Iterable[str] | None = None, plans: Iterable[str] | None = None
    ) -> QualityConfig:
        """This config with the tracking plan's value sets (None keeps the current set)."""
        accepted = self.accepted
        if event_names is not None:
            accepted = replace(accepted, event_names=frozenset(event_names))
        if plans is not None:
            accepted = replace(accepted, plans=tuple(plans))
        return replace(self, accepted=accepted)

    def validate(self) -> None:
        """Raise QualityConfigError naming the first field out of range."""
        for name in ("duplicate_warn_share", "max_quarantine_share", "row_count_drop_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise QualityConfigError(name, value, "a share between 0 and 1")
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
                raise QualityConfigError(name, getattr(self, name), ">= 0")
