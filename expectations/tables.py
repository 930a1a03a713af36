"""What each validated table must look like: declared DuckDB types, partition column, the
columns that locate a bad row, and the derived columns the row rules need.

Types follow docs/contracts.md. Heavy JSON columns are not pulled into pandas; their byte
length is (a 10 MB property value must not cost 10 MB per check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

META_COLUMNS = {
    "_partition_date": "DATE",
    "_loaded_at": "TIMESTAMP",
    "_source": "VARCHAR",
    "_source_file": "VARCHAR",
    "_source_line": "BIGINT",
}

# Declared types accepted for a contract type (dbt may widen INT to BIGINT, JSON may be text).
TYPE_FAMILIES = {
    "VARCHAR": ("VARCHAR",),
    "JSON": ("JSON", "VARCHAR"),
    "TIMESTAMP": ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"),
    "DATE": ("DATE",),
    "DOUBLE": ("DOUBLE", "FLOAT", "DECIMAL"),
    "BIGINT": ("BIGINT", "INTEGER"),
    "INT": ("INTEGER", "BIGINT", "HUGEINT", "SMALLINT", "TINYINT"),
    "BOOLEAN": ("BOOLEAN",),
}


@dataclass(frozen=True)
class TableSpec:
    """Shape of one validated table (raw or mart)."""

    name: str  # qualified, e.g. "raw.events"
    partition_column: str
    columns: dict[str, str]  # column -> contract type (a TYPE_FAMILIES key)
    locator_columns: tuple[str, ...]  # shown with every unexpected value
    heavy_columns: tuple[str, ...] = ()  # pulled as "<col>_bytes" (byte length) instead
    key_column: str | None = None  # duplicates of this id are counted
    volume_checked: bool = False  # row count compared with the trailing median
    nullable: frozenset[str] = field(default_factory=frozenset)

    @property
    def short_name(self) -> str:
        return self.name.split(".")[-1]

    @property
    def schema(self) -> str:
        return self.name.split(".")[0] if "." in self.name else "main"


RAW_LOCATORS = ("_partition_date", "_source_file", "_source_line")

CRM_CONTACTS = TableSpec(
    name="raw.crm_contacts",
    partition_column="_partition_date",
    columns={
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
        **META_COLUMNS,
    },
    locator_columns=RAW_LOCATORS,
    key_column="user_id",
)

EVENTS = TableSpec(
    name="raw.events",
    partition_column="_partition_date",
    columns={
        "message_id": "VARCHAR",
        "type": "VARCHAR",
        "event": "VARCHAR",
        "user_id": "VARCHAR",
        "anonymous_id": "VARCHAR",
        "timestamp": "TIMESTAMP",
        "received_at": "TIMESTAMP",
        "properties": "JSON",
        "context": "JSON",
        **META_COLUMNS,
    },
    locator_columns=RAW_LOCATORS,
    heavy_columns=("properties", "context"),
    key_column="message_id",
    volume_checked=True,
)

BILLING_INVOICES = TableSpec(
    name="raw.billing_invoices",
    partition_column="_partition_date",
    columns={
        "invoice_id": "VARCHAR",
        "user_id": "VARCHAR",
        "amount": "DOUBLE",
        "currency": "VARCHAR",
        "status": "VARCHAR",
        "period_start": "TIMESTAMP",
        "period_end": "TIMESTAMP",
        "paid_at": "TIMESTAMP",
        **META_COLUMNS,
    },
    locator_columns=RAW_LOCATORS,
    key_column="invoice_id",
)

_FEATURE_INTS = (
    "days_since_signup",
    "days_since_last_active",
    "active_days_7d",
    "active_days_28d",
    "events_7d",
    "events_28d",
    "sessions_7d",
    "sessions_28d",
    "feature_breadth_28d",
    "feature_depth_28d",
    "milestones_reached",
    "teammates_invited",
    "integrations_connected",
    "support_tickets_28d",
    "support_tickets_total",
    "events_prev_7d",
)
FEATURE_FLAGS = (
    "reached_account_created",
    "reached_first_project",
    "reached_teammate_invited",
    "reached_integration_connected",
    "reached_first_value",
    "is_paid",
    "is_active_28d",
)
FEATURE_CATEGORICALS = (
    "plan",
    "industry",
    "company_size",
    "country",
    "role",
    "acquisition_channel",
)

FCT_USER_FEATURES = TableSpec(
    name="main.fct_user_features",
    partition_column="snapshot_date",
    columns={
        "user_id": "VARCHAR",
        "snapshot_date": "DATE",
        "signup_date": "DATE",
        **dict.fromkeys(_FEATURE_INTS, "INT"),
        "avg_session_minutes_28d": "DOUBLE",
        "onboarding_completion": "DOUBLE",
        "days_to_first_value": "INT",
        "activity_trend": "DOUBLE",
        "mrr": "DOUBLE",
        "revenue_to_date": "DOUBLE",
        **dict.fromkeys(FEATURE_FLAGS, "BOOLEAN"),
        **dict.fromkeys(FEATURE_CATEGORICALS, "VARCHAR"),
    },
    locator_columns=("user_id", "snapshot_date"),
    key_column=None,
    volume_checked=True,
    nullable=frozenset({"days_to_first_value", *FEATURE_CATEGORICALS}),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (CRM_CONTACTS, EVENTS, BILLING_INVOICES, FCT_USER_FEATURES)
}
ALIASES = {
    "crm_contacts": "raw.crm_contacts",
    "events": "raw.events",
    "billing_invoices": "raw.billing_invoices",
    "fct_user_features": "main.fct_user_features",
}


def table_spec(table: str) -> TableSpec:
    """Spec for a table name ("events", "raw.events", "fct_user_features", ...)."""
    name = ALIASES.get(table, table)
    try:
        return TABLES[name]
    except KeyError:
        known = ", ".join(sorted(TABLES))
        raise ValueError(f"no quality suite for table {table!r}; known: {known}") from None
