"""Build the report's pages from the warehouse (read-only) and, when given, run history and
model-registry data. Every chart is built only when its data exists; a page lists what it
could not show yet instead of drawing an empty chart."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import altair as alt
import duckdb
import pandas as pd

from contracts.models import kind_of
from orchestration.report.render import Chart, Page, kpis, table_block

RAW_TABLES = ("crm_contacts", "events", "billing_invoices")
W = 560  # default chart width (px)
H = 220


@dataclass
class RunInfo:
    """One Dagster run as the report shows it (filled by the caller; no Dagster import here)."""

    run_id: str
    job: str
    status: str
    started: datetime | None
    finished: datetime | None
    partition: str = ""
    failed_steps: str = ""


@dataclass
class ModelVersionInfo:
    """One registered model version with its holdout metrics and the baseline's."""

    model: str
    version: str
    created: datetime | None
    aliases: str
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)


@dataclass
class ReportInputs:
    runs: list[RunInfo] = field(default_factory=list)
    model_versions: list[ModelVersionInfo] = field(default_factory=list)
    drift: pd.DataFrame | None = None  # columns: column, psi, drifting
    freshness: dict[str, datetime] = field(default_factory=dict)  # asset -> last update (UTC)
    freshness_max_age_hours: float | None = None  # the freshness policy's FAIL age
    checks: pd.DataFrame | None = None  # asset, check, severity, passed, when


@dataclass
class ReportResult:
    out_dir: Path
    pages: dict[str, int]  # page file -> charts on it
    missing: dict[str, list[str]]

    @property
    def index(self) -> Path:
        return self.out_dir / "index.html"

    @property
    def charts(self) -> int:
        return sum(self.pages.values())


class Warehouse:
    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self._tables = {
            f"{s}.{t}"
            for s, t in conn.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }

    def has(self, *names: str) -> bool:
        return all((n if "." in n else f"main.{n}") in self._tables for n in names)

    def df(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.conn.execute(sql, params or []).df()


def _nonempty(frame: pd.DataFrame | None) -> bool:
    return frame is not None and len(frame) > 0


def _chart(
    title: str, chart: alt.TopLevelMixin, data: pd.DataFrame, note: str = ""
) -> Chart | None:
    return Chart(title, chart, data, note) if _nonempty(data) else None


def _days(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[col] = pd.to_datetime(frame[col])
    return frame


# --- Overview --------------------------------------------------------------------------------


def overview(wh: Warehouse, inputs: ReportInputs, now: datetime) -> Page:
    page = Page(
        "overview",
        "Overview",
        "Recent runs, how fresh each table is, rows loaded per day, quarantined rows and data checks.",
    )
    runs = pd.DataFrame([r.__dict__ for r in inputs.runs])
    items = []
    if _nonempty(runs):
        done = runs[~runs["status"].isin(["STARTED", "STARTING", "QUEUED", "NOT_STARTED"])]
        if _nonempty(done):  # the run building this report is still going: skip it
            last = done.iloc[0]
            items.append(
                (
                    "last finished run: " + str(last["job"]),
                    str(last["status"]),
                    "ok" if last["status"] == "SUCCESS" else "bad",
                )
            )
        items.append(("failed runs (shown)", str(int((runs["status"] == "FAILURE").sum())), ""))
    fresh = pd.DataFrame(
        [
            {
                "table": k,
                "last_update_utc": v,
                "age_hours": round((now - v).total_seconds() / 3600, 1),
            }
            for k, v in sorted(inputs.freshness.items())
        ]
    )
    if wh.has(*(f"raw.{t}" for t in RAW_TABLES)):
        loaded = wh.df(
            " union all ".join(
                f"select '{t}' as \"table\", max(_loaded_at) as last_update_utc, max(_partition_date) as newest_partition from raw.{t}"
                for t in RAW_TABLES
            )
        )
        if not _nonempty(fresh):
            fresh = loaded.assign(
                age_hours=lambda f: (
                    (
                        pd.Timestamp(now.replace(tzinfo=None))
                        - pd.to_datetime(f["last_update_utc"])
                    ).dt.total_seconds()
                    / 3600
                ).round(1)
            )
        newest = pd.to_datetime(loaded["newest_partition"]).max()
        items.append(("newest partition", "" if pd.isna(newest) else f"{newest:%Y-%m-%d}", ""))
    if wh.has("raw.quarantine"):
        q = int(wh.df("select count(*) as n from raw.quarantine where replayed_at is null")["n"][0])
        items.append(("quarantined rows", f"{q:,}", "bad" if q else "ok"))
    page.add(kpis(items) if items else None)

    if _nonempty(runs):
        runs = runs.assign(
            duration_min=lambda f: (
                (
                    pd.to_datetime(f["finished"], utc=True).fillna(pd.Timestamp(now))
                    - pd.to_datetime(f["started"], utc=True)
                ).dt.total_seconds()
                / 60
            ).round(1)  # a run still going (this one) counts until now
        )
        runs["run"] = (
            pd.to_datetime(runs["started"], utc=True).dt.strftime("%m-%d %H:%M")
            + " "
            + runs["job"].str.replace("segflow_", "", regex=False)
        )
        chart = (
            alt.Chart(runs.iloc[::-1])
            .mark_bar()
            .encode(
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
            .properties(width=max(200, min(W, 28 * len(runs))), height=180)
        )
        page.add(
            Chart(
                "Last runs and their status",
                chart,
                runs[
                    [
                        "started",
                        "job",
                        "status",
                        "partition",
                        "duration_min",
                        "failed_steps",
                        "run_id",
                    ]
                ],
            )
        )
    else:
        page.missing.append("run history (built outside Dagster, or no runs yet)")

    if _nonempty(fresh):
        limit = inputs.freshness_max_age_hours
        fresh["state"] = (
            fresh["age_hours"].map(lambda h: "stale" if h >= limit else "fresh") if limit else "-"
        )
        chart = (
            alt.Chart(fresh)
            .mark_bar()
            .encode(
                y=alt.Y("table:N", sort="-x", title=None),
                x=alt.X("age_hours:Q", title="hours since last update"),
                color=alt.Color(
                    "state:N",
                    scale=alt.Scale(domain=["fresh", "stale"], range=["#31a354", "#d62728"])
                    if limit
                    else alt.Scale(domain=["-"], range=["#4c78a8"]),
                ),
            )
            .properties(width=W, height=max(60, 22 * len(fresh)))
        )
        if limit:
            rule = (
                alt.Chart(pd.DataFrame({"max_age_hours": [limit]}))
                .mark_rule(color="#d62728", strokeDash=[4, 3])
                .encode(x="max_age_hours:Q")
            )
            chart = chart + rule
        note = f"stale = older than SEGFLOW_FRESHNESS_MAX_AGE_HOURS ({limit:g} h)" if limit else ""
        page.add(Chart("Data freshness per table", chart, fresh, note))

    if wh.has(*(f"raw.{t}" for t in RAW_TABLES)):
        rows = wh.df(
            " union all ".join(
                f"select '{t}' as \"table\", _partition_date as day, count(*) as rows from raw.{t} group by all"
                for t in RAW_TABLES
            )
            + ' order by day, "table"'
        )
        chart = (
            alt.Chart(_days(rows, "day"))
            .mark_line()
            .encode(x=alt.X("day:T"), y=alt.Y("rows:Q"), color="table:N")
            .properties(width=W, height=H)
        )
        page.add(_chart("Rows per day per raw table", chart, rows), "rows per day (no raw tables)")
    if wh.has("raw.quarantine"):
        q = wh.df(
            'select table_name as "table", reason_code, count(*) as rows from raw.quarantine '
            "where replayed_at is null group by all order by rows desc"
        )
        if _nonempty(q):
            chart = (
                alt.Chart(q)
                .mark_bar()
                .encode(
                    y=alt.Y("reason_code:N", sort="-x", title=None), x="rows:Q", color="table:N"
                )
                .properties(width=W, height=max(60, 20 * q["reason_code"].nunique()))
            )
            page.add(Chart("Quarantined rows by reason", chart, q))
        else:
            page.add(
                table_block(
                    "Quarantined rows by reason",
                    pd.DataFrame([{"reason_code": "none", "rows": 0}]),
                    "nothing quarantined",
                )
            )
    checks = inputs.checks
    if _nonempty(checks):
        summary = (
            checks.groupby(["severity", "passed"], as_index=False)
            .size()
            .rename(columns={"size": "checks"})
        )
        summary["result"] = summary["passed"].map({True: "passed", False: "failed"})
        chart = (
            alt.Chart(summary)
            .mark_bar()
            .encode(
                y=alt.Y("severity:N", title=None),
                x=alt.X("checks:Q", stack=True),
                color=alt.Color(
                    "result:N",
                    scale=alt.Scale(domain=["passed", "failed"], range=["#31a354", "#d62728"]),
                ),
            )
            .properties(width=W, height=80)
        )
        page.add(
            Chart(
                "Blocking (ERROR) and warning checks, latest evaluation each",
                chart,
                checks,
                "failed checks first",
            )
        )
    else:
        page.missing.append("asset check results (built outside Dagster, or no checks ran yet)")
    return page


# --- Segments --------------------------------------------------------------------------------


def segments(wh: Warehouse) -> Page:
    page = Page(
        "segments",
        "Segments",
        "Segment sizes over time, who entered and left each day, overlap between segments and the KPIs growth compares.",
    )
    if wh.has("user_segments"):
        sizes = wh.df(
            "select segment_date as day, s.segment, count(*) as users from main.user_segments, "
            "unnest(segments) as s(segment) group by all order by day, segment"
        )
        chart = (
            alt.Chart(_days(sizes, "day"))
            .mark_line()
            .encode(
                x="day:T",
                y=alt.Y("users:Q"),
                color=alt.Color(
                    "segment:N", scale=alt.Scale(scheme="tableau20"), legend=alt.Legend(columns=1)
                ),
            )
            .properties(width=W + 80, height=H + 40)
        )
        page.add(
            _chart("Segment size over time", chart, sizes), "segment sizes (user_segments is empty)"
        )
        latest = wh.df(
            "with l as (select * from main.user_segments where segment_date = (select max(segment_date) from main.user_segments)), "
            "m as (select user_id, s.segment from l, unnest(segments) as s(segment)) "
            "select a.segment as segment_a, b.segment as segment_b, count(*) as users "
            "from m a join m b using (user_id) group by all order by 1, 2"
        )
        if _nonempty(latest):
            chart = (
                alt.Chart(latest)
                .mark_rect()
                .encode(
                    x=alt.X("segment_b:N", title=None),
                    y=alt.Y("segment_a:N", title=None),
                    color=alt.Color("users:Q", scale=alt.Scale(scheme="blues")),
                )
                .properties(
                    width=24 * latest["segment_b"].nunique() + 40,
                    height=22 * latest["segment_a"].nunique(),
                )
            )
            text = chart.mark_text(fontSize=9).encode(text="users:Q", color=alt.value("black"))
            page.add(
                Chart("Overlap between segments (latest day, users in both)", chart + text, latest)
            )
    else:
        page.missing.append("segment sizes and overlap (no main.user_segments)")
    if wh.has("segment_membership"):
        moves = wh.df(
            "select entered_at as day, segment, 'entered' as movement, count(*) as users from main.segment_membership group by all "
            "union all select exited_at, segment, 'exited', -count(*) from main.segment_membership where exited_at is not null group by all "
            "order by day, segment"
        )
        chart = (
            alt.Chart(_days(moves, "day"))
            .mark_bar()
            .encode(
                x="day:T",
                y=alt.Y("sum(users):Q", title="users (exits negative)"),
                color=alt.Color(
                    "movement:N",
                    scale=alt.Scale(domain=["entered", "exited"], range=["#31a354", "#d62728"]),
                ),
            )
            .properties(width=W + 80, height=H)
        )
        page.add(
            _chart("Entered / exited per day (all segments)", chart, moves), "segment movements"
        )
    else:
        page.missing.append("entered/exited per day (no main.segment_membership)")
    if wh.has("fct_segment_kpis"):
        k = wh.df(
            "select segment, users, avg_session_minutes, conversion_to_premium, churn_rate, churn_rate_source, avg_ltv_90d, onboarding_completion "
            "from main.fct_segment_kpis where segment_date = (select max(segment_date) from main.fct_segment_kpis) order by users desc"
        )
        if _nonempty(k):
            long = k.melt(
                id_vars=["segment"],
                value_vars=[
                    "avg_session_minutes",
                    "conversion_to_premium",
                    "churn_rate",
                    "onboarding_completion",
                ],
                var_name="kpi",
            ).dropna()
            chart = (
                alt.Chart(long)
                .mark_bar()
                .encode(
                    y=alt.Y("segment:N", title=None),
                    x=alt.X("value:Q", title=None),
                    color=alt.Color("segment:N", legend=None),
                    column=alt.Column("kpi:N", title=None),
                )
                .resolve_scale(x="independent")
                .properties(width=150, height=20 * k["segment"].nunique())
            )
            page.add(
                Chart(
                    "KPIs per segment side by side (latest day)",
                    chart,
                    k,
                    "churn_rate is observed where the window allows, else predicted (see churn_rate_source)",
                )
            )
        else:
            page.missing.append("segment KPIs (fct_segment_kpis is empty)")
    else:
        page.missing.append("segment KPIs (no main.fct_segment_kpis)")
    return page


# --- Onboarding ------------------------------------------------------------------------------


def onboarding(wh: Warehouse) -> Page:
    page = Page(
        "onboarding",
        "Onboarding",
        "Sequential funnel per segment and per signup cohort, drop-off per step and median days to each milestone.",
    )
    if wh.has("fct_onboarding_funnel_by_segment"):
        f = wh.df(
            "select * from main.fct_onboarding_funnel_by_segment where segment_date = (select max(segment_date) from main.fct_onboarding_funnel_by_segment)"
        )
        cols = [
            c
            for c in (
                "segment",
                "step_number",
                "milestone",
                "users_reached",
                "users_reached_any_order",
            )
            if c in f.columns
        ]
        f = f[cols].sort_values([c for c in ("segment", "step_number") if c in cols])
        if _nonempty(f):
            chart = (
                alt.Chart(f)
                .mark_line(point=True)
                .encode(
                    x=alt.X(
                        "milestone:N",
                        sort=alt.SortField("step_number") if "step_number" in cols else None,
                    ),
                    y="users_reached:Q",
                    color="segment:N",
                )
                .properties(width=W, height=H + 40)
            )
            page.add(
                Chart(
                    "Funnel per segment (latest day, users reaching each step in order)", chart, f
                )
            )
    else:
        page.missing.append("funnel per segment (no fct_onboarding_funnel_by_segment)")
    if wh.has("fct_onboarding_funnel"):
        f = wh.df(
            "select * from main.fct_onboarding_funnel order by dimension, dimension_value, step_number"
        )
        overall = f[f["dimension"] == "all"]
        if _nonempty(overall):
            o = overall[
                [
                    "step_number",
                    "milestone",
                    "users_reached",
                    "conversion_from_previous",
                    "drop_off_users",
                    "median_days_to_reach",
                ]
            ]
            bars = (
                alt.Chart(o)
                .mark_bar(color="#4c78a8")
                .encode(
                    x=alt.X("milestone:N", sort=alt.SortField("step_number")), y="users_reached:Q"
                )
                .properties(width=W, height=H)
            )
            drops = bars.mark_bar(color="#e45756").encode(y="drop_off_users:Q")
            page.add(
                Chart(
                    "Overall funnel: users reaching each step (blue) and dropped off since the previous (red)",
                    bars + drops,
                    o,
                )
            )
            m = o.dropna(subset=["median_days_to_reach"])
            chart = (
                alt.Chart(m)
                .mark_bar()
                .encode(
                    x=alt.X("milestone:N", sort=alt.SortField("step_number")),
                    y=alt.Y("median_days_to_reach:Q", title="median days from signup"),
                )
                .properties(width=W, height=H)
            )
            page.add(_chart("Median time to each milestone", chart, m), "median time to milestones")
        cohort = f[f["dimension"] == "signup_week"]
        if _nonempty(cohort):
            c = cohort[
                [
                    "dimension_value",
                    "step_number",
                    "milestone",
                    "users_reached",
                    "conversion_from_previous",
                ]
            ].rename(columns={"dimension_value": "signup_week"})
            firsts = c[c["step_number"] == c["step_number"].min()][
                ["signup_week", "users_reached"]
            ].rename(columns={"users_reached": "cohort_users"})
            c = c.merge(firsts, on="signup_week")
            c["share_of_cohort"] = (c["users_reached"] / c["cohort_users"]).round(4)
            chart = (
                alt.Chart(c)
                .mark_rect()
                .encode(
                    x=alt.X("milestone:N", sort=alt.SortField("step_number")),
                    y=alt.Y("signup_week:O"),
                    color=alt.Color(
                        "share_of_cohort:Q", scale=alt.Scale(scheme="greens", domain=[0, 1])
                    ),
                )
                .properties(width=W - 100, height=min(420, 14 * c["signup_week"].nunique()))
            )
            page.add(
                Chart(
                    "Funnel per signup cohort (share of the week's signups reaching each step)",
                    chart,
                    c,
                )
            )
    else:
        page.missing.append("overall and cohort funnel (no fct_onboarding_funnel)")
    return page


# --- Retention -------------------------------------------------------------------------------


def retention(wh: Warehouse) -> Page:
    page = Page(
        "retention",
        "Retention",
        "Cohort retention (weekly and monthly cohorts) and revenue retention.",
    )
    if wh.has("fct_cohort_retention"):
        r = wh.df(
            "select cohort_grain, cohort_start, period_number, cohort_size, retained_users, retention_rate from main.fct_cohort_retention order by 1, 2, 3"
        )
        for grain in ("week", "month"):
            g = r[r["cohort_grain"].astype(str).str.startswith(grain)]
            if not _nonempty(g):
                page.missing.append(f"{grain}ly cohort retention")
                continue
            g = g.assign(cohort=pd.to_datetime(g["cohort_start"]).dt.strftime("%Y-%m-%d"))
            chart = (
                alt.Chart(g)
                .mark_rect()
                .encode(
                    x=alt.X("period_number:O", title=f"{grain}s since signup"),
                    y=alt.Y("cohort:O", title=f"{grain}ly cohort"),
                    color=alt.Color(
                        "retention_rate:Q", scale=alt.Scale(scheme="blues", domain=[0, 1])
                    ),
                )
                .properties(
                    width=min(W, 26 * g["period_number"].nunique() + 40),
                    height=min(440, 16 * g["cohort"].nunique()),
                )
            )
            page.add(
                Chart(f"{grain.title()}ly cohort retention", chart, g.drop(columns=["cohort"]))
            )
    else:
        page.missing.append("cohort retention (no fct_cohort_retention)")
    if wh.has("fct_revenue_retention"):
        rv = wh.df("select * from main.fct_revenue_retention order by all")
        rv = rv.dropna(subset=["net_revenue_retention"]) if "net_revenue_retention" in rv else rv
        if "cohort_grain" in rv and (rv["cohort_grain"] == "month").any():
            rv = rv[rv["cohort_grain"] == "month"]
        if _nonempty(rv):
            rv = rv.assign(cohort=pd.to_datetime(rv["cohort_start"]).dt.strftime("%Y-%m-%d"))
            chart = (
                alt.Chart(rv)
                .mark_line(point=True)
                .encode(
                    x=alt.X("period_number:O"),
                    y=alt.Y("net_revenue_retention:Q", title="net revenue retention"),
                    color=alt.Color("cohort:N", legend=alt.Legend(columns=2)),
                )
                .properties(width=W, height=H + 40)
            )
            page.add(
                Chart("Net revenue retention by monthly cohort", chart, rv.drop(columns=["cohort"]))
            )
        else:
            page.missing.append("revenue retention (no revenue yet)")
    else:
        page.missing.append("revenue retention (no fct_revenue_retention)")
    return page


# --- Experiments -----------------------------------------------------------------------------


def experiments(wh: Warehouse, min_sample: int) -> Page:
    page = Page(
        "experiments",
        "Experiments",
        f"Per experiment and segment: each arm's onboarding completion with its 95% confidence interval, lift vs control, verdict, and users per arm against the minimum ({min_sample}).",
    )
    if not wh.has("fct_experiment_results"):
        page.missing.append("experiment results (no fct_experiment_results)")
        return page
    e = wh.df("select * from main.fct_experiment_results order by experiment, segment, variant")
    if not _nonempty(e):
        page.missing.append("experiment results (table is empty)")
        return page
    control = e[e["variant"] == "control"][
        ["experiment", "segment", "onboarding_completion_rate"]
    ].rename(columns={"onboarding_completion_rate": "control_rate"})
    e = e.merge(control, on=["experiment", "segment"], how="left")
    e["lift_vs_control"] = (e["onboarding_completion_rate"] - e["control_rate"]).round(4)
    e["arm"] = e["segment"] + " · " + e["variant"]
    for name, g in e.groupby("experiment"):
        base = alt.Chart(g).encode(y=alt.Y("arm:N", title=None))
        ci = base.mark_rule().encode(
            x=alt.X("onboarding_completion_ci_low:Q", title="onboarding completion (95% CI)"),
            x2="onboarding_completion_ci_high:Q",
        )
        pt = base.mark_point(filled=True, size=60).encode(
            x="onboarding_completion_rate:Q", color=alt.Color("verdict:N")
        )
        page.add(
            Chart(
                f"{name}: outcome per arm with confidence interval",
                (ci + pt).properties(width=W - 120, height=22 * len(g)),
                g[
                    [
                        "segment",
                        "variant",
                        "users",
                        "onboarding_completion_rate",
                        "onboarding_completion_ci_low",
                        "onboarding_completion_ci_high",
                        "lift_vs_control",
                        "p_value",
                        "retention_28d",
                        "conversion_rate",
                        "verdict",
                    ]
                ],
            )
        )
    sizes = e[["experiment", "segment", "variant", "users", "verdict"]].assign(minimum=min_sample)
    bars = (
        alt.Chart(
            sizes.assign(
                label=sizes["experiment"] + " · " + sizes["segment"] + " · " + sizes["variant"]
            )
        )
        .mark_bar()
        .encode(y=alt.Y("label:N", title=None), x=alt.X("users:Q"), color=alt.Color("verdict:N"))
    )
    rule = (
        alt.Chart(pd.DataFrame({"minimum": [min_sample]}))
        .mark_rule(color="#d62728", strokeDash=[4, 3])
        .encode(x="minimum:Q")
    )
    page.add(
        Chart(
            "Sample size per arm vs the minimum (red line)",
            (bars + rule).properties(width=W - 120, height=18 * len(sizes)),
            sizes,
        )
    )
    return page


# --- Models ----------------------------------------------------------------------------------

PRIMARY = {"churn": "roc_auc", "conversion": "roc_auc", "ltv": "mae"}


def models(wh: Warehouse, inputs: ReportInputs) -> Page:
    page = Page(
        "models",
        "Models",
        "Holdout metrics of every registered version against its baseline, the churn champion's calibration and gains on outcomes observed since, drift per feature, and today's scores and bands.",
    )
    rows = []
    for v in inputs.model_versions:
        for metric, value in v.metrics.items():
            rows.append(
                {
                    "model": v.model,
                    "version": int(v.version),
                    "aliases": v.aliases,
                    "metric": metric,
                    "model_value": value,
                    "baseline_value": v.baseline.get(metric),
                }
            )
    mv = pd.DataFrame(rows)
    if _nonempty(mv):
        for model, g in mv.groupby("model"):
            kind = kind_of(model)
            metric = PRIMARY.get(kind, g["metric"].iloc[0])
            g = g[g["metric"] == metric]
            if g.empty:
                continue
            long = g.melt(
                id_vars=["version", "aliases"],
                value_vars=["model_value", "baseline_value"],
                var_name="series",
                value_name=metric,
            ).dropna()
            chart = (
                alt.Chart(long)
                .mark_line(point=True)
                .encode(
                    x=alt.X("version:O"),
                    y=alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False)),
                    color=alt.Color("series:N"),
                )
                .properties(width=W - 200, height=180)
            )
            page.add(Chart(f"{model}: {metric} per version vs baseline", chart, g))
    else:
        page.missing.append("model versions (no registered models yet, or registry not read)")
    if wh.has("user_scores", "ml_churn_training"):
        cal = wh.df(
            "with j as (select s.churn_probability as p, t.churned_28d::int as y from main.user_scores s "
            "join main.ml_churn_training t on t.user_id = s.user_id and t.snapshot_date = s.score_date "
            "where s.churn_probability is not null and t.churned_28d is not null), "
            "d as (select *, ntile(10) over (order by p) as decile from j) "
            "select decile, count(*) as users, avg(p) as mean_predicted, avg(y) as observed_rate, sum(y) as churned from d group by decile order by decile"
        )
        if _nonempty(cal):
            line = (
                alt.Chart(pd.DataFrame({"x": [0, 1], "y": [0, 1]}))
                .mark_line(color="#999", strokeDash=[4, 3])
                .encode(x="x:Q", y="y:Q")
            )
            pts = (
                alt.Chart(cal)
                .mark_line(point=True)
                .encode(
                    x=alt.X("mean_predicted:Q", title="mean predicted churn"),
                    y=alt.Y("observed_rate:Q", title="observed churn rate"),
                )
            )
            page.add(
                Chart(
                    "Churn champion calibration by decile (scores vs observed 28-day churn)",
                    (line + pts).properties(width=300, height=260),
                    cal,
                )
            )
            gains = cal.sort_values("decile", ascending=False).reset_index(drop=True)
            gains["share_of_users"] = gains["users"].cumsum() / gains["users"].sum()
            total = gains["churned"].sum()
            gains["share_of_churners"] = gains["churned"].cumsum() / total if total else 0.0
            gains = pd.concat(
                [
                    pd.DataFrame(
                        [
                            {
                                "decile": 11,
                                "users": 0,
                                "churned": 0,
                                "share_of_users": 0.0,
                                "share_of_churners": 0.0,
                            }
                        ]
                    ),
                    gains,
                ],
                ignore_index=True,
            )
            g2 = gains[["decile", "users", "churned", "share_of_users", "share_of_churners"]]
            chart = (
                alt.Chart(g2)
                .mark_line(point=True)
                .encode(
                    x=alt.X("share_of_users:Q", title="share of users, highest scores first"),
                    y=alt.Y("share_of_churners:Q", title="share of churners"),
                )
            )
            page.add(
                Chart(
                    "Churn champion cumulative gains",
                    (line + chart).properties(width=300, height=260),
                    g2,
                )
            )
        else:
            page.missing.append(
                "calibration and gains (no scored day has an observed 28-day outcome yet)"
            )
    if _nonempty(inputs.drift):
        d = inputs.drift.sort_values("psi", ascending=False).head(30)
        chart = (
            alt.Chart(d)
            .mark_bar()
            .encode(
                y=alt.Y("column:N", sort="-x", title=None),
                x=alt.X("psi:Q", title="PSI vs training reference"),
                color=alt.Color(
                    "drifting:N",
                    scale=alt.Scale(domain=[False, True], range=["#4c78a8", "#d62728"]),
                ),
            )
            .properties(width=W - 160, height=16 * len(d))
        )
        page.add(Chart("Drift per feature (churn champion, latest day)", chart, d))
    else:
        page.missing.append("drift per feature (no churn champion or no features today)")
    if wh.has("user_scores"):
        s = wh.df(
            "select churn_probability, churn_band, ltv_90d, ltv_band, conversion_probability from main.user_scores "
            "where score_date = (select max(score_date) from main.user_scores)"
        )
        if _nonempty(s) and s["churn_probability"].notna().any():
            hist = s[["churn_probability"]].dropna()
            hist["bin"] = (hist["churn_probability"] * 20).clip(upper=19.999).astype(int) / 20
            counts = (
                hist.groupby("bin", as_index=False)
                .size()
                .rename(columns={"size": "users", "bin": "churn_probability_from"})
            )
            chart = (
                alt.Chart(counts)
                .mark_bar()
                .encode(
                    x=alt.X("churn_probability_from:Q", bin="binned", title="churn probability"),
                    x2=alt.X2("upper:Q"),
                    y="users:Q",
                )
                .transform_calculate(upper="datum.churn_probability_from + 0.05")
                .properties(width=W - 200, height=180)
            )
            page.add(Chart("Distribution of churn scores (latest day)", chart, counts))
        bands = (
            pd.concat(
                [
                    s.groupby(c, as_index=False)
                    .size()
                    .rename(columns={c: "band", "size": "users"})
                    .assign(score=c.replace("_band", ""))
                    for c in ("churn_band", "ltv_band")
                    if s[c].notna().any()
                ],
                ignore_index=True,
            )
            if _nonempty(s)
            else pd.DataFrame()
        )
        if _nonempty(bands):
            chart = (
                alt.Chart(bands)
                .mark_bar()
                .encode(
                    y=alt.Y("score:N", title=None),
                    x=alt.X("users:Q", stack="normalize", title="share of users"),
                    color="band:N",
                )
                .properties(width=W - 200, height=70)
            )
            page.add(Chart("Bands (latest day)", chart, bands[["score", "band", "users"]]))
        if not _nonempty(s):
            page.missing.append("score distribution (user_scores is empty)")
    else:
        page.missing.append("scores and bands (no main.user_scores)")
    return page


# --- Sync ------------------------------------------------------------------------------------


def sync_page(wh: Warehouse) -> Page:
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
    if not _nonempty(r):
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
    chart = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("run:N", sort=None, title="sync run (as of · status · id)"),
            y="items:Q",
            color="measure:N",
            xOffset="measure:N",
        )
        .properties(width=max(W, 70 * len(r)), height=H)
    )
    page.add(
        Chart(
            "People and events sent / failed / retried per run",
            chart,
            r.drop(columns=["run", "failures_by_reason"]),
        )
    )
    reasons = []
    for row in r.itertuples():
        raw = row.failures_by_reason
        data = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
        for reason, n in (data or {}).items():
            reasons.append({"run": row.run, "reason": reason, "items": int(n)})
    fr = pd.DataFrame(reasons)
    if _nonempty(fr):
        chart = (
            alt.Chart(fr)
            .mark_bar()
            .encode(y=alt.Y("reason:N", title=None), x="sum(items):Q", color="run:N")
            .properties(width=W - 120, height=22 * fr["reason"].nunique())
        )
        page.add(Chart("Failures by reason", chart, fr))
    else:
        page.add(
            table_block(
                "Failures by reason",
                pd.DataFrame([{"reason": "none", "items": 0}]),
                "no item failed in any sync run",
            )
        )
    held = r[r["status"] == "breaker_tripped"]
    if _nonempty(held):
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
        chart = (
            alt.Chart(h)
            .mark_bar(color="#d62728")
            .encode(
                y=alt.Y("run:N", title=None),
                x=alt.X("people_changed:Q", title="people changes held back"),
            )
            .properties(width=W - 120, height=24 * len(h))
        )
        page.add(Chart("Held back by the circuit breaker", chart, h))
    else:
        page.add(
            table_block(
                "Held back by the circuit breaker",
                r[["run", "status"]].tail(10),
                "the breaker has not tripped in these runs",
            )
        )
    return page


# --- entry point -----------------------------------------------------------------------------

PAGE_ORDER = ("overview", "segments", "onboarding", "retention", "experiments", "models", "sync")


def _safely(slug: str, title: str, build: Callable[[], Page], log) -> Page:
    """A page whose data breaks its builder still renders, naming the error, so the report
    (and the run that builds it) never fails on one page."""
    try:
        return build()
    except Exception as exc:  # noqa: BLE001 - reported on the page and in the log
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if log:
            log(f"{slug}: page not built: {message}")
        page = Page(slug, title, "This page could not be built from the current data.")
        page.missing.append(f"page error: {message}")
        return page


def build_report(
    duckdb_path: Path | str | None,
    out_dir: Path | str,
    inputs: ReportInputs | None = None,
    min_sample: int = 100,
    now: datetime | None = None,
    log: Callable[[str], Any] | None = None,
    conn: duckdb.DuckDBPyConnection | None = None,
) -> ReportResult:
    """Write the report folder (replaced as a whole) and return what it holds. Reads the
    warehouse through `conn` when given, else opens `duckdb_path` read-only."""
    inputs = inputs or ReportInputs()
    now = now or datetime.now(UTC)
    out_dir = Path(out_dir)
    own = conn is None
    if own:
        conn = duckdb.connect(str(duckdb_path), read_only=True)
    label = str(duckdb_path) if duckdb_path else "warehouse"
    try:
        wh = Warehouse(conn)
        builders = [
            ("overview", "Overview", lambda: overview(wh, inputs, now)),
            ("segments", "Segments", lambda: segments(wh)),
            ("onboarding", "Onboarding", lambda: onboarding(wh)),
            ("retention", "Retention", lambda: retention(wh)),
            ("experiments", "Experiments", lambda: experiments(wh, min_sample)),
            ("models", "Models", lambda: models(wh, inputs)),
            ("sync", "Sync", lambda: sync_page(wh)),
        ]
        pages = [_safely(slug, title, build, log) for slug, title, build in builders]
    finally:
        if own:
            conn.close()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for page in pages:
        (tmp / page.filename).write_text(page.html(pages, now, label), encoding="utf-8")
        if log:
            log(
                f"{page.filename}: {len(page.charts)} chart(s); not shown: {page.missing or 'none'}"
            )
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return ReportResult(
        out_dir=out_dir,
        pages={p.filename: len(p.charts) for p in pages},
        missing={p.filename: p.missing for p in pages if p.missing},
    )
