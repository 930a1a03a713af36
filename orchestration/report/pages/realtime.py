"""Real time: the stream consumer's lag, throughput and rule evaluations at each daily
hand-over (`main.realtime_runs`, written by the realtime_snapshot asset), and how often the
daily result disagreed with the intraday answers it replaced."""

from __future__ import annotations

import altair as alt
import pandas as pd

from orchestration.report.charts import plot
from orchestration.report.inputs import Warehouse, nonempty
from orchestration.report.render import Page, kpis, table_block

COUNTERS = ["events_applied", "events_quarantined", "rule_evaluations", "events_emitted"]


def build(wh: Warehouse) -> Page:
    page = Page(
        "realtime",
        "Real time",
        "The stream consumer at each daily hand-over: backlog (lag), events applied per second "
        "of processing, rule evaluations, and intraday answers the daily run corrected.",
    )
    if not wh.has("realtime_runs"):
        page.missing.append(
            "realtime hand-overs (no main.realtime_runs: the realtime_snapshot asset writes one "
            "row per daily run)"
        )
        return page
    runs = wh.df("select * from main.realtime_runs order by recorded_at")
    if not nonempty(runs):
        page.missing.append("realtime hand-overs (none yet)")
        return page
    label = (
        runs["snapshot_date"].astype(str) + " · " + runs["recorded_at"].dt.strftime("%m-%d %H:%M")
    )
    repeat = label.groupby(label).cumcount()
    runs["run"] = label.where(repeat == 0, label + " #" + (repeat + 1).astype(str))
    page.add(kpis(_headline(runs.iloc[-1])))
    page.add(
        plot("Stream lag at each hand-over (entries not yet acknowledged)", runs, "bar",
             note="lag grows when events arrive faster than the consumer applies them; the "
             "collector keeps accepting (the stream buffers)",
             x=alt.X("run:N", sort=None, title="hand-over (snapshot day · when)"),
             y=alt.Y("stream_lag:Q", title="entries behind"))
    )  # fmt: skip
    page.add(
        plot("Consumer throughput (events per second of batch processing)", runs, "line",
             mark_args={"point": True},
             x=alt.X("run:N", sort=None, title="hand-over (snapshot day · when)"),
             y=alt.Y("events_per_busy_second:Q", title="events / s"))
    )  # fmt: skip
    page.add(
        plot("Events and rule evaluations since the previous hand-over", _increments(runs),
             "bar", x=alt.X("run:N", sort=None, title="hand-over (snapshot day · when)"), y="count:Q",
             color="measure:N", xOffset="measure:N",
             note="running totals of the consumer's state, differenced per hand-over")
    )  # fmt: skip
    page.add(
        table_block(
            "Hand-overs",
            runs.drop(columns=["run"]).tail(30),
            "intraday_differing: users whose intraday answer the daily result changed",
        )
    )
    return page


def _headline(last: pd.Series) -> list[tuple[str, str, str]]:
    lag = last["stream_lag"]
    rate = last["events_per_busy_second"]
    # behind by more than a minute of the consumer's own work: it is not keeping up
    behind = not pd.isna(lag) and lag > 60 * (0 if pd.isna(rate) else rate)
    differing, compared = last["intraday_differing"], last["intraday_compared"]
    return [
        ("stream lag (last hand-over)", "n/a" if pd.isna(lag) else f"{int(lag):,}",
         "bad" if behind else ("" if pd.isna(lag) else "ok")),
        ("events applied (total)", _count(last["events_applied"]), ""),
        ("events / s while busy", "n/a" if pd.isna(rate) else f"{rate:,.0f}", ""),
        ("rule evaluations (total)", _count(last["rule_evaluations"]), ""),
        ("intraday answers corrected", f"{_count(differing)} of {_count(compared)}",
         "ok" if not pd.isna(differing) and differing == 0 else ""),
    ]  # fmt: skip


def _count(value: object) -> str:
    """A running total, or n/a before any consumer has run (the hand-over row has nulls)."""
    return "n/a" if pd.isna(value) else f"{int(value):,}"


def _increments(runs: pd.DataFrame) -> pd.DataFrame:
    """Per hand-over increase of each running total (a reset state counts from zero)."""
    deltas = runs[COUNTERS].astype("float").diff()
    deltas.iloc[0] = runs[COUNTERS].iloc[0]
    deltas = deltas.where(deltas >= 0, runs[COUNTERS])  # the state file was reset
    deltas["run"] = runs["run"]
    return deltas.melt(id_vars=["run"], var_name="measure", value_name="count")
