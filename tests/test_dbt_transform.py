"""The dbt project on real DuckDB files with the real dbt CLI: build + dbt tests, incremental
runs equal a full refresh, and point-in-time features ignore everything after the snapshot."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import RawData, load_raw, run_dbt, simulate

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

USERS, DAYS = 150, 40
SKIP_COMPARE = {"user_segments", "user_scores"}


def _window(start: date, end: date) -> dict[str, str]:
    return {"min_date": start.isoformat(), "max_date": end.isoformat()}


def _segment_inputs(db: Path) -> None:
    """The Python segment/score steps' output tables (contract shape) so after_segments builds."""
    conn = duckdb.connect(str(db))
    try:
        conn.execute("""
            create or replace table main.user_segments as
            select user_id, snapshot_date as segment_date,
                   list_sort(case when days_since_signup < 7 then ['new_users']
                                  else ['established', 'smb'] end)::varchar[] as segments
            from main.fct_user_features""")
        conn.execute("""
            create or replace table main.user_scores as
            select user_id, snapshot_date as score_date, 0.25 as churn_probability,
                   120.0 as ltv_pred from main.fct_user_features""")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def raw_data() -> RawData:
    return simulate(users=USERS, days=DAYS, seed=11)


@pytest.fixture(scope="module")
def full_build(tmp_path_factory: pytest.TempPathFactory, raw_data: RawData) -> Path:
    """All raw partitions loaded, then one full `dbt build` (models + data tests + unit tests)."""
    tmp = tmp_path_factory.mktemp("dbt_full")
    db = tmp / "warehouse.duckdb"
    load_raw(db, raw_data)
    run_dbt(["build", "--exclude", "tag:after_segments"], db, tmp / "target")
    _segment_inputs(db)
    run_dbt(["build", "--select", "tag:after_segments"], db, tmp / "target")
    return db


def test_build_produces_every_mart(full_build: Path) -> None:
    conn = duckdb.connect(str(full_build), read_only=True)
    try:
        counts = {
            t: conn.execute(f"select count(*) from main.{t}").fetchone()[0]
            for t in (
                "fct_user_features",
                "dim_users",
                "fct_cohort_retention",
                "fct_revenue_retention",
                "fct_onboarding_funnel",
                "ml_churn_training",
                "ml_conversion_training",
                "fct_segment_kpis",
                "fct_onboarding_funnel_by_segment",
            )
        }
        assert all(n > 0 for n in counts.values()), counts
        assert conn.execute("select count(*) from main.dim_users").fetchone()[0] == USERS
        # Rates and money are 64-bit everywhere (docs/contracts.md: DOUBLE).
        single = conn.execute("""
            select table_name, column_name from information_schema.columns
            where table_schema = 'main' and data_type in ('FLOAT', 'REAL')""").fetchall()
        assert not single, f"32-bit float columns: {single}"
        # Pre-signup anonymous page views were attributed to their users.
        stitched = conn.execute(
            "select count(*) from main.int_events_stitched where is_anonymous"
        ).fetchone()[0]
        assert stitched > 0
        # Labels only for snapshots whose whole window is inside the data.
        last_day, last_label = conn.execute("""
            select (select max(activity_date) from main.int_user_activity_daily),
                   (select max(snapshot_date) from main.ml_churn_training)""").fetchone()
        assert last_label + timedelta(days=28) <= last_day
    finally:
        conn.close()


def _compare_all_tables(left: Path, right: Path) -> dict[str, tuple[int, int, int]]:
    """Per table in schema main: (rows, rows only in left, rows only in right)."""
    conn = duckdb.connect(str(left), read_only=True)
    try:
        conn.execute(f"attach '{right}' as other (read_only)")
        tables = [
            r[0]
            for r in conn.execute("""
            select table_name from information_schema.tables
            where table_catalog = current_database() and table_schema = 'main'
              and table_type = 'BASE TABLE' order by 1""").fetchall()
        ]
        out = {}
        for t in tables:
            if t in SKIP_COMPARE:
                continue
            cols = ", ".join(
                f'"{c[0]}"'
                for c in conn.execute(
                    f"select column_name from information_schema.columns where table_catalog = "
                    f"current_database() and table_schema='main' and table_name='{t}' "
                    f"order by ordinal_position"
                ).fetchall()
            )
            only_left = conn.execute(
                f"select count(*) from (select {cols} from main.{t} "
                f"except all select {cols} from other.main.{t})"
            ).fetchone()[0]
            only_right = conn.execute(
                f"select count(*) from (select {cols} from other.main.{t} "
                f"except all select {cols} from main.{t})"
            ).fetchone()[0]
            out[t] = (
                conn.execute(f"select count(*) from main.{t}").fetchone()[0],
                only_left,
                only_right,
            )
        return out
    finally:
        conn.close()


def test_incremental_runs_equal_full_refresh(
    tmp_path: Path, raw_data: RawData, full_build: Path
) -> None:
    """Raw lands one partition at a time (late events and duplicates arrive in later
    partitions); dbt runs a multi-day backfill window first, then one window per day. The
    result must equal the full build of all data, table by table, row for row."""
    db = tmp_path / "incremental.duckdb"
    dates = raw_data.dates
    first_window = dates[: DAYS - 6]
    load_raw(db, raw_data, first_window)
    run_dbt(
        ["run", "--exclude", "tag:after_segments"],
        db,
        tmp_path / "target",
        _window(first_window[0], first_window[-1] + timedelta(days=1)),
    )
    for day in dates[DAYS - 6 :]:
        load_raw(db, raw_data, [day])
        run_dbt(
            ["run", "--exclude", "tag:after_segments"],
            db,
            tmp_path / "target",
            _window(day, day + timedelta(days=1)),
        )
    # Re-running a day already processed changes nothing.
    run_dbt(
        ["run", "--exclude", "tag:after_segments"],
        db,
        tmp_path / "target",
        _window(dates[-3], dates[-2]),
    )
    _segment_inputs(db)
    run_dbt(["run", "--select", "tag:after_segments"], db, tmp_path / "target")
    diff = _compare_all_tables(db, full_build)
    assert {
        "int_sessions",
        "int_user_activity_daily",
        "fct_user_features",
        "ml_churn_training",
        "fct_segment_kpis",
    } <= set(diff)
    mismatched = {t: d for t, d in diff.items() if d[1] or d[2]}
    assert not mismatched, f"incremental != full refresh (rows, only_inc, only_full): {mismatched}"
    # ml_ltv_training is empty at this size (40 days < the 90-day label window).
    assert all(
        diff[t][0] > 0
        for t in (
            "int_sessions",
            "int_user_activity_daily",
            "fct_user_features",
            "ml_churn_training",
            "fct_cohort_retention",
            "fct_segment_kpis",
        )
    ), diff


def test_features_ignore_data_after_the_snapshot(
    tmp_path: Path, raw_data: RawData, full_build: Path
) -> None:
    """Mutate everything dated after a snapshot day (drop and add events, change the CRM plan,
    add invoices); every feature row up to that day stays identical."""
    snapshot = raw_data.dates[DAYS // 2]
    cutoff = datetime.combine(snapshot + timedelta(days=1), datetime.min.time())
    db = tmp_path / "mutated.duckdb"
    shutil.copy(full_build, db)
    conn = duckdb.connect(str(db))
    try:
        before = conn.execute(
            "select count(*) from main.fct_user_features where snapshot_date <= ?", [snapshot]
        ).fetchone()[0]
        assert before > 0
        conn.execute(
            'delete from raw.events where "timestamp" >= ? and hash(message_id) % 2 = 0', [cutoff]
        )
        conn.execute(
            """
            insert into raw.events
            select message_id || '-future', type, event, user_id, anonymous_id,
                   "timestamp" + interval 3 day, received_at + interval 3 day, properties, context,
                   _partition_date + 3, _loaded_at, _source, _source_file, _source_line
            from raw.events where "timestamp" >= ? - interval 3 day and "timestamp" < ?""",
            [cutoff, cutoff],
        )
        conn.execute(
            """
            insert into raw.crm_contacts
            select user_id, email, signup_at, company, 'mutated', '1000+', country, role,
                   'enterprise', acquisition_channel, ? + interval 2 hour, attributes,
                   ?, _loaded_at, _source, _source_file, _source_line
            from raw.crm_contacts""",
            [cutoff, cutoff.date()],
        )
        conn.execute(
            """
            insert into raw.billing_invoices
            select 'future-' || user_id, user_id, 999.0, 'USD', 'paid', ? + interval 1 day,
                   ? + interval 31 day, ? + interval 1 day, ?, now(), 'demo', 'x', 1
            from raw.crm_contacts group by user_id""",
            [cutoff, cutoff, cutoff, cutoff.date()],
        )
        conn.execute(
            "create table main.features_before as select * from main.fct_user_features "
            "where snapshot_date <= ?",
            [snapshot],
        )
    finally:
        conn.close()
    run_dbt(["run", "--full-refresh", "--select", "+fct_user_features"], db, tmp_path / "target")
    conn = duckdb.connect(str(db), read_only=True)
    try:
        later_changed = conn.execute(
            """
            select count(*) from main.fct_user_features where snapshot_date > ?
              and industry = 'mutated'""",
            [snapshot],
        ).fetchone()[0]
        assert later_changed > 0, "the mutation must be visible after the snapshot"
        only_before, only_after = conn.execute(
            """
            select
              (select count(*) from (select * from main.features_before except all
                 select * from main.fct_user_features where snapshot_date <= ?)),
              (select count(*) from (select * from main.fct_user_features where snapshot_date <= ?
                 except all select * from main.features_before))""",
            [snapshot, snapshot],
        ).fetchone()
        assert (only_before, only_after) == (0, 0)
    finally:
        conn.close()
