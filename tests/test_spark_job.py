"""The whole daily job on Spark equals the whole job on DuckDB (SEGFLOW_ENGINE=spark|duckdb).

One small demo (300 users x 45 days: enough history for a model to train) runs through
segflow_full_job on each engine, each in its own process (Dagster's definitions read the
engine at import): ingest, checks, dbt (on Spark: dbt-spark, pyspark local), training,
scoring, segments, the outbox sync. Every table dbt built, user_scores, user_segments and the
outbox payloads must be equal, floating-point columns within 1e-9 relative.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from support.engine_compare import duckdb_tables, spark_tables, table_differences
from support.java import java_major

pytestmark = pytest.mark.slow

if java_major() < 17:
    pytest.skip("Java 17+ is missing (make java installs it)", allow_module_level=True)
# Opt-in until it fits the suite's budget: the Spark job alone took 40 min on a shared 2-core
# machine at load ~20 (README, Scaling out on Spark).
if os.environ.get("SEGFLOW_TEST_SPARK_JOB") != "1":
    pytest.skip(
        "the whole-job Spark comparison runs with SEGFLOW_TEST_SPARK_JOB=1", allow_module_level=True
    )

REPO = Path(__file__).resolve().parents[1]
USERS, DAYS, START = 300, 45, date(2026, 5, 1)
END = START + timedelta(days=DAYS - 1)
STEP_TABLES = ("user_scores", "user_segments")
# set at sync time, so they differ between any two runs
VOLATILE_KEYS = {"timestamp", "segflow_synced_at"}


def _run_job(engine: str, home: Path, demo: Path) -> Path:
    env = {
        **os.environ,
        "SEGFLOW_ENGINE": engine,
        "SEGFLOW_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "SEGFLOW_DEMO_DIR": str(demo / "landing"),
        "SEGFLOW_DEMO_TRUTH_DIR": str(demo / "truth"),
        "SEGFLOW_PARTITIONS_START": START.isoformat(),
        "SEGFLOW_SPARK_MASTER": "local[2]",
        "SEGFLOW_SPARK_SHUFFLE_PARTITIONS": "1",
    }
    for name in ("SEGFLOW_DUCKDB_PATH", "MLFLOW_TRACKING_URI", "SEGFLOW_DBT_TARGET"):
        env.pop(name, None)
    run = subprocess.run(
        [sys.executable, str(REPO / "tests" / "support" / "job_run.py"), str(START), str(END)],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert run.returncode == 0, f"{engine} job failed:\n{run.stderr[-6000:]}"
    return home


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from demo.saas import generate

    demo = tmp_path_factory.mktemp("demo")
    generate(demo / "landing", demo / "truth", users=USERS, days=DAYS, seed=5, start=START)
    return {
        engine: _run_job(engine, tmp_path_factory.mktemp(engine), demo)
        for engine in ("duckdb", "spark")
    }


def _payload_items(home: Path) -> list[dict]:
    """Every item of every outbox file, without its send-time fields, in a stable order."""
    items = []
    for path in sorted((home / "outbox").glob("sync_*.jsonl")):
        for line in path.read_text().splitlines():
            for item in json.loads(line)["batch"]:
                items.append(_strip(item))
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_every_dbt_table_equals_duckdb(homes) -> None:
    expected = duckdb_tables(homes["duckdb"] / "warehouse.duckdb")
    actual = spark_tables(homes["spark"] / "spark" / "warehouse")
    assert "fct_user_features" in actual and len(actual["fct_user_features"]) > USERS * 10
    missing = sorted(set(actual) - set(expected))
    assert not missing, f"built on Spark, absent on DuckDB: {missing}"
    problems = [p for name in actual for p in table_differences(expected[name], actual[name], name)]
    assert not problems, "\n".join(problems[:20])


def test_scores_and_segments_equal(homes) -> None:
    expected = duckdb_tables(homes["duckdb"] / "warehouse.duckdb")
    actual = duckdb_tables(homes["spark"] / "warehouse.duckdb")
    scored = expected["user_scores"]
    assert scored["conversion_probability"].notna().sum() > USERS, "no model scored"
    for name in STEP_TABLES:
        problems = table_differences(expected[name], actual[name], name)
        assert not problems, "\n".join(problems[:20])
    # dbt on Spark read the scores the Python step published (the after_segments models)
    published = pd.read_parquet(homes["spark"] / "spark" / "sources" / "main" / "user_scores")
    assert len(published) == len(scored)


def test_outbox_payloads_equal(homes) -> None:
    expected, actual = _payload_items(homes["duckdb"]), _payload_items(homes["spark"])
    assert len(expected) > USERS / 2, "the sync sent almost nothing"
    assert len(actual) == len(expected)
    different = [(a, b) for a, b in zip(expected, actual, strict=True) if not _close(a, b)]
    assert not different, different[:3]
