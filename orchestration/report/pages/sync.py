"""Sync: people and events sent, failed and retried per sync run, failures by reason, and
what the circuit breaker held back (with its message, so a blocked run shows why)."""

from __future__ import annotations

import json

import altair as alt
import pandas as pd

from orchestration.report.charts import BAD, W, plot
from orchestration.report.inputs import Warehouse, nonempty
from orchestration.report.render import Page, table_block


def build(wh: Warehouse) -> Page:
    page = Page(
        "sync",
        "Sync",
        "People and events sent, failed and retried per sync run, failures by reason, and what the circuit breaker held back.",
    )
    if not wh.has("sync_runs"):
        page.missing.append("sync runs (no main.sync_runs)")
        return page
    r = wh.df(
        "select run_id, destination, as_of, status, started_at, people_considered, people_sent, people_succeeded, people_failed, "
        "events_sent, events_succeeded, events_failed, items_retried, items_given_up, people_changed, people_new, people_cleared, failures_by_reason, message "
        "from main.sync_runs order by started_at"
    )
    if not nonempty(r):
        page.missing.append("sync runs (none yet)")
        return page
    r["run"] = (  # unique per run: two syncs can start in the same second
        "as of "
        + r["as_of"].astype(str)
        + " · "
        + r["status"].astype(str)
        + " · "
        + r["run_id"].astype(str).str[-8:]
    )
    long = r.melt(
        id_vars=["run"],
        value_vars=[
            "people_succeeded",
            "people_failed",
            "events_succeeded",
            "events_failed",
            "items_retried",
        ],
        var_name="measure",
        value_name="items",
    )
    page.add(
        plot("People and events sent / failed / retried per run", long, "bar",
             table=r.drop(columns=["run", "failures_by_reason"]), width=max(W, 70 * len(r)),
             x=alt.X("run:N", sort=None, title="sync run (as of · status · id)"),
             y="items:Q", color="measure:N", xOffset="measure:N")
    )  # fmt: skip
    reasons = []
    for row in r.itertuples():
        raw = row.failures_by_reason
        data = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
        for reason, n in (data or {}).items():
            reasons.append({"run": row.run, "reason": reason, "items": int(n)})
    fr = pd.DataFrame(reasons)
    if nonempty(fr):
        page.add(
            plot("Failures by reason", fr, "bar", width=W - 120,
                 height=22 * fr["reason"].nunique(),
                 y=alt.Y("reason:N", title=None), x="sum(items):Q", color="run:N")
        )  # fmt: skip
    else:
        page.add(
            table_block(
                "Failures by reason",
                pd.DataFrame([{"reason": "none", "items": 0}]),
                "no item failed in any sync run",
            )
        )
    held = r[r["status"] == "breaker_tripped"]
    if nonempty(held):
        h = held[
            [
                "run",
                "people_considered",
                "people_changed",
                "people_new",
                "people_cleared",
                "message",
            ]
        ]
        page.add(
            plot("Held back by the circuit breaker", h, "bar", width=W - 120,
                 height=24 * len(h), mark_args={"color": BAD},
                 note="nothing was sent in these runs; the message says why and how to override "
                 "(segflow run --override-breaker)",
                 y=alt.Y("run:N", title=None),
                 x=alt.X("people_changed:Q", title="people changes held back"))
        )  # fmt: skip
    else:
        page.add(
            table_block(
                "Held back by the circuit breaker",
                r[["run", "status"]].tail(10),
                "the breaker has not tripped in these runs",
            )
        )
    return page
