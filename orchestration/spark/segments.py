"""Segment rules executed as Spark SQL on the Spark engine (SEGFLOW_ENGINE=spark).

The rule compiler writes each rule once as an engine-neutral sqlglot tree
(orchestration/segments/rules.py); the segments step's statement (features left join scores,
one boolean column per rule, the milestones) is rendered here in Spark's dialect and run in
this process's Spark session, where dbt built main.fct_user_features. The scores the Python
step just wrote to segflow's DuckDB file are published to their Parquet source folder first
and registered as main.user_scores, as dbt's on-run-start does (macro register_source_tables).
Rule values stay bound parameters (`:s0_0`), never pasted into the SQL.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import sqlglot
from sqlglot import exp

from contracts.marts import SCORES_TABLE
from orchestration.settings import Settings
from orchestration.spark import tables
from orchestration.spark.session import get_session


def register_scores(conn: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """main.user_scores in the Spark catalog, with the rows segflow's DuckDB file holds now."""
    tables.publish(conn, settings)
    folder = settings.spark_sources_dir / tables.SCHEMA / SCORES_TABLE
    if not folder.is_dir():
        return  # never scored: the statement's scores side is an empty typed relation
    spark = get_session(settings)
    relation = f"{tables.SCHEMA}.{SCORES_TABLE}"
    location = str(folder).replace("'", "''")
    spark.sql(f"create schema if not exists {tables.SCHEMA}")
    spark.sql(f"create table if not exists {relation} using parquet location '{location}'")
    spark.sql(f"refresh table {relation}")


def spark_statement(duckdb_statement: str, dates: list[date]) -> str:
    """The segments statement (DuckDB dialect, no date filter) in Spark's, for `dates`."""
    tree = sqlglot.parse_one(duckdb_statement, read="duckdb")
    days = [exp.cast(exp.Literal.string(day.isoformat()), "date") for day in dates]
    return tree.where(exp.column("snapshot_date").isin(*days)).sql("spark")


def evaluate(
    conn: duckdb.DuckDBPyConnection,
    settings: Settings,
    duckdb_statement: str,
    params: dict[str, object],
    dates: list[date],
) -> pd.DataFrame:
    """Run the segments statement in Spark for `dates`; the rows as pandas, in its order."""
    register_scores(conn, settings)
    spark = get_session(settings)
    return spark.sql(spark_statement(duckdb_statement, dates), args=params).toPandas()
