"""fct_cohort_retention built from its stored rows (macros/cohort_increments.sql) equals a
full rebuild, whatever changed in its inputs since the last build.

The mart's two inputs are written directly (dim_users: user_id, signup_date;
int_user_activity_daily: user_id, activity_date, activity_events), the mart is built, the
inputs change the ways a daily run can change them (a new day, a late active day in an old
week, an active day that stops counting in an old month, a user moved to another cohort, a new
signup, a gone user), and the next build (from the stored rows) is compared with a full
rebuild of the same inputs, row for row.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import run_dbt

pytestmark = pytest.mark.slow  # three dbt builds

START = date(2025, 1, 6)  # a Monday
DAYS = 70
SELECT = ["run", "--select", "fct_cohort_retention"]


def _write_inputs(db: Path) -> None:
    """30 users signing up over the first 40 days, each with a row every 3rd day from signup
    (every other one without activity events), skipping every third week (by user)."""
    users = [(f"u{i:02d}", START + timedelta(days=i * 4 // 3)) for i in range(30)]
    activity = [
        (user, day, 1 if (day - signup).days % 6 else 0)
        for i, (user, signup) in enumerate(users)
        for day in (START + timedelta(days=d) for d in range(DAYS - 1))
        if day >= signup and (day - signup).days % 3 == 0 and ((day - START).days // 7 + i) % 3
    ]
    with duckdb.connect(str(db)) as conn:
        conn.execute("create table main.dim_users (user_id varchar, signup_date date)")
        conn.executemany("insert into main.dim_users values (?, ?)", users)
        conn.execute(
            "create table main.int_user_activity_daily "
            "(user_id varchar, activity_date date, activity_events integer)"
        )
        conn.executemany("insert into main.int_user_activity_daily values (?, ?, ?)", activity)


def _change_days(conn: duckdb.DuckDBPyConnection) -> None:
    """Active days a new day's run can change, older periods included."""
    last = START + timedelta(days=DAYS - 1)
    # the new day
    conn.execute("insert into main.int_user_activity_daily values ('u01', ?, 4)", [last])
    # late data: a user's only active day in an old week (stitched history, a re-load)
    conn.execute(
        "insert into main.int_user_activity_daily "
        "select u.user_id, w.week_start + 1, 2 from main.dim_users as u, "
        "(select cast(? as date) + cast(7 * range as integer) as week_start "
        "from range(1, 6)) as w "
        "where u.signup_date < w.week_start and not exists (select 1 "
        "from main.int_user_activity_daily as a where a.user_id = u.user_id "
        "and a.activity_events > 0 and a.activity_date >= w.week_start "
        "and a.activity_date < w.week_start + 7) "
        "order by w.week_start, u.user_id limit 1",
        [START],
    )
    late = "select count(*) from main.int_user_activity_daily where activity_events = 2"
    assert conn.execute(late).fetchone() == (1,)
    # an active day that no longer counts, in an old week
    conn.execute(
        "update main.int_user_activity_daily set activity_events = 0 "
        "where user_id = 'u20' and activity_date = (select min(activity_date) "
        "from main.int_user_activity_daily where user_id = 'u20' and activity_events > 0)"
    )


def _change_cohorts(conn: duckdb.DuckDBPyConnection) -> None:
    """A CRM correction moves u05 to another old cohort; u07 is gone; a new signup."""
    conn.execute(
        "update main.dim_users set signup_date = ? where user_id = 'u05'",
        [START + timedelta(days=15)],
    )
    conn.execute("delete from main.dim_users where user_id = 'u07'")
    conn.execute("insert into main.dim_users values ('u99', ?)", [START + timedelta(days=DAYS)])


CHANGES = {"days": (_change_days,), "cohorts": (_change_cohorts,)}
CHANGES["both"] = CHANGES["days"] + CHANGES["cohorts"]


def _differences(daily: Path, full: Path) -> int:
    with duckdb.connect(":memory:") as conn:
        conn.execute(f"attach '{daily}' as daily (read_only)")
        conn.execute(f"attach '{full}' as full_build (read_only)")
        a, b = "daily.main.fct_cohort_retention", "full_build.main.fct_cohort_retention"
        return conn.execute(
            f"select count(*) from ((from {a} except all from {b}) "
            f"union all (from {b} except all from {a}))"
        ).fetchone()[0]


def _compiled(target: Path) -> str:
    return next((target / "run").rglob("fct_cohort_retention.sql")).read_text()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse whose mart and stored digest were built from the inputs as they were."""
    tmp = tmp_path_factory.mktemp("cohort_retention")
    db = tmp / "history.duckdb"
    _write_inputs(db)
    run_dbt(SELECT, db, tmp / "target_history")
    return db


def _changed_copies(built: Path, tmp_path: Path, changes: str) -> tuple[Path, Path]:
    daily, full = tmp_path / "daily.duckdb", tmp_path / "full.duckdb"
    shutil.copy(built, daily)
    with duckdb.connect(str(daily)) as conn:
        for change in CHANGES[changes]:
            change(conn)
    shutil.copy(daily, full)
    return daily, full


@pytest.mark.parametrize("changes", sorted(CHANGES))
def test_a_build_from_stored_rows_equals_a_full_rebuild(
    built: Path, tmp_path: Path, changes: str
) -> None:
    daily, full = _changed_copies(built, tmp_path, changes)
    run_dbt(SELECT, daily, tmp_path / "target_daily")
    run_dbt([*SELECT, "--full-refresh"], full, tmp_path / "target_full")
    # the daily build reused stored rows (copied from before the changed periods)
    assert "as stored" in _compiled(tmp_path / "target_daily")
    assert "as stored" not in _compiled(tmp_path / "target_full")
    with duckdb.connect(str(full), read_only=True) as conn:
        assert conn.execute("select count(*) from main.fct_cohort_retention").fetchone()[0] > 40
    assert _differences(daily, full) == 0
    # and again the day after, with nothing new: still equal, from stored rows
    run_dbt(SELECT, daily, tmp_path / "target_again")
    assert "as stored" in _compiled(tmp_path / "target_again")
    assert _differences(daily, full) == 0


def test_a_mart_changed_by_other_code_is_computed_in_full(built: Path, tmp_path: Path) -> None:
    daily, full = _changed_copies(built, tmp_path, "days")
    with duckdb.connect(str(daily)) as conn:
        conn.execute("update main.fct_cohort_retention set retained_users = retained_users + 1")
    run_dbt(SELECT, daily, tmp_path / "target_daily")
    run_dbt([*SELECT, "--full-refresh"], full, tmp_path / "target_full")
    assert "as stored" not in _compiled(tmp_path / "target_daily")
    assert _differences(daily, full) == 0
