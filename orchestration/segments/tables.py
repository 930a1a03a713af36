"""Warehouse side of segments: output table DDL, the features+scores input relation, and the
check that the configured rules still fit the live warehouse columns."""

from __future__ import annotations

from datetime import date

import duckdb

from orchestration.segments.config import SegmentConfig, SegmentConfigError
from orchestration.segments.schema import (
    FEATURES_TABLE,
    SCORE_COLUMNS,
    SCORES_TABLE,
    kind_of,
    warehouse_columns,
)
from orchestration.segments.session import SESSION_COLUMNS
from orchestration.warehouse import table_exists

DDL = {
    "user_segments": """create table if not exists main.user_segments (
        user_id VARCHAR, segment_date DATE, segments VARCHAR[], primary_segment VARCHAR,
        onboarding_flow VARCHAR, experiment VARCHAR, experiment_variant VARCHAR,
        next_block VARCHAR)""",
    "segment_membership": """create table if not exists main.segment_membership (
        user_id VARCHAR, segment VARCHAR, entered_at DATE, exited_at DATE)""",
    "user_triggers": """create table if not exists main.user_triggers (
        user_id VARCHAR, "trigger" VARCHAR, fired_at DATE, context VARCHAR)""",
}


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    for ddl in DDL.values():
        conn.execute(ddl)


def input_relation(
    conn: duckdb.DuckDBPyConnection, days: tuple[date, date] | None = None
) -> tuple[str, list[str]]:
    """SQL for features LEFT JOIN scores on (user_id, date), plus warnings. Before the first
    scoring run the scores side is an empty typed relation, so score rules are simply false.

    `days` (first, last) bounds both sides by literal dates, for callers that read only days
    inside it: DuckDB then prunes both tables' row groups, instead of hashing every stored
    score (11M rows at 100k users x 180 days) for each query that reads one day."""
    if not table_exists(conn, "main", FEATURES_TABLE):
        raise SegmentConfigError(
            f"table main.{FEATURES_TABLE} does not exist: run the dbt "
            "models before assigning segments"
        )
    warnings: list[str] = []
    if table_exists(conn, "main", SCORES_TABLE):
        scores = f"main.{SCORES_TABLE}"
    else:
        typed = ", ".join(f"NULL::{t} as {c}" for c, t in SCORE_COLUMNS.items())
        scores = f"(select {typed} where false)"
        warnings.append(
            f"main.{SCORES_TABLE} does not exist yet: score columns are null, "
            "so rules on scores match nobody"
        )
    # Score columns by name: user_scores also carries is_churned, which the features own.
    score_cols = ", ".join(f"s.{c}" for c in SCORE_COLUMNS if c not in ("user_id", "score_date"))
    # session.* values exist only intraday (session.py): null here, so their conditions are false
    session_cols = "".join(f", null::{t} as {c}" for c, t in SESSION_COLUMNS.items())
    features = f"main.{FEATURES_TABLE}"
    if days is not None:
        span = f"date '{days[0].isoformat()}' and date '{days[1].isoformat()}'"
        features = f"(select * from {features} where snapshot_date between {span})"
        scores = f"(select * from {scores} where score_date between {span})"
    sql = (
        f"(select f.*, {score_cols}{session_cols} from {features} f "
        f"left join {scores} s on s.user_id = f.user_id and s.score_date = f.snapshot_date)"
    )
    return sql, warnings


def check_against_warehouse(conn: duckdb.DuckDBPyConnection, config: SegmentConfig) -> None:
    """Fail before writing anything if a column a rule or block uses is missing from the
    warehouse or has a different type than the one the rules were checked against."""
    live = warehouse_columns(conn)
    problems = []
    for column in sorted(config.referenced_columns()):
        if column not in live:
            problems.append(
                f"column `{column}` is missing from main.{FEATURES_TABLE}/main.{SCORES_TABLE}"
            )
        elif column in config.columns and kind_of(live[column]) != kind_of(config.columns[column]):
            problems.append(
                f"column `{column}` is {live[column]} in the warehouse but the rules "
                f"were checked as {config.columns[column]}"
            )
    if problems:
        files = ", ".join(str(p) for p in config.sources)
        raise SegmentConfigError(
            f"{files}: the rules do not fit the warehouse: " + "; ".join(problems)
        )
