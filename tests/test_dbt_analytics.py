"""The analytic dbt marts on real data: demo generator -> raw loader -> dbt (cohort retention,
revenue retention, onboarding funnel), then segments (assign_segments + a contract-shaped
user_scores table) -> dbt `tag:after_segments` (segment KPIs, funnel by segment).

The checks are invariants that hold for any correct implementation of the documented
definitions (rates in [0, 1], partitions that add up, no period reported beyond the data,
funnel monotonicity where the data is sequential), plus a few numbers recomputed independently
in pandas from the upstream tables. A second, hand-made data set pins the edge cases the demo
data never produces (a complete period nobody was active in, milestones reached out of order).
"""

from __future__ import annotations

import hashlib
import math
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dbt_fixtures import RawData, load_raw, run_dbt  # tests/ is on sys.path (rootdir conftest)

from contracts import tracking_plan
from demo.saas import generate
from orchestration.segments.assign import assign_segments
from orchestration.segments.config import load_config
from orchestration.segments.schema import SCORE_COLUMNS, warehouse_columns
from orchestration.sources.load import load_partitions

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

START = date(2025, 1, 6)  # a Monday: weekly cohorts start on the first day of data
DAYS = 56
USERS = 300
ANALYTIC_MARTS = (
    "fct_cohort_retention",
    "fct_revenue_retention",
    "fct_onboarding_funnel",
    "fct_user_features",
)
FUNNEL_DIMENSIONS = {
    "all",
    "signup_month",
    "industry",
    "company_size",
    "role",
    "acquisition_channel",
    "country",
}
CHURN_WINDOW_DAYS = 28  # vars.churn_window_days / conversion_window_days in dbt_project.yml


# The marts store rates and amounts as DOUBLE (test_analytic_marts_use_double_precision), so
# recomputed figures agree up to double rounding (sums taken in a different order).
REL_TOL = 1e-9


def _close(got: pd.Series, want: pd.Series) -> bool:
    diff = (got.astype(float) - want.astype(float)).abs()
    return bool((diff <= REL_TOL * want.astype(float).abs().clip(lower=1.0)).all())


def _df(conn: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return conn.execute(sql).fetchdf()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo data -> raw -> dbt build of the analytic marts and everything upstream."""
    root = tmp_path_factory.mktemp("dbt_analytics")
    # no pre-window base: the cohort tests rely on every user signing up inside the data
    generate(
        root / "landing",
        root / "truth",
        users=USERS,
        days=DAYS,
        seed=11,
        start=START,
        history_days=0,
    )
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
    select = " ".join(f"+{model}" for model in ANALYTIC_MARTS)
    run_dbt(["build", "--select", select], path, root / "dbt_target")
    return path


@pytest.fixture(scope="module")
def segmented_warehouse(warehouse: Path) -> Path:
    """Adds user_scores (contract schema, deterministic values), user_segments from the
    shipped segment rules, then builds the after_segments marts."""
    with duckdb.connect(str(warehouse)) as conn:
        _write_user_scores(conn)
        config = load_config(columns=warehouse_columns(conn))
        dates = [
            d
            for (d,) in conn.execute(
                "select distinct snapshot_date from main.fct_user_features order by 1"
            ).fetchall()
        ]
        assign_segments(conn, config, dates)
    run_dbt(
        ["build", "--select", "tag:after_segments"],
        warehouse,
        warehouse.parent / "dbt_target_segments",
    )
    return warehouse


def _write_user_scores(conn: duckdb.DuckDBPyConnection) -> None:
    """One score row per feature row, values from a hash of the key (not from a model: the
    marts only average them, so any values in range exercise the joins)."""
    feats = _df(
        conn, "select user_id, snapshot_date, revenue_to_date, is_paid from main.fct_user_features"
    )

    def unit(*key: object) -> float:
        digest = hashlib.sha256("|".join(map(str, key)).encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    churn = [unit(u, d, "churn") for u, d in zip(feats.user_id, feats.snapshot_date, strict=True)]
    scores = pd.DataFrame(
        {
            "user_id": feats.user_id,
            "score_date": feats.snapshot_date,
            "churn_probability": churn,
            "churn_band": ["high" if p > 0.66 else "medium" if p > 0.33 else "low" for p in churn],
            "ltv_pred": feats.revenue_to_date * 0.5
            + [
                100 * unit(u, d, "ltv")
                for u, d in zip(feats.user_id, feats.snapshot_date, strict=True)
            ],
            "ltv_band": "low",
            "conversion_probability": [
                None if paid else unit(u, "conv")
                for u, paid in zip(feats.user_id, feats.is_paid, strict=True)
            ],
            "churn_reasons": "",
            "ltv_reasons": "",
            "churn_model_version": "1",
            "ltv_model_version": "1",
            "conversion_model_version": "1",
        }
    )
    ddl = ", ".join(f"{name} {kind}" for name, kind in SCORE_COLUMNS.items())
    conn.execute(f"create or replace table main.user_scores ({ddl})")
    conn.register("_scores", scores)
    conn.execute("insert into main.user_scores by name select * from _scores")
    conn.unregister("_scores")


def _data_end(conn: duckdb.DuckDBPyConnection) -> date:
    return conn.execute("select max(activity_date) from main.int_user_activity_daily").fetchone()[0]


def _period_end(cohort_start: date | pd.Timestamp, grain: str, period: int) -> date:
    """Last day of calendar period `period` counted from `cohort_start` (a week / month start)."""
    cohort_start = pd.Timestamp(cohort_start).date()
    if grain == "week":
        return cohort_start + timedelta(days=7 * (period + 1) - 1)
    month = cohort_start.month - 1 + period + 1
    first_after = date(cohort_start.year + month // 12, month % 12 + 1, 1)
    return first_after - timedelta(days=1)


# ---------------------------------------------------------------- cohort retention


def test_cohort_retention_invariants(warehouse: Path):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        ret = _df(conn, "select * from main.fct_cohort_retention")
        signups = _df(
            conn,
            "select user_id, cast(min(signup_at) as date) as signup_date "
            "from raw.crm_contacts where user_id is not null group by 1",
        )
        data_end = _data_end(conn)
    assert set(ret.cohort_grain) == {"week", "month"}
    assert not ret.duplicated(["cohort_grain", "cohort_start", "period_number"]).any()
    assert ret.retention_rate.between(0, 1).all()
    assert (ret.retained_users <= ret.cohort_size).all()
    assert _close(ret.retained_users / ret.cohort_size, ret.retention_rate)
    # Cohorts partition the users (from raw CRM signups): each listed cohort has exactly its
    # users, and every cohort whose signup period is fully observed is listed.
    day = pd.to_datetime(signups.signup_date)
    starts = {
        "week": day - pd.to_timedelta(day.dt.weekday, unit="D"),
        "month": day - pd.to_timedelta(day.dt.day - 1, unit="D"),
    }
    for grain, rows in ret.groupby("cohort_grain"):
        sizes = rows.drop_duplicates("cohort_start").set_index("cohort_start").cohort_size
        expected = starts[grain].value_counts()
        listed = expected[expected.index.isin(sizes.index)]
        assert sizes.sort_index().to_dict() == listed.sort_index().to_dict(), grain
        observed = [c for c in expected.index if _period_end(c, grain, 0) <= data_end]
        assert set(observed) <= set(sizes.index), f"{grain}: observed cohorts missing"
    # Cohort size is a property of the cohort, not of the period.
    assert (ret.groupby(["cohort_grain", "cohort_start"]).cohort_size.nunique() == 1).all()
    # No row describes a period that ends after the last day with data.
    ends = [_period_end(r.cohort_start, r.cohort_grain, r.period_number) for r in ret.itertuples()]
    late = ret[[end > data_end for end in ends]]
    assert late.empty, f"periods not fully observed (data ends {data_end}):\n{late}"
    # Weekly cohorts over 8 weeks: the first cohort has 8 complete weeks (0..7).
    first_week = ret[(ret.cohort_grain == "week") & (ret.cohort_start == pd.Timestamp(START))]
    assert sorted(first_week.period_number) == list(range(DAYS // 7))


def test_cohort_retention_period_zero_and_recount(warehouse: Path):
    """Demo users all fire an event on their signup day, so the signup period retains the
    whole cohort; every other row is recounted in pandas from the daily activity."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        ret = _df(conn, "select * from main.fct_cohort_retention")
        signup_active = conn.execute("""
            select count(*) = count(a.user_id)
            from main.dim_users u
            left join main.int_user_activity_daily a
              on a.user_id = u.user_id and a.activity_date = u.signup_date""").fetchone()[0]
        activity = _df(
            conn,
            """
            select u.user_id, u.signup_week, u.signup_month, a.activity_date
            from main.dim_users u join main.int_user_activity_daily a using (user_id)""",
        )
    assert signup_active, "premise: every demo user is active on the signup day"
    zero = ret[ret.period_number == 0]
    assert not zero.empty and (zero.retained_users == zero.cohort_size).all()

    recount = {}
    for grain in ("week", "month"):
        start = pd.to_datetime(activity[f"signup_{grain}"])
        day = pd.to_datetime(activity.activity_date)
        if grain == "week":
            period = (day - start).dt.days // 7
        else:
            period = (day.dt.year - start.dt.year) * 12 + day.dt.month - start.dt.month
        frame = pd.DataFrame({"cohort_start": start, "period": period, "user_id": activity.user_id})
        counts = frame[frame.period >= 0].groupby(["cohort_start", "period"]).user_id.nunique()
        recount.update({(grain, k[0], k[1]): v for k, v in counts.items()})
    for r in ret.itertuples():
        expected = recount.get((r.cohort_grain, pd.Timestamp(r.cohort_start), r.period_number), 0)
        assert r.retained_users == expected, r


# ---------------------------------------------------------------- revenue retention


def test_revenue_retention_invariants(warehouse: Path):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rev = _df(conn, "select * from main.fct_revenue_retention")
        ret = _df(
            conn, "select cohort_grain, cohort_start, cohort_size from main.fct_cohort_retention"
        )
        invoices = _df(
            conn,
            """
            select u.signup_week, u.signup_month, i.paid_date, i.amount_usd
            from main.stg_billing__invoices i join main.dim_users u using (user_id)
            where i.is_revenue""",
        )
    assert not rev.empty and rev.revenue.sum() > 0, "the demo data has paid invoices"
    assert not rev.duplicated(["cohort_grain", "cohort_start", "period_number"]).any()
    assert (rev.revenue >= 0).all() and (rev.paying_users <= rev.cohort_size).all()
    sizes = (
        ret.drop_duplicates(["cohort_grain", "cohort_start"])
        .set_index(["cohort_grain", "cohort_start"])
        .cohort_size
    )
    for r in rev.itertuples():
        assert r.cohort_size == sizes[(r.cohort_grain, r.cohort_start)], r

    for _, rows in rev.sort_values("period_number").groupby(["cohort_grain", "cohort_start"]):
        cumulative = rows.revenue.cumsum() / rows.cohort_size
        assert _close(cumulative, rows.cumulative_revenue_per_user)
        paying = rows[rows.revenue > 0]
        if paying.empty:
            assert rows.net_revenue_retention.isna().all()
            continue
        base = paying.iloc[0]
        before = rows[rows.period_number < base.period_number]
        assert before.net_revenue_retention.isna().all()
        after = rows[rows.period_number >= base.period_number]
        assert _close(after.revenue / base.revenue, after.net_revenue_retention)

    # Revenue recomputed from the invoices for the reported (complete) periods.
    for grain in ("week", "month"):
        start = pd.to_datetime(invoices[f"signup_{grain}"])
        day = pd.to_datetime(invoices.paid_date)
        if grain == "week":
            period = (day - start).dt.days // 7
        else:
            period = (day.dt.year - start.dt.year) * 12 + day.dt.month - start.dt.month
        expected = (
            pd.DataFrame({"cohort_start": start, "period": period, "amount": invoices.amount_usd})
            .groupby(["cohort_start", "period"])
            .amount.sum()
        )
        for r in rev[rev.cohort_grain == grain].itertuples():
            want = expected.get((pd.Timestamp(r.cohort_start), r.period_number), 0.0)
            assert math.isclose(r.revenue, want, rel_tol=REL_TOL, abs_tol=REL_TOL), (r, want)


# ---------------------------------------------------------------- onboarding funnel


def _sequential_premise(conn: duckdb.DuckDBPyConnection, milestones: list[str]) -> bool:
    """True when no user reached a milestone without every earlier one (the demo generator's
    funnel is strictly sequential; real products need not be)."""
    firsts = ", ".join(
        f"max(case when first_{m} then 1 else 0 end) as r{i}" for i, m in enumerate(milestones)
    )
    gaps = " or ".join(f"(r{i} = 1 and r{i - 1} = 0)" for i in range(1, len(milestones)))
    sql = (
        f"select count(*) from (select user_id, {firsts} from main.int_user_activity_daily "
        f"group by user_id) where {gaps}"
    )
    return conn.execute(sql).fetchone()[0] == 0


def test_onboarding_funnel_invariants(warehouse: Path):
    milestones = [name for name, _ in tracking_plan.load().milestones]
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        funnel = _df(conn, "select * from main.fct_onboarding_funnel")
        users = conn.execute("select count(*) from main.dim_users").fetchone()[0]
        sequential = _sequential_premise(conn, milestones)
        firsts = _df(
            conn,
            "select u.user_id, u.signup_date, "
            + ", ".join(
                f"min(case when a.first_{m} then a.activity_date end) as {m}" for m in milestones
            )
            + " from main.dim_users u left join main.int_user_activity_daily a using (user_id)"
            " group by 1, 2",
        )
    assert sequential, "premise: the demo funnel is strictly sequential"
    assert set(funnel.dimension) >= FUNNEL_DIMENSIONS
    assert not funnel.duplicated(["dimension", "dimension_value", "milestone"]).any()
    for (dim, value), rows in funnel.groupby(["dimension", "dimension_value"]):
        rows = rows.sort_values("step_number")
        assert list(rows.milestone) == milestones, (dim, value)
        assert list(rows.step_number) == list(range(1, len(milestones) + 1))
        assert rows.users_in_group.nunique() == 1
        assert (rows.users_reached <= rows.users_in_group).all()
        assert rows.users_reached.is_monotonic_decreasing, (dim, value, list(rows.users_reached))
        conv = rows.conversion_from_previous.dropna()
        assert conv.between(0, 1).all(), (dim, value, list(conv))
        previous = [rows.users_in_group.iloc[0], *rows.users_reached.iloc[:-1]]
        assert list(rows.drop_off_users) == [
            p - r for p, r in zip(previous, rows.users_reached, strict=True)
        ]
        med = rows.median_days_to_reach.dropna()
        assert ((med >= 0) & (med <= DAYS)).all()
        assert rows[rows.users_reached == 0].median_days_to_reach.isna().all()
    # Each dimension partitions the users.
    first_step = funnel[funnel.step_number == 1]
    for dim, rows in first_step.groupby("dimension"):
        assert rows.users_in_group.sum() == users, dim
    # The whole population, recounted from the first day of each milestone.
    overall = funnel[funnel.dimension == "all"].set_index("milestone")
    for m in milestones:
        days = (pd.to_datetime(firsts[m]) - pd.to_datetime(firsts.signup_date)).dt.days.dropna()
        assert overall.users_reached[m] == len(days), m
        assert math.isclose(overall.median_days_to_reach[m], days.median(), abs_tol=1e-6), m


def test_analytic_marts_use_double_precision(warehouse: Path):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        types = _df(
            conn,
            f"""
            select table_name, column_name, data_type from information_schema.columns
            where table_schema = 'main' and table_name in {tuple(ANALYTIC_MARTS)}""",
        )
    single = types[types.data_type.isin(["FLOAT", "REAL"])]
    assert single.empty, f"32-bit float columns:\n{single.to_string(index=False)}"


# ---------------------------------------------------------------- edge cases, hand-made data


@pytest.fixture(scope="module")
def edge_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three users over four weeks from Monday 2025-03-03 (tracking-plan event names):
    - u_steady: signs up in week 1 and is active every week (keeps the data running to day 28);
    - u_gone: the only signup of week 2, active on the signup day only, so week-2 cohort's
      periods 1 and 2 are complete with nobody retained;
    - u_skip and u_gone reach the third milestone without the second, u_steady the second
      only: 1 user at step 2, 2 at step 3."""
    plan = tracking_plan.load()
    step = {name: events[0] for name, events in plan.milestones}
    names = [name for name, _ in plan.milestones]
    start = date(2025, 3, 3)
    data = RawData(start, 28)
    n = 0

    def event(user: str, name: str, day: int) -> None:
        nonlocal n
        n += 1
        ts = datetime.combine(start + timedelta(days=day), datetime.min.time()) + timedelta(
            hours=10
        )
        data.tables["events"].append(
            {
                "message_id": f"edge-{n}",
                "type": "track",
                "event": name,
                "user_id": user,
                "anonymous_id": None,
                "timestamp": ts,
                "received_at": ts + timedelta(minutes=1),
                "properties": "{}",
                "context": "{}",
                "_partition_date": ts.date(),
            }
        )

    for user, signup_day in (("u_steady", 0), ("u_gone", 7), ("u_skip", 1)):
        at = datetime.combine(start + timedelta(days=signup_day), datetime.min.time()) + timedelta(
            hours=9
        )
        data.tables["crm_contacts"].append(
            {
                "user_id": user,
                "email": f"{user}@example.com",
                "signup_at": at,
                "company": "c",
                "industry": "software",
                "company_size": "1-10",
                "country": "US",
                "role": "analyst",
                "plan": "free",
                "acquisition_channel": "organic",
                "updated_at": at,
                "_partition_date": at.date(),
            }
        )
        event(user, step[names[0]], signup_day)
    for day in (*range(2, 28, 3), 27):
        event("u_steady", "Signed In", day)
    event("u_steady", step[names[1]], 3)
    # Two users reach the third milestone without the second (one on u_gone's signup day).
    event("u_skip", step[names[2]], 2)
    event("u_gone", step[names[2]], 7)
    path = tmp_path_factory.mktemp("dbt_analytics_edge") / "warehouse.duckdb"
    load_raw(path, data)
    select = " ".join(f"+{model}" for model in ANALYTIC_MARTS)
    run_dbt(["run", "--select", select], path, path.parent / "dbt_target")
    return path


def test_cohort_retention_reports_periods_nobody_returned(edge_warehouse: Path):
    with duckdb.connect(str(edge_warehouse), read_only=True) as conn:
        rows = _df(
            conn,
            "select period_number, cohort_size, retained_users "
            "from main.fct_cohort_retention where cohort_grain = 'week' "
            "and cohort_start = date '2025-03-10' order by period_number",
        )
    assert list(rows.period_number) == [0, 1, 2]
    assert list(rows.retained_users) == [1, 0, 0]


def test_revenue_retention_reports_periods_without_revenue(edge_warehouse: Path):
    """Nobody pays in the edge data: every completed period still has a row, with revenue 0
    and no net revenue retention (there is no base period)."""
    with duckdb.connect(str(edge_warehouse), read_only=True) as conn:
        rows = _df(
            conn,
            "select period_number, cohort_size, revenue, paying_users, "
            "net_revenue_retention from main.fct_revenue_retention "
            "where cohort_grain = 'week' and cohort_start = date '2025-03-10' "
            "order by period_number",
        )
        weeks = _df(
            conn,
            "select cohort_start, count(*) as periods "
            "from main.fct_revenue_retention where cohort_grain = 'week' "
            "group by 1 order by 1",
        )
    assert list(rows.period_number) == [0, 1, 2]
    assert (rows.cohort_size == 1).all() and (rows.revenue == 0).all()
    assert (rows.paying_users == 0).all() and rows.net_revenue_retention.isna().all()
    # Data runs Mon 2025-03-03 .. Sun 2025-03-30: the first weekly cohort has weeks 0..3.
    assert list(weeks.periods) == [4, 3]


def test_onboarding_funnel_conversion_bounded_when_steps_are_skipped(edge_warehouse: Path):
    with duckdb.connect(str(edge_warehouse), read_only=True) as conn:
        funnel = _df(
            conn,
            "select * from main.fct_onboarding_funnel where dimension = 'all' order by step_number",
        )
    assert funnel.conversion_from_previous.dropna().between(0, 1).all(), funnel
    assert (funnel.drop_off_users >= 0).all(), funnel
    assert funnel.users_reached.is_monotonic_decreasing, funnel
    # The fixture: all three reach step 1, u_steady step 2, u_skip and u_gone step 3 without
    # step 2; the any-order count keeps the skippers, the sequential count does not.
    assert list(funnel.users_reached[:3]) == [3, 1, 0], funnel
    assert list(funnel.users_reached_any_order[:3]) == [3, 1, 2], funnel
    assert funnel.median_days_to_reach.iloc[2:].isna().all(), funnel


# ---------------------------------------------------------------- segment marts


def _segment_counts(conn: duckdb.DuckDBPyConnection) -> pd.Series:
    return (
        _df(
            conn,
            """
        select segment_date, segment, count(*) as users
        from (select segment_date, unnest(segments) as segment from main.user_segments)
        group by 1, 2""",
        )
        .set_index(["segment_date", "segment"])
        .users
    )


def test_segment_kpis(segmented_warehouse: Path):
    with duckdb.connect(str(segmented_warehouse), read_only=True) as conn:
        kpis = _df(conn, "select * from main.fct_segment_kpis")
        counts = _segment_counts(conn)
        members = _df(
            conn,
            """
            select t.segment_date, t.segment, s.ltv_pred, f.onboarding_completion
            from (select user_id, segment_date, unnest(segments) as segment
                  from main.user_segments) t
            left join main.user_scores s on s.user_id = t.user_id and s.score_date = t.segment_date
            left join main.fct_user_features f
              on f.user_id = t.user_id and f.snapshot_date = t.segment_date""",
        )
        data_end = _data_end(conn)
    assert not kpis.empty and len(counts) > 0
    got = kpis.set_index(["segment_date", "segment"]).users
    assert got.sort_index().to_dict() == counts.sort_index().to_dict()
    expected = members.groupby(["segment_date", "segment"])[
        ["ltv_pred", "onboarding_completion"]
    ].mean()
    joined = kpis.set_index(["segment_date", "segment"]).join(expected, rsuffix="_expected")
    assert _close(joined.avg_ltv_pred, joined.ltv_pred)
    assert _close(joined.onboarding_completion, joined.onboarding_completion_expected)
    for column in ("conversion_to_premium", "churn_rate"):
        assert kpis[column].dropna().between(0, 1).all(), column
    horizon = pd.Timestamp(data_end - timedelta(days=CHURN_WINDOW_DAYS))
    unobservable = kpis[pd.to_datetime(kpis.segment_date) > horizon]
    assert not unobservable.empty
    assert unobservable.conversion_to_premium.isna().all()
    observable = kpis[pd.to_datetime(kpis.segment_date) <= horizon]
    assert observable.conversion_to_premium.notna().any()
    assert (observable.avg_session_minutes.dropna() >= 0).all()


def test_onboarding_funnel_by_segment(segmented_warehouse: Path):
    milestones = [name for name, _ in tracking_plan.load().milestones]
    with duckdb.connect(str(segmented_warehouse), read_only=True) as conn:
        funnel = _df(conn, "select * from main.fct_onboarding_funnel_by_segment")
        counts = _segment_counts(conn)
        sequential = _sequential_premise(conn, milestones)
    assert sequential
    assert not funnel.empty
    for (day, segment), rows in funnel.groupby(["segment_date", "segment"]):
        rows = rows.sort_values("step_number")
        assert list(rows.milestone) == milestones
        assert (rows.users_in_segment == counts[(day, segment)]).all()
        assert (rows.users_reached <= rows.users_in_segment).all()
        assert rows.users_reached.is_monotonic_decreasing, (day, segment)
        assert rows.conversion_from_previous.dropna().between(0, 1).all()


def _outcome_oracle(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per segment_date x segment, the realised churn and conversion recomputed in pandas from
    the daily activity and the CRM plan history. Churn is the model's label (default
    inactivity): no activity in the next horizon, for every member ever active."""
    members = _df(
        conn,
        """
        select t.user_id, t.segment_date, t.segment, f.active_days_total, f.is_paid
        from (select user_id, segment_date, unnest(segments) as segment
              from main.user_segments) t
        join main.fct_user_features f
          on f.user_id = t.user_id and f.snapshot_date = t.segment_date""",
    )
    activity = _df(
        conn,
        "select user_id, activity_date, cancel_events, upgrade_events "
        "from main.int_user_activity_daily",
    )
    paid_plans = tuple(tracking_plan.load().paid_plans)
    paid_from = _df(
        conn,
        f"""select user_id, valid_from_date from main.stg_crm__contact_snapshots
                             where plan in {paid_plans!r}""",
    )
    data_end = pd.Timestamp(_data_end(conn))
    window = pd.Timedelta(days=CHURN_WINDOW_DAYS)
    active_days = activity.groupby("user_id").activity_date.apply(list).to_dict()
    upgrade_days = (
        activity[activity.upgrade_events > 0].groupby("user_id").activity_date.apply(list).to_dict()
    )
    paid_days = paid_from.groupby("user_id").valid_from_date.apply(list).to_dict()

    def any_within(days: dict, user: str, day: pd.Timestamp) -> bool:
        return any(day < pd.Timestamp(d) <= day + window for d in days.get(user, ()))

    churned, converted = [], []
    for row in members.itertuples():
        day = pd.Timestamp(row.segment_date)
        observable = day + window <= data_end
        churned.append(
            not any_within(active_days, row.user_id, day)
            if observable and row.active_days_total > 0
            else None
        )
        converted.append(
            (any_within(paid_days, row.user_id, day) or any_within(upgrade_days, row.user_id, day))
            if observable and not row.is_paid
            else None
        )
    members["churned"] = pd.array(churned, dtype="boolean")
    members["converted"] = pd.array(converted, dtype="boolean")
    grouped = members.groupby(["segment_date", "segment"])
    return pd.DataFrame(
        {
            "churn_eligible": grouped.churned.count(),
            "churn_rate": grouped.churned.mean(),
            "conversion_eligible": grouped.converted.count(),
            "conversion_rate": grouped.converted.mean(),
        }
    )


def test_segment_kpis_realised_outcomes(segmented_warehouse: Path):
    with duckdb.connect(str(segmented_warehouse), read_only=True) as conn:
        kpis = _df(conn, "select * from main.fct_segment_kpis").set_index(
            ["segment_date", "segment"]
        )
        oracle = _outcome_oracle(conn)
    joined = kpis.join(oracle, how="inner", rsuffix="_oracle")
    assert len(joined) == len(kpis)
    assert (joined.conversion_eligible > 0).any() and (joined.churn_eligible > 0).any()
    assert (joined.conversion_observed_users == joined.conversion_eligible).all()
    has_conv = joined[joined.conversion_eligible > 0]
    assert _close(has_conv.conversion_to_premium, has_conv.conversion_rate.astype(float))
    assert joined[joined.conversion_eligible == 0].conversion_to_premium.isna().all()
    observed = joined[joined.churn_eligible > 0]
    assert (observed.churn_rate_source == "observed").all()
    assert _close(observed.churn_rate, observed.churn_rate_oracle.astype(float))
