"""The custom attribute macros are portable: the SQL dbt compiles for the DuckDB target and for
the Spark target (pyspark 4, ANSI on) types the same raw values alike, unparseable dates and
numbers, a text that is not JSON and a 29 February birthday included."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import run_dbt  # tests/ is on sys.path (rootdir conftest)
from support.java import java_major

pytestmark = pytest.mark.slow  # compiles on both dbt targets and starts a local Spark

ATTRIBUTES = (
    "[{'name': 'date_of_birth', 'type': 'date', 'cast': 'date'}, "
    "{'name': 'employees', 'type': 'number', 'cast': 'double'}, "
    "{'name': 'channel', 'type': 'category', 'cast': none}]"
)
SQL = (
    "{%- set attrs = " + ATTRIBUTES + " -%}"
    """
with raw_rows as (
    select * from (values
        ('a', '{"date_of_birth": "1985-06-15", "employees": 12.5, "channel": " ads "}',
            date '2025-06-15'),
        ('b', '{"date_of_birth": "31/02/1990", "employees": "12,5x"}', date '2025-06-14'),
        ('c', '{"date_of_birth": "n/a", "employees": "  "}', date '2025-01-01'),
        ('d', '{not json', date '2025-01-01'),
        ('e', '{"date_of_birth": "1984-02-29", "employees": 7}', date '2025-02-28'),
        ('f', null, date '2025-01-01')
    ) as t (user_id, attributes, day)
),
typed as (
    select
        user_id,
        day,
        {%- for a in attrs %}
        {{ custom_attribute_value('raw_rows.attributes', a) }} as {{ a.name }},
        {%- endfor %}
        1 as one
    from raw_rows
)
select
    user_id,
    cast(date_of_birth as {{ dbt.type_string() }}) as date_of_birth,
    employees,
    channel,
    {{ custom_attribute_feature('typed.date_of_birth', attrs[0], 'typed.day') }} as age
from typed
order by user_id
"""
)
EXPECTED = [
    ("a", "1985-06-15", 12.5, "ads", 40),
    ("b", None, None, None, None),
    ("c", None, None, None, None),
    ("d", None, None, None, None),
    ("e", "1984-02-29", 7.0, None, 40),
    ("f", None, None, None, None),
]


def _compiled(target: str, tmp: Path) -> str:
    proc = run_dbt(
        ["compile", "--quiet", "--target", target, "--inline", SQL], tmp / "x.duckdb", tmp / target
    )
    return proc.stdout[proc.stdout.index("with raw_rows") :]


def test_attribute_sql_types_values_alike_on_duckdb_and_spark(tmp_path, monkeypatch):
    if java_major() < 17:
        pytest.skip("Java 17+ is missing (make java installs it)")
    for name in ("WAREHOUSE", "METASTORE", "SOURCES_DIR"):
        monkeypatch.setenv(f"SEGFLOW_SPARK_{name}", str(tmp_path / name.lower()))
    on_duckdb = duckdb.connect().execute(_compiled("duckdb", tmp_path)).fetchall()
    spark_sql = _compiled("spark", tmp_path)
    assert "get_json_object" in spark_sql and "json_valid" not in spark_sql
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(tmp_path / "warehouse"))
        .getOrCreate()
    )
    try:
        on_spark = [tuple(row) for row in spark.sql(spark_sql).collect()]
    finally:
        spark.stop()
    assert on_duckdb == EXPECTED
    assert on_spark == EXPECTED
