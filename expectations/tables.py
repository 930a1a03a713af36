"""What each validated table must look like: declared DuckDB types, partition column, the
columns that locate a bad row, and the derived columns the row rules need.

Types follow docs/contracts.md; the raw tables' columns come from contracts/raw.py. Heavy JSON columns are not pulled into pandas; their byte
length is (a 10 MB property value must not cost 10 MB per check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts import marts, raw
from contracts.raw import META_COLUMNS, RAW_LOCATORS
from contracts.tracking_plan import TrackingPlan

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
    non_negative: tuple[str, ...] = ()  # counts: a negative value is an error

    @property
    def short_name(self) -> str:
        return self.name.split(".")[-1]

    @property
    def schema(self) -> str:
        return self.name.split(".")[0] if "." in self.name else "main"


def _raw_spec(table: raw.RawTable) -> TableSpec:
    return TableSpec(
        name=table.qualified,
        partition_column="_partition_date",
        columns={**table.columns, **META_COLUMNS},
        locator_columns=RAW_LOCATORS,
        heavy_columns=table.heavy_columns,
        key_column=table.unique_key or table.keys[0],
        volume_checked=table.volume_checked,
    )


CRM_CONTACTS, EVENTS, BILLING_INVOICES = (
    _raw_spec(t) for t in (raw.CRM_CONTACTS, raw.EVENTS, raw.BILLING_INVOICES)
)


def features_spec(plan: TrackingPlan | None = None) -> TableSpec:
    """fct_user_features as contracts.marts expands it from the tracking plan (default: the
    project's), so a renamed milestone or a new core event moves the suite with dbt."""
    return TableSpec(
        name=f"main.{marts.FEATURES_TABLE}",
        partition_column="snapshot_date",
        columns=marts.feature_columns(plan),
        locator_columns=marts.FEATURES_GRAIN,
        key_column=None,
        volume_checked=True,
        nullable=marts.FEATURE_NULLABLE,
        non_negative=marts.count_columns(plan),
    )


FCT_USER_FEATURES = features_spec()

TABLES: dict[str, TableSpec] = {
    spec.name: spec for spec in (CRM_CONTACTS, EVENTS, BILLING_INVOICES, FCT_USER_FEATURES)
}
ALIASES = {
    **{t: f"raw.{t}" for t in raw.RAW_TABLES},
    marts.FEATURES_TABLE: f"main.{marts.FEATURES_TABLE}",
}


def table_spec(table: str) -> TableSpec:
    """Spec for a table name ("events", "raw.events", "fct_user_features", ...)."""
    name = ALIASES.get(table, table)
    try:
        return TABLES[name]
    except KeyError:
        known = ", ".join(sorted(TABLES))
        raise ValueError(f"no quality suite for table {table!r}; known: {known}") from None
