"""A new day the daily job's way equals a full rebuild, on every table the day touches.

N days are built in full; then day N+1 is loaded and the daily job's dbt invocations run with
the day's window (orchestration.dbt_selection.daily_steps: upstream + incremental build, then
the downstream marts, with their tests). Every table those invocations write is compared with a
full rebuild of the same N+1 days, row for row (EXCEPT ALL both ways; doubles within 1e-9).
The simulation has late events, re-deliveries, pre-signup anonymous history identified later
and CRM plan changes, so the roll-forward meets the cases that move a user's cut back.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml
from dbt_fixtures import RawData, load_raw, received_event, run_dbt, simulate

from contracts.marts import USER_SCORES_DDL
from orchestration.dbt_selection import build_args, daily_steps, split_models
from orchestration.settings import DBT_PROJECT_DIR, Settings

pytestmark = pytest.mark.slow  # two warehouses end to end; `make test-fast` skips it

USERS, DAYS = 150, 41  # 40 days of history + the new day
FULL_BUILD = ["run", "--full-refresh", "--exclude", "tag:after_segments"]


def _tables(conn: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> list[str]:
    rows = conn.execute(
        "select table_name from information_schema.tables "
        "where table_schema = 'main' and table_type = 'BASE TABLE'"
    ).fetchall()
    return sorted(name for (name,) in rows if name in names)


def _rounded(conn: duckdb.DuckDBPyConnection, table: str, catalog: str) -> str:
    """The table's columns, doubles rounded to 9 decimals (the same SQL on the same rows may
    still sum floats in another order)."""
    columns = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema = 'main' and table_name = ? "
        "order by ordinal_position",
        [catalog, table],
    ).fetchall()
    exprs = [
        f'round("{name}", 9) as "{name}"' if kind in ("DOUBLE", "FLOAT") else f'"{name}"'
        for name, kind in columns
    ]
    return f"select {', '.join(exprs)} from {catalog}.main.{table}"


def _day_window(day: date) -> dict:
    return {"min_date": day.isoformat(), "max_date": (day + timedelta(days=1)).isoformat()}


def _differences(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    daily, full = _rounded(conn, table, "daily_run"), _rounded(conn, table, "full_build")
    return conn.execute(
        f"select count(*) from (({daily} except all {full}) union all ({full} except all {daily}))"
    ).fetchone()[0]


@pytest.fixture(scope="module")
def raw_data() -> RawData:
    data = simulate(users=USERS, days=DAYS, seed=23, start=date(2025, 2, 3))
    _new_device_identified_on_the_new_day(data)
    _session_open_at_the_new_devices_first_event(data)
    _late_crm_version_and_invoice_on_the_new_day(data)
    return data


def _late_crm_version_and_invoice_on_the_new_day(data: RawData) -> None:
    """Two quiet users (no events in the late-arrival window) get rows in the new day's files
    dated two days earlier: a CRM version on a paid plan and a paid invoice. Their stored rows
    of those days change with nothing else of theirs in the window (macros/feature_changes.sql
    must find them from the raw partitions)."""
    new_day = data.dates[-1]
    window_start = new_day - timedelta(days=Settings.from_env().late_arrival_days)
    active = {e["user_id"] for e in data.tables["events"] if e["_partition_date"] >= window_start}
    quiet = sorted({c["user_id"] for c in data.tables["crm_contacts"]} - active - {"u0001", None})
    late_at = datetime.combine(new_day - timedelta(days=2), datetime.min.time())
    crm_user, invoice_user = quiet[0], quiet[1]
    latest = max(
        (c for c in data.tables["crm_contacts"] if c["user_id"] == crm_user),
        key=lambda c: c["updated_at"],
    )
    data.tables["crm_contacts"].append(
        dict(latest, plan="pro", updated_at=late_at + timedelta(hours=9), _partition_date=new_day)
    )
    data.tables["billing_invoices"].append(
        {
            "invoice_id": f"inv-late-{invoice_user}",
            "user_id": invoice_user,
            "amount": 99.0,
            "currency": "USD",
            "status": "paid",
            "period_start": late_at,
            "period_end": late_at + timedelta(days=30),
            "paid_at": late_at + timedelta(hours=8),
            "_partition_date": new_day,
        }
    )


def _new_device_identified_on_the_new_day(data: RawData) -> None:
    """A known user's new device: anonymous page views 2 and 6 days before the new day (one
    before the late-arrival window), identified on the new day. The new day's run must stitch
    the older anonymous history, which no earlier run could (the simulation identifies every
    device by its signup, days before the last day)."""
    new_day = datetime.combine(data.dates[-1], datetime.min.time())
    for n, ts in enumerate(
        (
            new_day - timedelta(days=6, hours=-10),
            new_day - timedelta(days=2, hours=-9),
            new_day + timedelta(hours=11),
        )
    ):
        data.tables["events"].append(
            {
                "message_id": f"new-device-{n}",
                "type": "identify" if n == 2 else "page",
                "event": None if n == 2 else "Pricing",
                "user_id": "u0001" if n == 2 else None,
                "anonymous_id": "a-new-device",
                "timestamp": ts,
                "received_at": ts + timedelta(seconds=5),
                "properties": "{}",
                "context": "{}",
                "_partition_date": ts.date(),
            }
        )


def _session_open_at_the_new_devices_first_event(data: RawData) -> None:
    """u0001 signed in 10 minutes before the new device's first anonymous page view (6 days
    before the new day): once that view is stitched, it continues this stored session, so the
    new day's run must find the session (a cut before the late-arrival window, from the
    stitched history: macros/session_cuts.sql) and rebuild it with the view."""
    ts = datetime.combine(data.dates[-1], datetime.min.time()) - timedelta(
        days=6, hours=-10, minutes=10
    )
    data.tables["events"].append(
        received_event("known-session-before-new-device", "track", "Signed In", "u0001", ts)
    )


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory: pytest.TempPathFactory, raw_data: RawData):
    """(daily-run warehouse, full-rebuild warehouse, models the daily job writes)."""
    tmp = tmp_path_factory.mktemp("new_day_vs_rebuild")
    daily_db, full_db = tmp / "daily.duckdb", tmp / "full.duckdb"
    history, new_day = raw_data.dates[:-1], raw_data.dates[-1]
    load_raw(daily_db, raw_data, history)
    run_dbt(FULL_BUILD, daily_db, tmp / "target_history")
    _keep_stored_rows(daily_db)
    selection = split_models(tmp / "target_history" / "manifest.json")
    after_segments = build_args(selection.after_segments)
    _segment_tables(daily_db)
    run_dbt(after_segments, daily_db, tmp / "target_history_segments")
    load_raw(daily_db, raw_data, [new_day])
    window = _day_window(new_day)
    for step, args in enumerate(daily_steps(selection)):
        run_dbt(args, daily_db, tmp / f"target_day_{step}", window)
    _segment_tables(daily_db, new_day)
    run_dbt(after_segments, daily_db, tmp / "target_day_segments", window)
    load_raw(full_db, raw_data)
    run_dbt(FULL_BUILD, full_db, tmp / "target_full")
    _copy_segment_tables(daily_db, full_db)
    run_dbt(after_segments, full_db, tmp / "target_full_segments")
    touched = (
        selection.upstream + selection.incremental + selection.downstream + selection.after_segments
    )
    # The daily job's way: rolled forward by pairs (macros/feature_region.sql).
    assert "target_day_number" in _compiled_features(tmp / "target_day_0")
    # fct_cohort_retention from its stored rows (macros/cohort_increments.sql)
    assert "as stored" in next((tmp / "target_day_1").rglob("fct_cohort_retention.sql")).read_text()
    return daily_db, full_db, touched, new_day, selection


def _segment_tables(db: Path, day: date | None = None) -> None:
    """user_segments and user_scores as the Python steps write them: for every feature day, or
    only `day` (a new day's run), derived from the features."""
    only = "" if day is None else f"where snapshot_date = '{day}'"
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            "create table if not exists main.user_segments "
            "(user_id varchar, segment_date date, segments varchar[])"
        )
        conn.execute(USER_SCORES_DDL)
        conn.execute(
            "insert into main.user_segments select user_id, snapshot_date, "
            "list_filter([case when is_paid then 'paying' end, "
            "case when is_active_28d then 'active' else 'dormant' end, "
            "case when onboarding_completion < 0.5 then 'onboarding' end], lambda x: x is not null) "
            f"from main.fct_user_features {only}"
        )
        conn.execute(
            "insert into main.user_scores (user_id, score_date, churn_probability, ltv_pred) "
            "select user_id, snapshot_date, (hash(user_id, snapshot_date) % 1000) / 1000.0, "
            f"events_28d * 1.5 from main.fct_user_features {only}"
        )


def _copy_segment_tables(source: Path, db: Path) -> None:
    """The same segment and score rows in the rebuild: the marts read them as given (old days'
    segments are not re-decided by a new day)."""
    with duckdb.connect(str(db)) as conn:
        conn.execute(f"attach '{source}' as source (read_only)")
        for table in ("user_segments", "user_scores"):
            conn.execute(f"create table main.{table} as select * from source.main.{table}")


def _keep_stored_rows(db: Path) -> None:
    """The history's feature rows with their DuckDB rowids (a deleted and re-inserted row gets
    a new one) and its daily activity, in a schema the compared tables do not include."""
    with duckdb.connect(str(db)) as conn:
        conn.execute("create schema stored")
        conn.execute(
            "create table stored.features as select rowid as stored_rowid, * "
            "from main.fct_user_features"
        )
        conn.execute("create table stored.daily as select * from main.int_user_activity_daily")


def _compiled_features(target: Path) -> str:
    return next((target / "compiled").rglob("fct_user_features.sql")).read_text()


def _compare_all(daily_db: Path, full_db: Path, touched: tuple[str, ...], new_day: date) -> None:
    conn = duckdb.connect(":memory:")
    try:
        conn.execute(f"attach '{daily_db}' as daily_run (read_only)")
        conn.execute(f"attach '{full_db}' as full_build (read_only)")
        conn.execute("use daily_run")
        tables = _tables(conn, touched)
        # The marts this test is about are there (a selection change must not empty it).
        assert {
            "fct_user_features",
            "int_user_activity_daily",
            "dim_users",
            "fct_segment_kpis",
            "fct_onboarding_funnel_by_segment",
        } <= set(tables)
        differences = {t: _differences(conn, t) for t in tables}
        features_today = conn.execute(
            "select count(*) from daily_run.main.fct_user_features where snapshot_date = ?",
            [new_day],
        ).fetchone()[0]
    finally:
        conn.close()
    assert features_today > 0, "the new day has no feature rows"
    assert differences == dict.fromkeys(tables, 0), differences


def test_new_day_equals_full_rebuild_on_every_touched_table(warehouses) -> None:
    """The new day rolled forward by pairs (the daily job's way)."""
    daily_db, full_db, touched, new_day, _ = warehouses
    _compare_all(daily_db, full_db, touched, new_day)


def test_rerun_with_windows_equals_full_rebuild(warehouses, tmp_path: Path) -> None:
    """The same day re-run with the backfill form (windows over the grid, as for a window
    further back than vars.features_pairs_max_days) gives the same tables too."""
    daily_db, full_db, touched, new_day, selection = warehouses
    rerun = tmp_path / "rerun.duckdb"
    rerun.write_bytes(daily_db.read_bytes())
    window = {**_day_window(new_day), "features_pairs_max_days": -1}
    for step, args in enumerate(daily_steps(selection)):
        run_dbt(args, rerun, tmp_path / f"target_{step}", window)
    assert "target_day_number" not in _compiled_features(tmp_path / "target_0")
    _compare_all(rerun, full_db, touched, new_day)


def test_a_changed_day_is_detected(warehouses, tmp_path: Path) -> None:
    """The comparison can fail: one altered feature value is reported."""
    _, full_db, _, new_day, _ = warehouses
    altered = tmp_path / "altered.duckdb"
    altered.write_bytes(full_db.read_bytes())
    conn = duckdb.connect(str(altered))
    try:
        conn.execute(
            "update main.fct_user_features set events_28d = events_28d + 1 "
            "where rowid = (select min(rowid) from main.fct_user_features "
            "where snapshot_date = ?)",
            [new_day],
        )
    finally:
        conn.close()
    conn = duckdb.connect(":memory:")
    try:
        conn.execute(f"attach '{altered}' as daily_run (read_only)")
        conn.execute(f"attach '{full_db}' as full_build (read_only)")
        assert _differences(conn, "fct_user_features") == 2
    finally:
        conn.close()


def test_users_without_changed_history_keep_their_stored_days(warehouses) -> None:
    """A roll-forward rebuilds the late-arrival window only for users whose history there
    changed (macros/feature_changes.sql); any other user keeps the stored rows of those days
    and gets only the new day. The rows still equal a full rebuild (above), including users
    whose 7- or 28-day counts drop on the new day only because a day left the window, and
    users whose late events landed inside the window. "Changed" is checked here on its own
    terms: the user's daily activity rows of the window differ from the history's."""
    daily_db, _, _, new_day, _ = warehouses
    reprocess_from = new_day - timedelta(days=Settings.from_env().late_arrival_days)
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    timeout_minutes = int(project["vars"]["session_timeout_minutes"])
    with duckdb.connect(str(daily_db), read_only=True) as conn:
        conn.execute(
            """
            create temp table window_users as
            select user_id from main.int_user_activity_daily where activity_date >= $1
            union select user_id from main.stg_billing__invoices
            where is_revenue and paid_date >= $1
            union select user_id from main.stg_crm__contact_snapshots
            where valid_from_date >= $1 or valid_to_date >= $1
            -- a cut before the window (macros/session_cuts.sql): a session still open at its
            -- start, or older anonymous history identified in it
            union select user_id from main.int_sessions
            where session_end >= $1::timestamp - to_minutes($2::bigint)
            union select stitched_user_id from main.int_events_stitched
            where is_anonymous and anonymous_id in (
                select anonymous_id from main.int_identity_map where first_identified_at >= $1)
            """,
            [reprocess_from, timeout_minutes],
        )
        conn.execute(
            """
            create temp table changed_users as
            -- active_minutes is a double sum: its last bits may differ between two runs
            with
            now as (
                select * exclude (active_minutes), round(active_minutes, 9) as minutes
                from main.int_user_activity_daily
                where activity_date >= $1 and activity_date < $2
            ),
            before as (
                select * exclude (active_minutes), round(active_minutes, 9) as minutes
                from stored.daily
                where activity_date >= $1 and activity_date < $2
            )
            select user_id from (
                (select * from now except all select * from before)
                union all
                (select * from before except all select * from now))
            group by user_id
            """,
            [reprocess_from, new_day],
        )
        kept = conn.execute(
            """
            select
                case
                    when c.user_id is not null then 'changed'
                    when w.user_id is not null then 'window data or cut, unchanged'
                    else 'no window data'
                end as kind,
                count(*) as stored_rows,
                count(f.rowid) filter (where f.rowid = s.stored_rowid) as same_rowid
            from stored.features as s
            left join main.fct_user_features as f
                on f.user_id = s.user_id and f.snapshot_date = s.snapshot_date
            left join window_users as w on w.user_id = s.user_id
            left join changed_users as c on c.user_id = s.user_id
            where s.snapshot_date >= $1
            group by all""",
            [reprocess_from],
        ).fetchall()
        edges = conn.execute(
            """
            select
                count(*) filter (where today.events_7d < yesterday.events_7d),
                count(*) filter (where today.events_28d < yesterday.events_28d)
            from main.fct_user_features as today
            inner join main.fct_user_features as yesterday
                on yesterday.user_id = today.user_id
                and yesterday.snapshot_date = today.snapshot_date - 1
            where today.snapshot_date = $1
              and today.user_id not in (select user_id from changed_users)""",
            [new_day],
        ).fetchone()
    rows = {kind: (stored, same) for kind, stored, same in kept}
    # users without window data: every stored row of the window kept as it was
    assert rows["no window data"][0] > 0, rows
    assert rows["no window data"][1] == rows["no window data"][0], rows
    # users whose window history changed (late events of the new day): their rows rewritten
    assert rows["changed"][0] > 0 and rows["changed"][1] == 0, rows
    # users with window data and nothing changed: most kept (the roll-forward's saving)
    unchanged = rows["window data or cut, unchanged"]
    assert unchanged[1] > unchanged[0] / 2, rows
    assert edges[0] > 0 and edges[1] > 0, edges  # window edges met by carried-forward users
