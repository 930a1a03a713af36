"""fct_user_features' dbt tests read the snapshot days a run rebuilds, not the whole history:
a new day's build tests from the run window's start minus late_arrival_days on (at 100k x 180
the unscoped tests scanned 18 M rows every morning); a run without a window (a full build)
still tests every row. Each direction is shown failing on a planted duplicate."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import load_raw, run_dbt, simulate

from orchestration.run_window import RunWindow, window_sql
from orchestration.settings import Settings

pytestmark = pytest.mark.slow

UNIQUE_TEST = "unique_combination_fct_user_features"


def _plant_duplicate(db: Path, day: date) -> None:
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            "insert into main.fct_user_features select * from main.fct_user_features "
            "where snapshot_date = ? limit 1",
            [day],
        )


def _failed_tests(db: Path, target: Path, window: RunWindow | None) -> list[str]:
    """`dbt test` of fct_user_features, with the window table written as the daily job does
    (None: no window, everything); the names of the tests that failed."""
    if window is not None:
        with duckdb.connect(str(db)) as conn:
            conn.execute(window_sql(window))
    proc = run_dbt(["test", "--select", "fct_user_features"], db, target, check=False)
    failed = re.findall(r"FAIL \d+ (\S+)", proc.stdout)
    assert (proc.returncode != 0) == bool(failed), proc.stdout[-3000:]
    assert "PASS" in proc.stdout, proc.stdout[-3000:]
    return failed


def test_feature_tests_read_the_rebuilt_days_and_a_full_run_reads_all(tmp_path: Path) -> None:
    data = simulate(users=30, days=20, seed=5, start=date(2025, 3, 3))
    db, target = tmp_path / "w.duckdb", tmp_path / "target"
    load_raw(db, data, data.dates)
    run_dbt(["run", "--select", "+fct_user_features"], db, target)
    new_day = data.dates[-1]
    window = RunWindow(new_day, new_day)
    first_tested = new_day - timedelta(days=Settings.from_env().late_arrival_days)

    assert _failed_tests(db, target, window) == []

    _plant_duplicate(db, first_tested - timedelta(days=1))  # a day the run did not rebuild
    assert _failed_tests(db, target, window) == []
    # No window: the whole table, as a full build.
    assert [t for t in _failed_tests(db, target, None) if t.startswith(UNIQUE_TEST)]

    _plant_duplicate(db, first_tested)  # the first day the run rebuilds
    assert [t for t in _failed_tests(db, target, window) if t.startswith(UNIQUE_TEST)]
