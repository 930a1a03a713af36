"""Segment assignment, membership history and triggers on a real DuckDB file."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support.segment_tables import build_frames, write_tables

from contracts import tracking_plan
from orchestration.segments.assign import assign_segments, segment_size_changes
from orchestration.segments.config import SegmentConfig, load_config
from orchestration.segments.membership import rebuild_membership
from orchestration.segments.schema import FEATURE_COLUMNS, SCORE_COLUMNS

START = date(2025, 3, 3)


def days(n: int, start: date = START) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


@pytest.fixture(scope="module")
def config() -> SegmentConfig:
    return load_config()


@pytest.fixture
def conn(tmp_path: Path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield connection
    connection.close()


def snapshot(conn: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    tables = {
        "user_segments": "user_id, segment_date",
        "segment_membership": "user_id, segment, entered_at",
        "user_triggers": 'user_id, "trigger", fired_at',
    }
    return {t: conn.execute(f"select * from main.{t} order by {o}").df() for t, o in tables.items()}


def assert_same(
    left: dict[str, pd.DataFrame],
    right: dict[str, pd.DataFrame],
    tables=("user_segments", "segment_membership", "user_triggers"),
) -> None:
    for table in tables:
        pd.testing.assert_frame_equal(left[table], right[table], obj=table)


# --- hand-made feature rows -------------------------------------------------------------

PLAN = tracking_plan.load()
BASE_FEATURES = {
    "days_since_signup": 30,
    "days_since_last_active": 0,
    "active_days_7d": 2,
    "active_days_28d": 8,
    "events_7d": 10,
    "events_28d": 40,
    "sessions_7d": 2,
    "sessions_28d": 8,
    "avg_session_minutes_28d": 5.0,
    "feature_breadth_28d": 2,
    "feature_depth_28d": 4,
    "milestones_reached": 5,
    "onboarding_completion": 1.0,
    **dict.fromkeys(PLAN.milestone_columns, True),
    "days_to_first_value": 3,
    **dict.fromkeys(PLAN.counter_columns, 1),
    "support_tickets_28d": 0,
    "support_tickets_total": 0,
    "events_prev_7d": 10,
    "activity_trend": 0.0,
    "plan": "free",
    "is_paid": False,
    "mrr": 0.0,
    "revenue_to_date": 0.0,
    "industry": "software",
    "company_size": "11-50",
    "country": "US",
    "role": "analyst",
    "acquisition_channel": "referral",
    "is_active_28d": True,
    "is_churned": False,
}


def feature_tables(conn, rows: list[dict]) -> None:
    """rows: {user_id, day (0-based), **overrides, churn_band?}"""
    features, scores = [], []
    for row in rows:
        day = START + timedelta(days=row["day"])
        values = {**BASE_FEATURES, **{k: v for k, v in row.items() if k in FEATURE_COLUMNS}}
        features.append(
            {
                **values,
                "user_id": row["user_id"],
                "snapshot_date": day,
                "signup_date": day - timedelta(days=values["days_since_signup"]),
            }
        )
        scores.append(
            {c: None for c in SCORE_COLUMNS}
            | {
                "user_id": row["user_id"],
                "score_date": day,
                "churn_band": row.get("churn_band", "low"),
                "ltv_band": "low",
            }
        )
    write_tables(conn, pd.DataFrame(features), pd.DataFrame(scores))


def power(user: str, day: int, is_power: bool) -> dict:
    return {
        "user_id": user,
        "day": day,
        "active_days_7d": 6 if is_power else 1,
        "feature_breadth_28d": 4,
    }


def test_enter_leave_reenter_gives_two_stints_and_reruns_change_nothing(conn, config):
    pattern = [True, True, True, False, False, True, True, True]
    feature_tables(
        conn,
        [power("u1", d, p) for d, p in enumerate(pattern)]
        + [power("u2", d, True) for d in range(len(pattern))],
    )
    for day in days(len(pattern)):
        assign_segments(conn, config, [day])
    stints = conn.execute(
        "select user_id, entered_at, exited_at from main.segment_membership "
        "where segment = 'power_users' order by all"
    ).fetchall()
    assert stints == [
        ("u1", START, START + timedelta(days=3)),
        ("u1", START + timedelta(days=5), None),
        ("u2", START, None),
    ]
    before = snapshot(conn)
    assign_segments(conn, config, [START + timedelta(days=4)])  # re-run a past day
    assign_segments(conn, config, [START + timedelta(days=7)])  # re-run the latest day
    assert_same(before, snapshot(conn))
    # became_power_user fires on entry, once per stint, not on the data's first day
    fired = conn.execute(
        "select user_id, fired_at from main.user_triggers "
        "where \"trigger\" = 'became_power_user' order by all"
    ).fetchall()
    assert fired == [("u1", START + timedelta(days=5))]


def test_trigger_fires_once_per_occurrence(conn, config):
    bands = ["high", "low", "high", "high", "high", "low", "medium", "high", "high"]
    rows = [{"user_id": "a", "day": d, "churn_band": b} for d, b in enumerate(bands)]
    # b is stalled before its first project from day 1 on: fires after 5 days, once
    rows += [
        {
            "user_id": "b",
            "day": d,
            "reached_first_project": False,
            "reached_first_value": False,
            "days_since_signup": d,
        }
        for d in range(1, 9)
    ]
    feature_tables(conn, rows)
    dates = days(len(bands))
    report = assign_segments(conn, config, dates)
    fired = conn.execute(
        'select user_id, "trigger", fired_at, context from main.user_triggers '
        "where \"trigger\" in ('churn_band_rose_to_high', "
        "'stalled_before_first_project') order by all"
    ).fetchall()
    # day 0 is the first day of data: a band already high there is not an observed rise
    assert [(u, t, f) for u, t, f, _ in fired] == [
        ("a", "churn_band_rose_to_high", dates[2]),
        ("a", "churn_band_rose_to_high", dates[7]),
        ("b", "stalled_before_first_project", dates[5]),
    ]
    assert json.loads(fired[0][3]) == {"churn_band": "high"}
    assert json.loads(fired[2][3])["condition_since"] == dates[1].isoformat()
    assert report.triggers["firings"].sum() >= 3
    # daily runs give exactly the same firings
    conn.execute("delete from main.user_triggers")
    for day in dates:
        assign_segments(conn, config, [day])
    again = conn.execute(
        'select user_id, "trigger", fired_at, context from main.user_triggers '
        "where \"trigger\" in ('churn_band_rose_to_high', "
        "'stalled_before_first_project') order by all"
    ).fetchall()
    assert again == fired


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, pd.DataFrame]:
    return build_frames(users=400, days=21, start=START, seed=11)


def test_backfill_equals_daily_runs_in_any_order(tmp_path: Path, config, synthetic):
    features, scores = synthetic
    dates = days(14)
    results = {}
    for mode in ("daily", "backfill", "shuffled", "split"):
        with duckdb.connect(str(tmp_path / f"{mode}.duckdb")) as conn:
            write_tables(conn, features, scores)
            if mode == "daily":
                for day in dates:
                    assign_segments(conn, config, [day])
            elif mode == "backfill":
                assign_segments(conn, config, dates)
            elif mode == "shuffled":  # out of order, with a gap filled last
                order = dates[9:] + dates[:4] + dates[4:9][::-1]
                for day in order:
                    assign_segments(conn, config, [day])
            else:  # two backfills, then a re-run of a middle day
                assign_segments(conn, config, dates[8:])
                assign_segments(conn, config, dates[:8])
                assign_segments(conn, config, [dates[6]])
            results[mode] = snapshot(conn)
            incremental = results[mode]["segment_membership"]
            rebuild_membership(conn, None)  # full rebuild from user_segments
            full = conn.execute(
                "select * from main.segment_membership order by user_id, segment, entered_at"
            ).df()
            pd.testing.assert_frame_equal(incremental, full, obj=f"{mode} membership")
    assert len(results["daily"]["segment_membership"]) > 400
    assert results["daily"]["segment_membership"]["exited_at"].notna().any()
    for mode in ("backfill", "shuffled", "split"):
        # triggers compare with the previous day's segments, so only in-order runs match them
        tables = ("user_segments", "segment_membership") + (
            ("user_triggers",) if mode == "backfill" else ()
        )
        assert_same(results["daily"], results[mode], tables)


def test_every_default_segment_is_non_empty_and_groups_are_exclusive(conn, config, synthetic):
    features, scores = synthetic
    write_tables(conn, features, scores)
    dates = days(21)
    report = assign_segments(conn, config, dates)
    sizes = report.sizes.groupby("segment")["users"].sum()
    empty = [name for name in config.segment_names if sizes.get(name, 0) == 0]
    assert not empty, f"segments with no members: {empty}"
    fired = report.triggers.groupby("trigger")["firings"].sum()
    assert set(fired.index) == {t.name for t in config.triggers}

    rows = conn.execute("select * from main.user_segments").df()
    groups = {}
    for segment in config.segments:
        if segment.group:
            groups.setdefault(segment.group, set()).add(segment.name)
    priority = {s.name: (-s.priority, s.order) for s in config.segments}
    for row in rows.itertuples():
        segs = list(row.segments)
        assert segs == sorted(segs)
        for members in groups.values():
            assert len(members & set(segs)) <= 1
        assert row.primary_segment == (min(segs, key=priority.get) if segs else None)
        expected_flow = config.segment_flows.get(row.primary_segment, config.default_flow)
        assert row.onboarding_flow == expected_flow
    # every user with a known size is in exactly one of enterprise / smb
    known = rows[rows["segments"].map(lambda s: "enterprise" in s or "smb" in s)]
    assert len(known) == len(rows)


def test_next_block_is_first_unreached_milestone(conn, config, synthetic):
    features, scores = synthetic
    write_tables(conn, features, scores)
    day = START + timedelta(days=20)
    assign_segments(conn, config, [day])
    rows = conn.execute(
        "select s.*, f.* exclude (user_id) from main.user_segments s join "
        "main.fct_user_features f on f.user_id = s.user_id and "
        "f.snapshot_date = s.segment_date"
    ).df()
    checked = 0
    for row in rows.to_dict("records"):
        flow = config.flows[row["onboarding_flow"]]
        if flow.experiment and row["experiment_variant"] == "control":
            assert row["next_block"] is None  # holdout: no content
            continue
        blocks = flow.blocks
        if flow.experiment:
            blocks = next(
                v.blocks for v in flow.experiment.variants if v.name == row["experiment_variant"]
            )
        expected = next(
            (b for b in blocks if not row[f"reached_{config.blocks[b].milestone}"]), None
        )
        assert row["next_block"] == expected
        checked += 1
    assert checked > 100 and rows["next_block"].notna().any() and rows["next_block"].isna().any()


def test_segment_size_changes_warns_on_big_moves(conn, config):
    rows = [{"user_id": f"u{i}", "day": 0, "company_size": "1000+"} for i in range(10)]
    rows += [
        {"user_id": f"u{i}", "day": 1, "company_size": "1000+" if i < 4 else "11-50"}
        for i in range(10)
    ]
    feature_tables(conn, rows)
    report = assign_segments(conn, config, days(2))
    assert segment_size_changes(conn, START, 0.5) == []  # no previous day
    warnings = segment_size_changes(conn, START + timedelta(days=1), 0.5)
    assert len(warnings) == 2
    assert any("'enterprise' changed from 10 to 4 users (-60%)" in w for w in warnings)
    assert any("'smb' changed from 0 to 6 users (new)" in w for w in warnings)
    assert segment_size_changes(conn, START + timedelta(days=1), 0.7, min_previous_size=7) == []
    change = report.changes.set_index(["segment_date", "segment"]).loc[
        (START + timedelta(days=1), "enterprise")
    ]
    assert (change["users"], change["previous_users"], change["change"]) == (4, 10, -6)


def test_missing_scores_table_assigns_with_null_scores(conn, config, synthetic):
    features, _ = synthetic
    write_tables(conn, features, None)
    report = assign_segments(conn, config, [START + timedelta(days=5)])
    assert any("user_scores does not exist" in w for w in report.warnings)
    sizes = report.sizes.set_index("segment")["users"]
    assert sizes["high_ltv"] == 0 and sizes["smb"] > 0


def test_warehouse_without_a_rule_column_fails_before_writing(conn, config, synthetic):
    features, scores = synthetic
    write_tables(conn, features.drop(columns=["feature_breadth_28d"]), scores)
    from orchestration.segments.config import SegmentConfigError

    with pytest.raises(SegmentConfigError, match="`feature_breadth_28d` is missing"):
        assign_segments(conn, config, [START])
    assert conn.execute("select count(*) from main.user_segments").fetchone() == (0,)


def test_rerun_of_a_corrected_past_day_splits_the_stint(conn, config):
    feature_tables(conn, [power("u1", d, True) for d in range(6)])
    for day in days(6):
        assign_segments(conn, config, [day])
    query = (
        "select entered_at, exited_at from main.segment_membership "
        "where user_id = 'u1' and segment = 'power_users' order by entered_at"
    )
    assert conn.execute(query).fetchall() == [(START, None)]
    # late data corrects day 2: u1 was not a power user that day; only day 2 is re-run
    conn.execute(
        "update main.fct_user_features set active_days_7d = 1 where snapshot_date = $d",
        {"d": START + timedelta(days=2)},
    )
    assign_segments(conn, config, [START + timedelta(days=2)])
    assert conn.execute(query).fetchall() == [
        (START, START + timedelta(days=2)),
        (START + timedelta(days=3), None),
    ]
    incremental = snapshot(conn)["segment_membership"]
    rebuild_membership(conn, None)
    pd.testing.assert_frame_equal(incremental, snapshot(conn)["segment_membership"])


def test_segments_needing_a_missing_score_are_reported_not_evaluated(conn, config):
    """No LTV champion yet: ltv columns are null for everyone, so high_ltv is reported as not
    evaluated (not as an empty segment) while churn and behaviour segments are evaluated."""
    rows = [power(f"u{i}", 0, i % 2 == 0) for i in range(6)]
    feature_tables(conn, rows)
    conn.execute("update main.user_scores set ltv_band = null, churn_probability = 0.9")
    report = assign_segments(conn, config, [START])
    assert set(report.not_evaluated) == {"high_ltv"}
    assert "ltv_band" in report.not_evaluated["high_ltv"]
    assert any("'high_ltv' not evaluated" in w for w in report.warnings)
    sizes = report.sizes.set_index("segment")["users"]
    assert sizes["power_users"] == 3
    # once the scores exist the segment is evaluated again
    conn.execute("update main.user_scores set ltv_band = 'high'")
    assert assign_segments(conn, config, [START]).not_evaluated == {}


def test_segment_reasons_name_the_first_arm_that_matched(conn, config):
    feature_tables(
        conn,
        [
            {"user_id": "band", "day": 0, "churn_band": "high"},
            {"user_id": "trend", "day": 0, "activity_trend": -0.8},
            {"user_id": "both", "day": 0, "churn_band": "high", "activity_trend": -0.9},
            {"user_id": "stalled", "day": 0, "days_since_signup": 20, "reached_first_value": False},
            {"user_id": "fine", "day": 0},
        ],
    )
    assign_segments(conn, config, [START])
    reasons = dict(
        conn.execute(
            "select user_id, reason from main.segment_reasons where segment = 'churn_risks'"
        ).fetchall()
    )
    assert reasons == {
        "band": "churn_band == 'high'",
        "trend": "activity_trend <= -0.5",
        "both": "churn_band == 'high'",
        "stalled": "days_since_signup >= 14 and not reached_first_value",
    }
    one_arm = conn.execute(
        "select distinct reason from main.segment_reasons where segment = 'smb'"
    ).fetchall()
    assert one_arm == [("company_size in ['1-10', '11-50', '51-200']",)]
    members = conn.execute(
        "select count(*) from main.user_segments, unnest(segments) where segment_date = ?", [START]
    ).fetchone()[0]
    assert conn.execute("select count(*) from main.segment_reasons").fetchone()[0] == members


def test_undecided_people_are_counted_per_segment_and_day(conn, config: SegmentConfig) -> None:
    features, scores = build_frames(users=200, days=4, start=START, seed=5)
    last = START + timedelta(days=3)
    # ltv not scored for a third of the users on the last day; company size unknown for some
    unscored = scores["user_id"].isin(scores["user_id"].unique()[::3])
    scores.loc[unscored & (scores["score_date"] == last), "ltv_band"] = None
    features.loc[features["user_id"].str.endswith("7"), "company_size"] = None
    write_tables(conn, features, scores)
    report = assign_segments(conn, config, days(4))
    coverage = (
        conn.execute(
            "select segment, segment_date, undetermined, null_columns, population "
            "from main.segment_coverage"
        )
        .df()
        .set_index(["segment", "segment_date"])
    )
    by_hand = conn.execute(
        "select f.snapshot_date, count(*) filter (where s.ltv_band is null), "
        "count(*) filter (where f.company_size is null), count(*) "
        "from main.fct_user_features f left join main.user_scores s "
        "on s.user_id = f.user_id and s.score_date = f.snapshot_date group by 1"
    ).fetchall()
    for day, ltv_null, size_null, population in by_hand:
        day = pd.Timestamp(day)
        high_ltv = coverage.loc[("high_ltv", day)]
        assert (high_ltv["undetermined"], high_ltv["population"]) == (ltv_null, population)
        assert list(high_ltv["null_columns"]) == (["ltv_band"] if ltv_null else [])
        assert coverage.loc[("enterprise", day), "undetermined"] == size_null > 0
        assert coverage.loc[("industry_other", day), "undetermined"] == 0  # `is not None`
    assert any("'high_ltv' partly evaluated" in w and str(last) in w for w in report.warnings)
    assert any("'smb' partly evaluated" in w for w in report.warnings)
