"""Overview: recent runs, freshness per table, rows per day, quarantine and check results (a
failed check shows its own message)."""

from __future__ import annotations

from datetime import datetime

import altair as alt
import pandas as pd

from orchestration.report.charts import W, plot, status_scale, vline
from orchestration.report.inputs import RAW_TABLES, ReportInputs, Warehouse, as_days, nonempty
from orchestration.report.render import Page, kpis, table_block

ACTIVE = ["STARTED", "STARTING", "QUEUED", "NOT_STARTED"]


def build(wh: Warehouse, inputs: ReportInputs, now: datetime) -> Page:
    page = Page(
        "overview",
        "Overview",
        "Recent runs, how fresh each table is, rows loaded per day, quarantined rows and data checks.",
    )
    runs = pd.DataFrame([r.__dict__ for r in inputs.runs])
    fresh = _freshness(wh, inputs, now)
    items = _headline(wh, runs)
    page.add(kpis(items) if items else None)
    _runs(page, runs, now)
    _fresh(page, fresh, inputs.freshness_max_age_hours)
    _raw_rows(page, wh)
    _checks(page, inputs.checks)
    return page


def _headline(wh: Warehouse, runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    items = []
    if nonempty(runs):
        done = runs[~runs["status"].isin(ACTIVE)]
        if nonempty(done):  # the run building this report is still going: skip it
            last = done.iloc[0]
            good = "ok" if last["status"] == "SUCCESS" else "bad"
            items.append(("last finished run: " + str(last["job"]), str(last["status"]), good))
        items.append(("failed runs (shown)", str(int((runs["status"] == "FAILURE").sum())), ""))
    if wh.has(*(f"raw.{t}" for t in RAW_TABLES)):
        newest = wh.df(
            "select max(_partition_date) as d from ("
            + " union all ".join(f"select _partition_date from raw.{t}" for t in RAW_TABLES)
            + ")"
        )["d"][0]
        items.append(("newest partition", "" if pd.isna(newest) else f"{newest:%Y-%m-%d}", ""))
    if wh.has("raw.quarantine"):
        q = int(wh.df("select count(*) as n from raw.quarantine where replayed_at is null")["n"][0])
        items.append(("quarantined rows", f"{q:,}", "bad" if q else "ok"))
    return items


def _freshness(wh: Warehouse, inputs: ReportInputs, now: datetime) -> pd.DataFrame:
    rows = [
        {"table": k, "last_update_utc": v, "age_hours": round((now - v).total_seconds() / 3600, 1)}
        for k, v in sorted(inputs.freshness.items())
    ]
    if rows or not wh.has(*(f"raw.{t}" for t in RAW_TABLES)):
        return pd.DataFrame(rows)
    loaded = wh.df(
        " union all ".join(
            f"select '{t}' as \"table\", max(_loaded_at) as last_update_utc from raw.{t}"
            for t in RAW_TABLES
        )
    )
    age = pd.Timestamp(now.replace(tzinfo=None)) - pd.to_datetime(loaded["last_update_utc"])
    return loaded.assign(age_hours=(age.dt.total_seconds() / 3600).round(1))


def _runs(page: Page, runs: pd.DataFrame, now: datetime) -> None:
    if not nonempty(runs):
        page.missing.append("run history (built outside Dagster, or no runs yet)")
        return
    finished = pd.to_datetime(runs["finished"], utc=True).fillna(pd.Timestamp(now))
    runs = runs.assign(  # a run still going (this one) counts until now
        duration_min=(
            (finished - pd.to_datetime(runs["started"], utc=True)).dt.total_seconds() / 60
        ).round(1),
        run=pd.to_datetime(runs["started"], utc=True).dt.strftime("%m-%d %H:%M")
        + " "
        + runs["job"].str.replace("segflow_", "", regex=False),
    )
    columns = ["started", "job", "status", "partition", "duration_min", "failed_steps", "run_id"]
    page.add(
        plot(
            "Last runs and their status",
            runs.iloc[::-1],
            "bar",
            table=runs[columns],
            width=max(200, min(W, 28 * len(runs))),
            height=180,
            x=alt.X("run:N", sort=None, title="run (started UTC, job)"),
            y=alt.Y("duration_min:Q", title="minutes"),
            color=alt.Color(
                "status:N",
                scale=alt.Scale(
                    domain=["SUCCESS", "FAILURE", "CANCELED", "STARTED"],
                    range=["#31a354", "#d62728", "#969696", "#6baed6"],
                ),
            ),
        )
    )


def _fresh(page: Page, fresh: pd.DataFrame, limit: float | None) -> None:
    if not nonempty(fresh):
        return
    fresh = fresh.assign(
        state=fresh["age_hours"].map(lambda h: "stale" if h >= limit else "fresh") if limit else "-"
    )
    scale = status_scale("fresh", "stale") if limit else alt.Scale(domain=["-"], range=["#4c78a8"])
    page.add(
        plot(
            "Data freshness per table",
            fresh,
            "bar",
            note=f"stale = older than SEGFLOW_FRESHNESS_MAX_AGE_HOURS ({limit:g} h)"
            if limit
            else "",
            height=max(60, 22 * len(fresh)),
            layers=(vline(limit, "max_age_hours"),) if limit else (),
            y=alt.Y("table:N", sort="-x", title=None),
            x=alt.X("age_hours:Q", title="hours since last update"),
            color=alt.Color("state:N", scale=scale),
        )
    )


def _raw_rows(page: Page, wh: Warehouse) -> None:
    if wh.has(*(f"raw.{t}" for t in RAW_TABLES)):
        rows = wh.df(
            " union all ".join(
                f"select '{t}' as \"table\", _partition_date as day, count(*) as rows "
                f"from raw.{t} group by all"
                for t in RAW_TABLES
            )
            + ' order by day, "table"'
        )
        page.add(
            plot("Rows per day per raw table", as_days(rows, "day"), "line", table=rows,
                 x="day:T", y="rows:Q", color="table:N"),
            "rows per day (no raw tables)",
        )  # fmt: skip
    if not wh.has("raw.quarantine"):
        return
    q = wh.df(
        'select table_name as "table", reason_code, count(*) as rows from raw.quarantine '
        "where replayed_at is null group by all order by rows desc"
    )
    if not nonempty(q):
        none = pd.DataFrame([{"reason_code": "none", "rows": 0}])
        page.add(table_block("Quarantined rows by reason", none, "nothing quarantined"))
        return
    page.add(
        plot("Quarantined rows by reason", q, "bar",
             height=max(60, 20 * q["reason_code"].nunique()),
             y=alt.Y("reason_code:N", sort="-x", title=None), x="rows:Q", color="table:N")
    )  # fmt: skip


def _checks(page: Page, checks: pd.DataFrame | None) -> None:
    if not nonempty(checks):
        page.missing.append("asset check results (built outside Dagster, or no checks ran yet)")
        return
    checks = checks.assign(kind=[check_kind(r.severity, r.blocking) for r in checks.itertuples()])
    summary = checks.groupby(["kind", "passed"], as_index=False).size()
    summary = summary.rename(columns={"size": "checks"})
    summary["result"] = summary["passed"].map({True: "passed", False: "failed"})
    page.add(
        plot(
            "Checks by what a failure does, latest evaluation each",
            summary,
            "bar",
            table=checks,
            note="failed checks first, each with its message; only an ERROR result of a "
            "blocking check stops the assets downstream",
            height=80,
            y=alt.Y("kind:N", title=None),
            x=alt.X("checks:Q", stack=True),
            color=alt.Color("result:N", scale=status_scale("passed", "failed")),
        )
    )
    failed = checks[~checks["passed"].astype(bool)]
    if nonempty(failed) and "message" in failed:
        page.add(
            table_block(
                "Failed checks and what they found",
                failed[["kind", "asset", "check", "message"]],
                f"{len(failed)} check(s) failed at their latest evaluation",
            )
        )


def check_kind(severity: str, blocking: object) -> str:
    """One label from severity and blocking, so the two never read as contradicting: a
    blocking check stops downstream only when its result is an ERROR."""
    if severity == "ERROR":
        return "ERROR, blocks downstream" if bool(blocking) else "ERROR, does not block"
    return "WARN, never blocks"
