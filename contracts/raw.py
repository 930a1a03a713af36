"""The raw table contract (docs/contracts.md), written once: per raw table its columns and
types, what the loader needs (required columns, keys, date columns, accepted input aliases),
the accepted values, and the threshold defaults. The loader (orchestration/sources) and the
quality suites (expectations/) both read it; neither keeps a copy.

Types use the contract vocabulary: VARCHAR, TIMESTAMP, DOUBLE, JSON (stored as text).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Columns every raw table carries besides its own (written by the loader).
META_COLUMNS = {
    "_partition_date": "DATE",
    "_loaded_at": "TIMESTAMP",
    "_source": "VARCHAR",
    "_source_file": "VARCHAR",
    "_source_line": "BIGINT",
}
RAW_LOCATORS = ("_partition_date", "_source_file", "_source_line")

# Accepted values (docs/contracts.md); overridable per deployment through QualityConfig.
EVENT_TYPES = ("track", "identify", "page")
CURRENCIES = ("USD", "EUR", "GBP")
COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
INVOICE_STATUSES = ("paid", "open", "void", "refunded")
REVENUE_STATUSES = ("paid", "refunded")  # an invoice with these statuses is revenue

# Threshold defaults (settings override them: SEGFLOW_DQ_MAX_AMOUNT, ...).
MAX_AMOUNT = 1_000_000.0  # invoice amounts above this are quarantined (amount_out_of_range)
MAX_FIELD_BYTES = 1_048_576  # one value above this is quarantined (value_too_large)
LATE_ARRIVAL_DAYS = 3  # event/invoice timestamps may be this many days before their dt= folder
FUTURE_TOLERANCE_MINUTES = 15  # clock skew allowed before "in the future"
PLAUSIBLE_YEARS = (1900, 2200)  # a timestamp outside read its epoch in a wrong unit


@dataclass(frozen=True)
class RawTable:
    """One raw table: its columns and what the loader and the suites need to know."""

    name: str  # unqualified, e.g. "events"
    columns: dict[str, str]  # column -> contract type (META_COLUMNS not included)
    required: tuple[str, ...]  # must be present (header / field)
    keys: tuple[str, ...]  # null -> null_key
    date_columns: tuple[str, ...]  # undated files: first non-null decides the day
    future_checked: tuple[str, ...]  # timestamps that must not lie in the future
    unique_key: str | None = None  # duplicates counted (not removed)
    extra_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    accepted_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    heavy_columns: tuple[str, ...] = ()  # the suites read their byte length only
    volume_checked: bool = False  # row count compared with the trailing median

    @property
    def qualified(self) -> str:
        return f"raw.{self.name}"


CRM_CONTACTS = RawTable(
    "crm_contacts",
    {
        "user_id": "VARCHAR",
        "email": "VARCHAR",
        "signup_at": "TIMESTAMP",
        "company": "VARCHAR",
        "industry": "VARCHAR",
        "company_size": "VARCHAR",
        "country": "VARCHAR",
        "role": "VARCHAR",
        "plan": "VARCHAR",
        "acquisition_channel": "VARCHAR",
        "updated_at": "TIMESTAMP",
        # the custom attributes sources.yml declares (contracts/attributes.py), one JSON object
        "attributes": "JSON",
    },
    required=("user_id", "updated_at"),
    keys=("user_id",),
    date_columns=("updated_at",),
    future_checked=("signup_at", "updated_at"),
    unique_key=None,
)

EVENTS = RawTable(
    "events",
    {
        "message_id": "VARCHAR",
        "type": "VARCHAR",
        "event": "VARCHAR",
        "user_id": "VARCHAR",
        "anonymous_id": "VARCHAR",
        "timestamp": "TIMESTAMP",
        "received_at": "TIMESTAMP",
        "properties": "JSON",
        "context": "JSON",
    },
    required=("message_id", "type", "timestamp"),
    keys=("message_id",),
    date_columns=("timestamp",),
    future_checked=("timestamp",),
    unique_key="message_id",
    # Segment: page/screen calls carry the page name in `name`; originalTimestamp is the client
    # clock when `timestamp` is absent; identify calls carry `traits`.
    extra_aliases={
        "event": ("name",),
        "timestamp": ("originalTimestamp", "original_timestamp"),
        "properties": ("traits",),
    },
    heavy_columns=("properties", "context"),
    volume_checked=True,
)

BILLING_INVOICES = RawTable(
    "billing_invoices",
    {
        "invoice_id": "VARCHAR",
        "user_id": "VARCHAR",
        "amount": "DOUBLE",
        "currency": "VARCHAR",
        "status": "VARCHAR",
        "period_start": "TIMESTAMP",
        "period_end": "TIMESTAMP",
        "paid_at": "TIMESTAMP",
    },
    required=("invoice_id", "user_id", "amount", "period_start"),
    keys=("invoice_id", "user_id"),
    date_columns=("paid_at", "period_start"),
    future_checked=("period_start", "paid_at"),
    unique_key="invoice_id",
    accepted_values={"currency": CURRENCIES, "status": INVOICE_STATUSES},
)

# The raw tables (ingest loads events before CRM and billing: those match product users).
RAW: dict[str, RawTable] = {t.name: t for t in (CRM_CONTACTS, EVENTS, BILLING_INVOICES)}
RAW_TABLES = tuple(RAW)
