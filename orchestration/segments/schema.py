"""Declared input columns for segment rules (docs/contracts.md), so a rule file can be
validated before any warehouse exists; `warehouse_columns` reads the live types instead."""

from __future__ import annotations

import duckdb

FEATURES_TABLE = "fct_user_features"
SCORES_TABLE = "user_scores"
JOIN_KEYS = ("user_id", "snapshot_date", "score_date")

# fct_user_features (grain user_id x snapshot_date), DuckDB type names.
FEATURE_COLUMNS: dict[str, str] = {
    "user_id": "VARCHAR",
    "snapshot_date": "DATE",
    "signup_date": "DATE",
    "days_since_signup": "INTEGER",
    "days_since_last_active": "INTEGER",
    "active_days_7d": "INTEGER",
    "active_days_28d": "INTEGER",
    "events_7d": "INTEGER",
    "events_28d": "INTEGER",
    "sessions_7d": "INTEGER",
    "sessions_28d": "INTEGER",
    "avg_session_minutes_28d": "DOUBLE",
    "feature_breadth_28d": "INTEGER",
    "feature_depth_28d": "INTEGER",
    "milestones_reached": "INTEGER",
    "onboarding_completion": "DOUBLE",
    "reached_account_created": "BOOLEAN",
    "reached_first_project": "BOOLEAN",
    "reached_teammate_invited": "BOOLEAN",
    "reached_integration_connected": "BOOLEAN",
    "reached_first_value": "BOOLEAN",
    "days_to_first_value": "INTEGER",
    "teammates_invited": "INTEGER",
    "integrations_connected": "INTEGER",
    "support_tickets_28d": "INTEGER",
    "support_tickets_total": "INTEGER",
    "events_prev_7d": "INTEGER",
    "activity_trend": "DOUBLE",
    "plan": "VARCHAR",
    "is_paid": "BOOLEAN",
    "mrr": "DOUBLE",
    "revenue_to_date": "DOUBLE",
    "industry": "VARCHAR",
    "company_size": "VARCHAR",
    "country": "VARCHAR",
    "role": "VARCHAR",
    "acquisition_channel": "VARCHAR",
    "is_active_28d": "BOOLEAN",
}

# user_scores (grain user_id x score_date).
SCORE_COLUMNS: dict[str, str] = {
    "user_id": "VARCHAR",
    "score_date": "DATE",
    "churn_probability": "DOUBLE",
    "churn_band": "VARCHAR",
    "ltv_90d": "DOUBLE",
    "ltv_band": "VARCHAR",
    "conversion_probability": "DOUBLE",
    "churn_reasons": "VARCHAR",
    "ltv_reasons": "VARCHAR",
    "churn_model_version": "VARCHAR",
    "ltv_model_version": "VARCHAR",
    "conversion_model_version": "VARCHAR",
}

# Everything a rule may name: features plus scores (join keys appear once).
COLUMNS: dict[str, str] = {
    **FEATURE_COLUMNS,
    **{name: kind for name, kind in SCORE_COLUMNS.items() if name not in JOIN_KEYS},
}

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
