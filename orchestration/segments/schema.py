"""Declared input columns for segment rules (contracts.marts, expanded from the tracking plan),
so a rule file can be validated before any warehouse exists; `warehouse_columns` reads the
live types instead."""

from __future__ import annotations

from typing import Any

import duckdb

from contracts import marts
from contracts.attributes import CustomAttribute
from contracts.tracking_plan import TrackingPlan

FEATURES_TABLE = marts.FEATURES_TABLE
SCORES_TABLE = marts.SCORES_TABLE
JOIN_KEYS = ("user_id", "snapshot_date", "score_date")


def feature_columns(
    plan: TrackingPlan | None = None, attributes: tuple[CustomAttribute, ...] = ()
) -> dict[str, str]:
    """fct_user_features (grain user_id x snapshot_date) as DuckDB types, from the contract
    (with the feature columns of the custom CRM attributes sources.yml declares)."""
    return {
        name: marts.SQL_TYPES[kind]
        for name, kind in marts.feature_columns(plan, attributes).items()
    }


FEATURE_COLUMNS = feature_columns()
# user_scores (grain user_id x score_date), minus what the features own (is_churned).
SCORE_COLUMNS: dict[str, str] = {
    name: marts.SQL_TYPES[kind]
    for name, kind in marts.SCORE_COLUMNS.items()
    if name in marts.SCORES_GRAIN or name not in FEATURE_COLUMNS
}


def declared_columns(
    plan: TrackingPlan | None = None, attributes: tuple[CustomAttribute, ...] = ()
) -> dict[str, str]:
    """Everything a rule may name: features plus scores (join keys appear once)."""
    return {
        **feature_columns(plan, attributes),
        **{name: kind for name, kind in SCORE_COLUMNS.items() if name not in JOIN_KEYS},
    }


COLUMNS: dict[str, str] = declared_columns()


def declared_schema(settings: Any) -> dict[str, str]:
    """What a rule may name in this deployment before any warehouse exists: the contract's
    columns plus the custom CRM attributes its sources.yml declares."""
    from orchestration.sources.mappings import declared_attributes

    return declared_columns(attributes=declared_attributes(settings))


_KINDS = {
    "BOOLEAN": "bool",
    "VARCHAR": "string",
    "DATE": "date",
    "TINYINT": "number",
    "SMALLINT": "number",
    "INTEGER": "number",
    "BIGINT": "number",
    "HUGEINT": "number",
    "UTINYINT": "number",
    "USMALLINT": "number",
    "UINTEGER": "number",
    "UBIGINT": "number",
    "FLOAT": "number",
    "DOUBLE": "number",
    "REAL": "number",
}


def kind_of(sql_type: str) -> str:
    """Rule-language type of a DuckDB column type: number, string, bool, date or other."""
    base = sql_type.upper().split("(")[0].strip()
    if base.startswith("DECIMAL"):
        return "number"
    if base.startswith("TIMESTAMP"):
        return "timestamp"
    return _KINDS.get(base, "other")


def warehouse_columns(conn: duckdb.DuckDBPyConnection, schema: str = "main") -> dict[str, str]:
    """Live column types of the features and scores tables, in the same shape as COLUMNS.

    A missing scores table contributes its declared columns (they evaluate to null), so
    segments still assign before the first model is trained.
    """
    rows = conn.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name in (?, ?) order by ordinal_position",
        [schema, FEATURES_TABLE, SCORES_TABLE],
    ).fetchall()
    features = {c: t for tbl, c, t in rows if tbl == FEATURES_TABLE}
    scores = {c: t for tbl, c, t in rows if tbl == SCORES_TABLE} or dict(SCORE_COLUMNS)
    return {
        **features,
        **{c: t for c, t in scores.items() if c not in JOIN_KEYS and c not in features},
    }
