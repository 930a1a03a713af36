"""Retention of the cohorts observed from signup: a cohort that signed up before the first day
of data is left out (its early periods were never observed, so they are not 0%); cells are only
ended periods; each row shows its cohort size; cohorts with few ended periods are marked
immature. Revenue retention follows one stated, bounded definition."""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd

from orchestration.report.charts import W, plot
from orchestration.report.inputs import Warehouse, nonempty
from orchestration.report.render import Page

MATURE_PERIODS = 4  # a cohort with fewer ended periods is marked immature
NRR_BASE_PERIOD = 1  # revenue retention against month 1 (month 0 is mostly trials)
NRR_MIN_PAYING = 5  # cohorts with fewer paying users in the base month are left out
NRR_CAP = 3.0  # values above are drawn at the cap (the table keeps the real value)
NRR_DEFINITION = (
    f"net revenue retention = a monthly cohort's revenue in month p / its revenue in month "
    f"{NRR_BASE_PERIOD} (month 0 is mostly trials), for cohorts observed from signup with at "
    f"least {NRR_MIN_PAYING} paying users in month {NRR_BASE_PERIOD}; drawn up to {NRR_CAP:g}x"
)


def build(wh: Warehouse) -> Page:
    page = Page(
        "retention",
        "Retention",
        "Cohort retention (weekly and monthly cohorts observed from signup) and revenue retention.",
    )
    start = wh.data_start()
    if wh.has("fct_cohort_retention"):
        r = wh.df(
            "select cohort_grain, cohort_start, period_number, cohort_size, retained_users, "
            "retention_rate from main.fct_cohort_retention order by 1, 2, 3"
        )
        for grain in ("week", "month"):
            g = observed_cohorts(r[r["cohort_grain"].astype(str).str.startswith(grain)], start)
            page.add(
                _heatmap(g, grain, start),
                f"{grain}ly cohort retention (no cohort observed from signup yet)",
            )
    else:
        page.missing.append("cohort retention (no fct_cohort_retention)")
    if wh.has("fct_revenue_retention"):
        rv = revenue_retention(wh.df("select * from main.fct_revenue_retention"), start)
        page.add(
            plot("Net revenue retention by monthly cohort", rv, "line", table=rv,
                 note=NRR_DEFINITION, height=260, mark_args={"point": True},
                 x=alt.X("period_number:O", title="months since signup"),
                 y=alt.Y("nrr_drawn:Q", title=f"revenue vs month {NRR_BASE_PERIOD}",
                         scale=alt.Scale(domain=[0, NRR_CAP])),
                 color=alt.Color("cohort:N", legend=alt.Legend(columns=2))),
            "revenue retention (no observed monthly cohort with enough paying users yet)",
        )  # fmt: skip
    else:
        page.missing.append("revenue retention (no fct_revenue_retention)")
    return page


def observed_cohorts(g: pd.DataFrame, start: date | None) -> pd.DataFrame:
    """Cohorts that start on or after the first day of data, with their size and maturity in
    the row label. Periods that have not ended have no row (blank, not 0)."""
    if start is not None:
        g = g[pd.to_datetime(g["cohort_start"]).dt.date >= start]
    if not nonempty(g):
        return pd.DataFrame()
    ended = g.groupby("cohort_start")["period_number"].transform("max") + 1
    g = g.assign(immature=ended < MATURE_PERIODS)
    label = (
        pd.to_datetime(g["cohort_start"]).dt.strftime("%Y-%m-%d")
        + " (n="
        + g["cohort_size"].astype(str)
        + ")"
    )
    return g.assign(cohort=label.where(~g["immature"], label + " immature"))


def _heatmap(g: pd.DataFrame, grain: str, start: date | None):
    if not nonempty(g):
        return None
    return plot(
        f"{grain.title()}ly cohort retention (cohorts observed from signup)",
        g,
        "rect",
        table=g.drop(columns=["cohort"]),
        note=f"cohorts starting before the first day of data ({start}) are left out; blank = "
        f"period not ended yet; immature = fewer than {MATURE_PERIODS} ended {grain}s",
        width=min(W, 26 * g["period_number"].nunique() + 40),
        height=min(440, 16 * g["cohort"].nunique()),
        x=alt.X("period_number:O", title=f"{grain}s since signup"),
        y=alt.Y("cohort:O", title=f"{grain}ly cohort (size)"),
        color=alt.Color("retention_rate:Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
    )


def revenue_retention(rv: pd.DataFrame, start: date | None) -> pd.DataFrame:
    """NRR_DEFINITION applied to fct_revenue_retention's revenue per cohort and period."""
    rv = rv[rv["cohort_grain"] == "month"]
    if start is not None:
        rv = rv[pd.to_datetime(rv["cohort_start"]).dt.date >= start]
    base = rv[rv["period_number"] == NRR_BASE_PERIOD][["cohort_start", "revenue", "paying_users"]]
    base = base[(base["paying_users"] >= NRR_MIN_PAYING) & (base["revenue"] > 0)]
    rv = rv[rv["period_number"] >= NRR_BASE_PERIOD].merge(
        base.rename(columns={"revenue": "base_revenue", "paying_users": "base_paying_users"}),
        on="cohort_start",
    )
    if not nonempty(rv):
        return pd.DataFrame()
    rv = rv.assign(nrr=(rv["revenue"] / rv["base_revenue"]).round(4))
    rv["nrr_drawn"] = rv["nrr"].clip(upper=NRR_CAP)
    rv["cohort"] = pd.to_datetime(rv["cohort_start"]).dt.strftime("%Y-%m")
    return rv[["cohort", "cohort_start", "period_number", "cohort_size", "base_paying_users",
               "base_revenue", "revenue", "nrr", "nrr_drawn"]].sort_values(["cohort", "period_number"])  # fmt: skip
