"""The shipped segments on real demo data: demo generator -> raw loader -> dbt
(fct_user_features) -> assign_segments. Score-based segments (high_ltv) need the trained
models and are covered on synthetic scores in test_segments_assign.py."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from demo.saas import generate
from orchestration.run_window import dbt_vars_arg
from orchestration.segments.assign import assign_segments
from orchestration.segments.config import load_config
from orchestration.segments.schema import warehouse_columns
from orchestration.settings import DBT_PROJECT_DIR, Settings
from orchestration.sources.load import load_partitions

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

START = date(2025, 1, 6)
DAYS = 40
SCORE_SEGMENTS = {"high_ltv"}


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("segments_demo")
    generate(root / "landing", root / "truth", users=400, days=DAYS, seed=21, start=START)
    path = root / "warehouse.duckdb"
    dates = [START + timedelta(days=i) for i in range(DAYS)]
    with duckdb.connect(str(path)) as conn:
        for table in ("crm_contacts", "events", "billing_invoices"):
            load_partitions(
                conn,
                table,
                dates,
                root / "landing",
                "demo",
                3,
                now=datetime.combine(dates[-1] + timedelta(days=1), datetime.min.time()),
            )
    dbt = Path(sys.executable).with_name("dbt")
    result = subprocess.run(
        [
            str(dbt),
            "build",
            "-s",
            "+fct_user_features",
            *dbt_vars_arg(Settings.from_env()),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(root / "dbt_target"),
            "--log-path",
            str(root / "dbt_logs"),
        ],
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, "SEGFLOW_DUCKDB_PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return path


def test_shipped_segments_on_demo_data(demo_warehouse: Path):
    with duckdb.connect(str(demo_warehouse)) as conn:
        config = load_config(columns=warehouse_columns(conn))  # rules fit the real dbt types
        dates = [
            d
            for (d,) in conn.execute(
                "select distinct snapshot_date from main.fct_user_features order by 1"
            ).fetchall()
        ]
        report = assign_segments(conn, config, dates)
        rows = conn.execute("select count(*) from main.user_segments").fetchone()[0]
        features = conn.execute("select count(*) from main.fct_user_features").fetchone()[0]
        open_stints = conn.execute(
            "select count(*) from main.segment_membership where exited_at is null"
        ).fetchone()[0]
    assert rows == features > 0
    totals = report.sizes.groupby("segment")["users"].sum()
    empty = [s for s in config.segment_names if totals.get(s, 0) == 0 and s not in SCORE_SEGMENTS]
    assert not empty, f"shipped segments empty on demo data: {empty}"
    assert open_stints > 0
    assert report.triggers["firings"].sum() > 0
    assert set(report.flows["onboarding_flow"]) >= {"new_user_onboarding", "default_onboarding"}
