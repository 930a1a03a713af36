"""Onboarding: the funnel of customers observed entering step 1 in the data (the pre-window
base apart), % per step beside drop-off, per segment as rates, per signup cohort, and the
median days to each milestone."""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd

from orchestration.report.charts import BAD, NEUTRAL, W, plot, segment_scale
from orchestration.report.inputs import Warehouse, nonempty
from orchestration.report.render import Page


def build(wh: Warehouse) -> Page:
    page = Page(
        "onboarding",
        "Onboarding",
        "Sequential funnel of the customers who signed up inside the data, per segment as "
        "rates and per signup cohort, drop-off per step and median days to each milestone.",
    )
    if wh.has("fct_onboarding_funnel"):
        f = wh.df(
            "select * from main.fct_onboarding_funnel "
            "order by dimension, dimension_value, step_number"
        )
        start = wh.data_start()
        observed = observed_funnel(f, start)
        page.add(_funnel_chart(observed, start), "funnel (no signup inside the data yet)")
        m = f[f["dimension"] == "all"].dropna(subset=["median_days_to_reach"])
        m = m[["step_number", "milestone", "median_days_to_reach"]]
        page.add(
            plot("Median time to each milestone (all customers)", m, "bar",
                 x=alt.X("milestone:N", sort=alt.SortField("step_number")),
                 y=alt.Y("median_days_to_reach:Q", title="median days from signup")),
            "median time to milestones",
        )  # fmt: skip
        _cohorts(page, f, start)
    else:
        page.missing.append("overall and cohort funnel (no fct_onboarding_funnel)")
    if wh.has("fct_onboarding_funnel_by_segment"):
        page.add(_segment_chart(wh), "funnel per segment (no segment funnel yet)")
    else:
        page.missing.append("funnel per segment (no fct_onboarding_funnel_by_segment)")
    return page


def observed_funnel(f: pd.DataFrame, start: date | None) -> pd.DataFrame:
    """Per step: customers of the weekly signup cohorts that start on or after the first day
    of data (their whole onboarding is observed), % of step 1 and drop-off since the previous
    step. Step 1's count is the customers observed entering step 1."""
    weeks = f[f["dimension"] == "signup_week"]
    if start is not None:
        weeks = weeks[pd.to_datetime(weeks["dimension_value"]).dt.date >= start]
    if not nonempty(weeks):
        return pd.DataFrame()
    steps = (
        weeks.groupby(["step_number", "milestone"], as_index=False)["users_reached"]
        .sum()
        .sort_values("step_number")
    )
    first = steps["users_reached"].iloc[0]
    previous = steps["users_reached"].shift(1).fillna(first)
    steps["pct_of_step_1"] = (steps["users_reached"] / first).round(4) if first else 0.0
    steps["drop_off_users"] = (previous - steps["users_reached"]).astype(int)
    steps["drop_off_pct"] = (steps["drop_off_users"] / previous.where(previous > 0)).round(4)
    return steps


def _funnel_chart(steps: pd.DataFrame, start: date | None):
    if not nonempty(steps):
        return None
    long = steps.melt(
        id_vars=["step_number", "milestone"],
        value_vars=["pct_of_step_1", "drop_off_pct"],
        var_name="measure",
        value_name="share",
    ).fillna({"share": 0.0})
    n = int(steps["users_reached"].iloc[0])
    return plot(
        f"Funnel of the {n:,} customers observed entering step 1: reached (% of step 1) and "
        "dropped off (% of the previous step), side by side",
        long,
        "bar",
        table=steps,
        note=f"customers whose signup week starts on or after the first day of data ({start}); "
        "the base that signed up earlier is left out (its early steps were never observed)",
        x=alt.X("milestone:N", sort=alt.SortField("step_number"), title=None),
        xOffset="measure:N",
        y=alt.Y("share:Q", axis=alt.Axis(format="%"), title=None),
        color=alt.Color(
            "measure:N",
            scale=alt.Scale(domain=["pct_of_step_1", "drop_off_pct"], range=[NEUTRAL, BAD]),
        ),
    )


def _cohorts(page: Page, f: pd.DataFrame, start: date | None) -> None:
    c = f[f["dimension"] == "signup_week"].rename(columns={"dimension_value": "signup_week"})
    if start is not None:
        c = c[pd.to_datetime(c["signup_week"]).dt.date >= start]
    if not nonempty(c):
        return
    firsts = c[c["step_number"] == c["step_number"].min()][["signup_week", "users_reached"]]
    c = c.merge(firsts.rename(columns={"users_reached": "cohort_users"}), on="signup_week")
    c = c[["signup_week", "cohort_users", "step_number", "milestone", "users_reached"]].assign(
        share_of_cohort=lambda x: (x["users_reached"] / x["cohort_users"]).round(4)
    )
    c["cohort"] = c["signup_week"].astype(str) + " (n=" + c["cohort_users"].astype(str) + ")"
    page.add(
        plot("Funnel per signup cohort (share of the week's signups reaching each step)", c,
             "rect", table=c.drop(columns=["cohort"]), width=W - 100,
             height=min(420, 14 * c["signup_week"].nunique()),
             x=alt.X("milestone:N", sort=alt.SortField("step_number")),
             y=alt.Y("cohort:O", title="signup week (cohort size)"),
             color=alt.Color("share_of_cohort:Q", scale=alt.Scale(scheme="greens", domain=[0, 1])))
    )  # fmt: skip


def segment_rates(f: pd.DataFrame) -> pd.DataFrame:
    """Per segment and step: share of the segment's members observed at step 1 who reached the
    step (sequential), so members who signed up before the data do not read as drop-off."""
    first = f[f["step_number"] == f["step_number"].min()][["segment", "users_reached"]]
    f = f.merge(first.rename(columns={"users_reached": "observed_at_step_1"}), on="segment")
    f = f[f["observed_at_step_1"] > 0]
    return f.assign(pct_of_step_1=(f["users_reached"] / f["observed_at_step_1"]).round(4))


def _segment_chart(wh: Warehouse):
    f = wh.df(
        "select segment, step_number, milestone, users_in_segment, users_reached "
        "from main.fct_onboarding_funnel_by_segment where segment_date = "
        "(select max(segment_date) from main.fct_onboarding_funnel_by_segment) "
        "order by segment, step_number"
    )
    f = segment_rates(f) if nonempty(f) else f
    if not nonempty(f):
        return None
    return plot(
        "Funnel per segment as rates (latest day, % of the members observed at step 1)",
        f,
        "line",
        note="members observed reaching step 1 (the others signed up before the data); "
        "sequential: a step counts only after the ones before it",
        height=H_SEGMENTS,
        mark_args={"point": True},
        x=alt.X("milestone:N", sort=alt.SortField("step_number"), title=None),
        y=alt.Y("pct_of_step_1:Q", axis=alt.Axis(format="%"), title="% of step 1"),
        color=alt.Color("segment:N", scale=segment_scale(f["segment"])),
    )


H_SEGMENTS = 260
