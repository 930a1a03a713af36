"""Segments: size per segment over time (a grey band where the rule could not decide some
people) and who entered and left (small multiples, one colour per segment), overlap on the
latest day and the KPIs per segment."""

from __future__ import annotations

import altair as alt
import pandas as pd

from orchestration.report.charts import BAD, GOOD, UNDECIDED, plot, segment_scale
from orchestration.report.inputs import Warehouse, as_days, nonempty
from orchestration.report.render import Page, table_block

FIRST_LOAD = "first load"
KPI_COLUMNS = [
    "avg_session_minutes",
    "conversion_to_premium",
    "churn_rate",
    "onboarding_completion",
]


def build(wh: Warehouse) -> Page:
    page = Page(
        "segments",
        "Segments",
        "Segment sizes over time, who entered and left each day, overlap between segments and "
        "the KPIs growth compares. Each segment keeps one colour on every chart.",
    )
    if wh.has("user_segments"):
        _sizes(page, wh)
    else:
        page.missing.append("segment sizes and overlap (no main.user_segments)")
    if wh.has("segment_membership", "user_segments"):
        page.add(movement_chart(movements(wh)), "segment movements")
    else:
        page.missing.append("entered/exited per day (no main.segment_membership)")
    if wh.has("segment_reasons"):
        page.add(reasons_chart(wh), "why members are in each segment (no reasons yet)")
    _kpis(page, wh)
    return page


def reasons_chart(wh: Warehouse):
    """Per segment with more than one rule arm: members by the arm that put them there."""
    reasons = wh.df(
        "select segment, reason, count(*) as users from main.segment_reasons "
        f"where segment_date = {wh.latest('segment_reasons', 'segment_date')} "
        "group by segment, reason qualify count(*) over (partition by segment) > 1 "
        "order by segment, users desc"
    )
    if reasons.empty:
        return None
    chart = plot(
        "Why members are in each segment (latest day, the rule arm that matched first)",
        reasons,
        "bar",
        note="segments whose rule has one arm are left out (their rule is the reason)",
        width=300,
        height=22 * int(reasons.groupby("segment").size().max()),
        facet="segment:N",
        columns=1,
        y=alt.Y("reason:N", title=None, sort="-x"),
        x=alt.X("users:Q"),
        color=alt.Color("segment:N", scale=segment_scale(reasons["segment"]), legend=None),
    )
    chart.chart = chart.chart.resolve_scale(y="independent")
    return chart


def sizes(wh: Warehouse) -> pd.DataFrame:
    """Members per segment and day, with the people its rule could not decide (a column it
    reads was null; see segments/coverage.py): every configured segment has a row on every
    day, members or not, so an undecided segment is not silently left out."""
    members = (
        "select segment_date as day, s.segment, count(*) as users from main.user_segments, "
        "unnest(segments) as s(segment) group by all"
    )
    if not wh.has("segment_coverage"):
        return wh.df(
            f"select *, 0::BIGINT as undetermined, null::BIGINT as population, "
            f"[]::VARCHAR[] as null_columns from ({members}) order by day, segment"
        )
    return wh.df(
        f"with m as ({members}), c as (select * from main.segment_coverage "
        "where segment_date in (select distinct segment_date from main.user_segments)) "
        "select coalesce(c.segment_date, m.day) as day, coalesce(c.segment, m.segment) as segment, "
        "coalesce(m.users, 0) as users, coalesce(c.undetermined, 0) as undetermined, "
        "c.population, coalesce(c.null_columns, []::VARCHAR[]) as null_columns "
        "from m full join c on c.segment_date = m.day and c.segment = m.segment order by 1, 2"
    )


def partly_evaluated(sizes_frame: pd.DataFrame) -> pd.DataFrame:
    """Per segment with undecided people on some day: the days affected and its latest such
    day's members, undecided count and the null columns."""
    undecided = sizes_frame[sizes_frame["undetermined"] > 0]
    rows = []
    for segment, g in undecided.groupby("segment", sort=True):
        last = g.iloc[-1]
        rows.append({
            "segment": segment, "days_affected": len(g),
            "latest_day": pd.Timestamp(last["day"]).date(),
            "members": int(last["users"]), "undecided": int(last["undetermined"]),
            "population": last["population"], "null_columns": ", ".join(last["null_columns"]),
        })  # fmt: skip
    return pd.DataFrame(
        rows,
        columns=["segment", "days_affected", "latest_day", "members", "undecided", "population",
                 "null_columns"],
    )  # fmt: skip


def size_chart(sizes_frame: pd.DataFrame):
    """Small multiples of members per day; where the rule could not decide some people, a
    grey band reaches up to members + undecided (the size lies somewhere in it)."""
    data = as_days(sizes_frame.drop(columns=["null_columns"]), "day")
    data["upper"] = data["users"] + data["undetermined"]
    band = (
        alt.Chart(data)
        .mark_area(color=UNDECIDED, opacity=0.35)
        .encode(x="day:T", y="users:Q", y2="upper:Q")
    )
    partly = partly_evaluated(sizes_frame)
    note = ""
    if len(partly):
        note = "partly evaluated (grey band: people the rule could not decide): " + "; ".join(
            f"{r.segment} {r.undecided:,} undecided on {r.latest_day} ({r.null_columns} null)"
            for r in partly.itertuples()
        )
    return plot("Segment size over time (one panel per segment)", data, "line",
                table=sizes_frame, note=note, width=200, height=110, facet="segment:N",
                layers=(band,), x=alt.X("day:T", title=None),
                y=alt.Y("users:Q", title="members"),
                color=alt.Color("segment:N", scale=segment_scale(data["segment"]), legend=None))  # fmt: skip


def _sizes(page: Page, wh: Warehouse) -> None:
    frame = sizes(wh)
    page.add(size_chart(frame), "segment sizes (user_segments is empty)")
    partly = partly_evaluated(frame)
    if len(partly):
        page.add(table_block("Partly evaluated segments (members are a lower bound)", partly))
    latest = wh.df(
        "with l as (select * from main.user_segments "
        f"where segment_date = {wh.latest('user_segments', 'segment_date')}), "
        "m as (select user_id, s.segment from l, unnest(segments) as s(segment)) "
        "select a.segment as segment_a, b.segment as segment_b, count(*) as users "
        "from m a join m b using (user_id) group by all order by 1, 2"
    )
    if nonempty(latest):
        text = (
            alt.Chart(latest)
            .mark_text(fontSize=9)
            .encode(x="segment_b:N", y="segment_a:N", text="users:Q", color=alt.value("black"))
        )
        page.add(
            plot("Overlap between segments (latest day, users in both)", latest, "rect",
                 width=24 * latest["segment_b"].nunique() + 40,
                 height=22 * latest["segment_a"].nunique(), layers=(text,),
                 x=alt.X("segment_b:N", title=None), y=alt.Y("segment_a:N", title=None),
                 color=alt.Color("users:Q", scale=alt.Scale(scheme="blues")))
        )  # fmt: skip


def movements(wh: Warehouse) -> pd.DataFrame:
    """Entered (+) and exited (-) per segment and day. Memberships that began on the first day
    segments were assigned are the first load (everyone already in), not movement."""
    return wh.df(
        "with first_day as (select min(segment_date) as d from main.user_segments) "
        "select entered_at as day, segment, "
        f"case when entered_at = (select d from first_day) then '{FIRST_LOAD}' "
        "else 'entered' end as movement, count(*) as users "
        "from main.segment_membership group by all "
        "union all select exited_at, segment, 'exited', -count(*) "
        "from main.segment_membership where exited_at is not null group by all "
        "order by day, segment, movement"
    )


def movement_chart(moves: pd.DataFrame):
    """Small multiples of entered/exited per segment; the first load is a count apart (its
    panel bar would flatten every later day), so the daily bars are movement only."""
    daily = moves[moves["movement"] != FIRST_LOAD]
    first = moves[moves["movement"] == FIRST_LOAD]
    note = (
        "first load (members already there when segments were first assigned, not movement): "
        + ", ".join(f"{r.segment} {int(r.users):,}" for r in first.itertuples())
        if nonempty(first)
        else ""
    )
    return plot(
        "Entered / exited per day, per segment (exits negative, first load left out)",
        as_days(daily, "day"),
        "bar",
        table=moves,
        note=note,
        width=200,
        height=110,
        facet="segment:N",
        x=alt.X("day:T", title=None),
        y=alt.Y("sum(users):Q", title="users"),
        color=alt.Color(
            "movement:N", scale=alt.Scale(domain=["entered", "exited"], range=[GOOD, BAD])
        ),
    )


def _kpis(page: Page, wh: Warehouse) -> None:
    if not wh.has("fct_segment_kpis"):
        page.missing.append("segment KPIs (no main.fct_segment_kpis)")
        return
    k = wh.df(
        "select segment, users, avg_session_minutes, conversion_to_premium, churn_rate, "
        "churn_rate_source, avg_ltv_pred, onboarding_completion from main.fct_segment_kpis "
        f"where segment_date = {wh.latest('fct_segment_kpis', 'segment_date')} "
        "order by users desc"
    )
    if not nonempty(k):
        page.missing.append("segment KPIs (fct_segment_kpis is empty)")
        return
    long = k.melt(id_vars=["segment"], value_vars=KPI_COLUMNS, var_name="kpi").dropna()
    chart = plot(
        "KPIs per segment side by side (latest day)",
        long,
        "bar",
        table=k,
        note="churn_rate is observed where the window allows, else predicted (see churn_rate_source)",
        width=150,
        height=20 * k["segment"].nunique(),
        facet="kpi:N",
        columns=len(KPI_COLUMNS),
        y=alt.Y("segment:N", title=None),
        x=alt.X("value:Q", title=None),
        color=alt.Color("segment:N", scale=segment_scale(k["segment"]), legend=None),
    )
    if chart is not None:
        chart.chart = chart.chart.resolve_scale(x="independent")
    page.add(chart)
