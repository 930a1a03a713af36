"""`segflow segments check` and `segflow segments diff` on real dbt output: a value typo fails
the check with a suggestion, SQL habits get the rule language's spelling, and the diff of a
changed rule gives the enter/exit counts computed by hand from fct_user_features; an experiment
short of its minimum sample says how many more days it needs at its intake."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import load_raw, run_dbt, simulate  # tests/ is on sys.path (rootdir conftest)

from orchestration.report.pages import experiments as experiments_page
from orchestration.segments.assign import assign_segments
from orchestration.segments.config import load_config
from orchestration.segments.experiments import experiment_results
from orchestration.segments.schema import warehouse_columns
from orchestration.settings import Settings

pytestmark = pytest.mark.slow
SEGFLOW = Path(sys.executable).parent / "segflow"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("segments_preview")
    db = root / "warehouse.duckdb"
    data = simulate(users=120, days=35)
    load_raw(db, data)
    run_dbt(["run", "-s", "+fct_user_features"], db, root / "dbt_target")
    return db


def _segflow(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SEGFLOW_DUCKDB_PATH": str(db), "SEGFLOW_HOME": str(db.parent / "home")}
    return subprocess.run(
        [str(SEGFLOW), *args], capture_output=True, text=True, env=env, timeout=300
    )


def _changed_segments(tmp: Path, old: str, new: str) -> Path:
    text = Settings.from_env().segments_file.read_text()
    assert old in text
    path = tmp / "segments.yml"
    path.write_text(text.replace(old, new))
    return path


def test_a_value_typo_fails_the_check_with_a_suggestion(warehouse: Path, tmp_path: Path) -> None:
    changed = _changed_segments(tmp_path, "industry == 'finance'", "industry == 'Finance'")
    done = _segflow(warehouse, "segments", "check", "--segments", str(changed))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "industry never takes 'Finance'" in done.stdout
    assert "did you mean 'finance'?" in done.stdout
    ok = _segflow(warehouse, "segments", "check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("ok: ")


def test_sql_habits_get_the_rule_languages_spelling(warehouse: Path, tmp_path: Path) -> None:
    changed = _changed_segments(
        tmp_path, "active_days_7d >= 5 and feature_breadth_28d >= 3",
        "active_days_7d >= 5 && feature_breadth_28d = 3",
    )  # fmt: skip
    done = _segflow(warehouse, "segments", "check", "--segments", str(changed))
    assert done.returncode == 1
    assert "`&&` is written `and`" in done.stdout and "`=` compares as `==`" in done.stdout


def test_diff_counts_who_enters_and_exits(warehouse: Path, tmp_path: Path) -> None:
    changed = _changed_segments(
        tmp_path, "rule: days_since_signup < 7", "rule: days_since_signup < 14"
    )
    md = tmp_path / "diff.md"
    done = _segflow(
        warehouse, "segments", "diff", "--segments", str(changed), "--markdown", str(md)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with duckdb.connect(str(warehouse), read_only=True) as conn:  # by hand, from dbt's output
        latest, before, widened = conn.execute(
            "select max(snapshot_date), "
            "count(*) filter (where days_since_signup < 7 and not reached_first_project), "
            "count(*) filter (where days_since_signup >= 7 and days_since_signup < 14 "
            "and not reached_first_project) "
            "from main.fct_user_features "
            "where snapshot_date = (select max(snapshot_date) from main.fct_user_features)"
        ).fetchone()
    assert widened > 0  # the test data must exercise the change
    row = next(line for line in done.stdout.splitlines() if line.startswith("new_users "))
    assert row.split()[1:6] == [
        f"{before:,}",
        f"{before + widened:,}",
        f"{widened:+,}",
        f"{widened:,}",
        "0",
    ]
    unchanged = next(line for line in done.stdout.splitlines() if line.startswith("smb "))
    assert unchanged.endswith("(unchanged)")
    assert f"(day {latest})" in done.stdout
    text = md.read_text()
    assert (
        f"| new_users | {before:,} | {before + widened:,} | {widened:+,} | {widened:,} | 0 |"
        in text
    )
    gate = _segflow(
        warehouse, "segments", "diff", "--segments", str(changed), "--markdown", str(md),
        "--max-change-share", "0",
    )  # fmt: skip
    assert gate.returncode == 3 and "gate:" in gate.stdout


def test_experiment_verdict_says_how_many_more_days_on_real_dbt_output(
    warehouse: Path, tmp_path: Path
) -> None:
    db = tmp_path / "experiments.duckdb"
    shutil.copy(warehouse, db)
    min_sample = 1_000  # more than the simulation has: every arm is short
    with duckdb.connect(str(db)) as conn:
        config = load_config(columns=warehouse_columns(conn))
        dates = [d for (d,) in conn.execute(
            "select distinct snapshot_date from main.fct_user_features order by 1").fetchall()]  # fmt: skip
        assign_segments(conn, config, dates)
        results = experiment_results(conn, config, dates[-1], min_sample=min_sample)
        # by hand: users whose first day in the experiment falls in the last 14 days,
        # leaving out the experiment's first day (everyone already there enters at once)
        by_hand = conn.execute(
            """
            with exposure as (
                select user_id, experiment, arg_min(experiment_variant, segment_date) as variant,
                       min(segment_date) as exposed_at
                from main.user_segments where experiment is not null group by all
            ), bounds as (
                select experiment, greatest(min(exposed_at) + 1, ?::date - 13) as lo
                from exposure group by all
            )
            select e.variant, count(*) filter (where e.exposed_at >= b.lo)
                   / (?::date - any_value(b.lo) + 1) as per_day
            from exposure e join bounds b using (experiment) group by e.variant
            """,
            [dates[-1], dates[-1]],
        ).fetchall()
    overall = results[results["segment"] == "all"].set_index("variant")
    assert dict(by_hand) == pytest.approx(overall["users_per_day"].to_dict(), abs=1e-3)
    e = experiments_page.arms(results, min_sample).set_index(["segment", "variant"])
    control = overall.loc["control"]
    assert control["users_per_day"] > 0  # the simulation must keep signing users up
    days = math.ceil((min_sample - control["users"]) / control["users_per_day"])
    for variant in set(overall.index) - {"control"}:
        words = e.loc[("all", variant), "in_words"]
        assert words.startswith(
            f"no verdict yet: control has {control['users']:,} of the {min_sample:,} needed: "
            f"about {days} more days at today's rate"
        ), words
