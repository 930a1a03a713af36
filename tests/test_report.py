"""The offline report, opened in headless Chromium: every page loads with no console error and
no network request, every chart has data (marks drawn and a numbers table), screenshots land in
tests/output/report/.

The warehouse is small and built in seconds: contract-shaped segment/score tables from
`support.sync_inputs`, a real outbox sync (so `sync_runs` comes from the sync itself, including a
circuit-breaker trip), and mart tables with the dbt models' columns.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from threading import get_ident

import duckdb
import pandas as pd
import pytest
from support.sync_inputs import synthetic_inputs, write_inputs

from orchestration.activation.destinations.outbox import OutboxDestination
from orchestration.activation.sync import sync
from orchestration.report import PAGE_ORDER, ModelVersionInfo, ReportInputs, RunInfo, build_report
from orchestration.report.browser import Browser, find_chromium
from orchestration.segments.experiments import RESULT_COLUMNS

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

OUTPUT = Path(__file__).parent / "output" / "report"
END = date(2026, 3, 20)
DAYS = [END - timedelta(days=i) for i in range(13, -1, -1)]
DATA_START = date(2025, 9, 20)  # raw data (and so observed activity) starts here
RAW_DAYS = [DATA_START + timedelta(days=i) for i in range(0, (END - DATA_START).days + 1, 3)]
MILESTONES = ["account_created", "first_project", "teammate_invited", "first_value"]
SEGMENTS = ["new_user", "activated", "power_user", "at_risk", "trial", "high_ltv"]

CHART_CHECK = """(() => [...document.querySelectorAll('figure.chart')].map(f => ({
  id: f.id, title: f.querySelector('figcaption').textContent, rows: +f.dataset.rows,
  svg: f.querySelectorAll('svg').length, marks: f.querySelectorAll('svg g.role-mark > *').length,
  table_rows: f.querySelectorAll('table tbody tr').length,
  details: f.querySelectorAll('details').length,
})))()"""


def _raw(conn, rng):
    conn.execute("create schema raw")
    for table in ("crm_contacts", "events", "billing_invoices"):
        conn.execute(
            f"create table raw.{table} (id VARCHAR, _partition_date DATE, _loaded_at TIMESTAMP)"
        )
        rows = [
            (f"{table}-{d}-{i}", d, datetime(2026, 3, 21, 2, 5))
            for d in RAW_DAYS
            for i in range(rng.randint(5, 40))
        ]
        conn.executemany(f"insert into raw.{table} values (?, ?, ?)", rows)
    conn.execute(
        "create table raw.quarantine (table_name VARCHAR, partition_date DATE, reason_code VARCHAR, "
        "replayed_at TIMESTAMP)"
    )
    conn.executemany(
        "insert into raw.quarantine values (?, ?, ?, NULL)",
        [("events", DAYS[-1], "malformed_json")] * 3 + [("crm_contacts", DAYS[-2], "null_key")],
    )


def _marts(conn, rng):
    frames = {}
    kpis, funnel_seg, members = [], [], []
    for d in DAYS:
        for s in SEGMENTS:
            kpis.append(
                {
                    "segment_date": d,
                    "segment": s,
                    "users": rng.randint(20, 200),
                    "avg_session_minutes": rng.uniform(3, 25),
                    "onboarding_completion": rng.random(),
                    "conversion_to_premium": rng.random() / 4,
                    "churn_rate": rng.random() / 3,
                    "churn_rate_source": "observed",
                    "avg_ltv_pred": rng.uniform(50, 500),
                }
            )
            reached = 200
            for n, m in enumerate(MILESTONES, 1):
                reached = int(reached * rng.uniform(0.5, 0.9))
                funnel_seg.append(
                    {
                        "segment_date": d,
                        "segment": s,
                        "step_number": n,
                        "milestone": m,
                        "users_in_segment": 200,
                        "users_reached": reached,
                        "users_reached_any_order": reached + 3,
                        "reached_rate": reached / 200,
                    }
                )
    frames["fct_segment_kpis"] = pd.DataFrame(kpis)
    frames["fct_onboarding_funnel_by_segment"] = pd.DataFrame(funnel_seg)
    funnel = []
    for dim, values in (
        ("all", ["all"]),
        ("signup_week", ["2025-08-04"] + [f"2026-0{m}-0{w}" for m in (1, 2) for w in (1, 8)]),
    ):
        for v in values:
            reached, prev = rng.randint(80, 300), None
            for n, m in enumerate(MILESTONES, 1):
                reached = reached if prev is None else int(prev * rng.uniform(0.5, 0.95))
                funnel.append(
                    {
                        "dimension": dim,
                        "dimension_value": v,
                        "step_number": n,
                        "milestone": m,
                        "users_reached": reached,
                        "conversion_from_previous": 1.0 if prev is None else reached / prev,
                        "drop_off_users": 0 if prev is None else prev - reached,
                        "median_days_to_reach": float(n * 2),
                    }
                )
                prev = reached
    frames["fct_onboarding_funnel"] = pd.DataFrame(funnel)
    cohort, revenue = [], []
    for grain, starts in (
        (
            "week",
            [pd.Timestamp("2025-09-01")] + list(pd.date_range("2026-01-05", periods=8, freq="7D")),
        ),
        (
            "month",
            [pd.Timestamp("2025-08-01")] + list(pd.date_range("2025-10-01", periods=6, freq="MS")),
        ),
    ):
        for i, start in enumerate(starts):
            size = rng.randint(30, 90)
            for p in range(len(starts) - i):
                rate = 1.0 if p == 0 else max(0.05, 0.8**p + rng.uniform(-0.05, 0.05))
                if start.date() < DATA_START and p < 2:
                    rate = 0.0  # a pre-window cohort: its early periods were never observed
                cohort.append(
                    {
                        "cohort_grain": grain,
                        "cohort_start": start.date(),
                        "period_number": p,
                        "cohort_size": size,
                        "retained_users": int(size * rate),
                        "retention_rate": rate,
                    }
                )
                revenue.append(
                    {
                        "cohort_grain": grain,
                        "cohort_start": start.date(),
                        "period_number": p,
                        "cohort_size": size,
                        "paying_users": int(size * rate),
                        "revenue": 1000 * rate,
                        "net_revenue_retention": rate * 1.1,
                    }
                )
    frames["fct_cohort_retention"] = pd.DataFrame(cohort)
    frames["fct_revenue_retention"] = pd.DataFrame(revenue)
    results = []
    for seg in ("all", "new_user"):
        for variant, n in (("control", 140), ("tutorial", 150), ("checklist", 60)):
            rate = rng.uniform(0.3, 0.6)
            row = dict.fromkeys(RESULT_COLUMNS)
            row.update(
                {
                    "experiment": "first_steps",
                    "segment": seg,
                    "variant": variant,
                    "users": n,
                    "onboarding_completion_rate": rate,
                    "onboarding_completion_ci_low": rate - 0.08,
                    "onboarding_completion_ci_high": rate + 0.08,
                    "retention_28d": 0.5,
                    "conversion_rate": 0.1,
                    "p_value": None if variant == "control" else 0.04,
                    "verdict": {
                        "control": "control",
                        "tutorial": "better_than_control",
                        "checklist": "insufficient_sample",
                    }[variant],
                    "as_of": END,
                }
            )
            results.append(row)
    frames["fct_experiment_results"] = pd.DataFrame(results, columns=RESULT_COLUMNS)
    for name, frame in frames.items():
        conn.register("_f", frame)
        conn.execute(f"create table main.{name} as select * from _f")
        conn.unregister("_f")
    del members


def _segments_scores_sync(conn, tmp_path, rng):
    seg_frames, score_frames, member_frames = [], [], []
    for d in DAYS:
        day = synthetic_inputs(150, d, seed=d.toordinal())
        seg_frames.append(day["user_segments"])
        score_frames.append(day["user_scores"])
        members = day["segment_membership"].copy()
        members["exited_at"] = [
            d + timedelta(days=3) if rng.random() < 0.4 else None for _ in range(len(members))
        ]
        member_frames.append(members)
    write_inputs(
        conn,
        user_segments=pd.concat(seg_frames),
        user_scores=pd.concat(score_frames),
        segment_membership=pd.concat(member_frames),
        user_triggers=synthetic_inputs(150, END)["user_triggers"],
    )
    labels = pd.concat(score_frames)[["user_id", "score_date", "churn_probability"]]
    labels["churned_next_window"] = [rng.random() < p for p in labels["churn_probability"]]
    conn.register(
        "_l",
        labels.rename(columns={"score_date": "snapshot_date"}).drop(columns="churn_probability"),
    )
    conn.execute("create table main.ml_churn_training as select * from _l")
    conn.unregister("_l")
    # a real sync to the outbox, then one the circuit breaker holds back
    sync(conn, OutboxDestination(tmp_path / "outbox"), as_of=END)
    conn.execute(
        "update main.user_segments set segments = ['win_back'], primary_segment = 'win_back' "
        "where segment_date = ?",
        [END],
    )
    blocked = sync(conn, OutboxDestination(tmp_path / "outbox"), as_of=END)
    assert blocked.status == "breaker_tripped"


def _inputs() -> ReportInputs:
    start = datetime(2026, 3, 21, 2, 0, tzinfo=UTC)
    runs = [
        RunInfo(
            f"run-{i}",
            "segflow_daily_job",
            "FAILURE" if i == 2 else "SUCCESS",
            start - timedelta(days=i),
            start - timedelta(days=i) + timedelta(minutes=6 + i),
            partition=str(END - timedelta(days=i)),
            failed_steps="destination_sync" if i == 2 else "",
        )
        for i in range(5)
    ]
    # the run building the report is still going: no end time yet
    runs.insert(
        0, RunInfo("run-now", "segflow_daily_job", "STARTED", start + timedelta(hours=1), None)
    )
    checks = pd.DataFrame(
        [
            {
                "asset": "raw/events",
                "check": "quarantine_gate",
                "severity": "ERROR",
                "blocking": True,
                "passed": True,
                "when_utc": start,
            },
            {
                "asset": "raw/events",
                "check": "gx_suite",
                "severity": "ERROR",
                "blocking": True,
                "passed": False,
                "message": "raw.events.message_id.unique: expected unique; found 12 duplicates",
                "when_utc": start,
            },
            {
                "asset": "user_scores",
                "check": "feature_drift",
                "severity": "WARN",
                "blocking": False,
                "passed": True,
                "when_utc": start,
            },
        ]
    )
    versions = [
        ModelVersionInfo(
            "segflow-churn",
            str(v),
            start,
            "champion" if v == 3 else "",
            {"roc_auc": 0.8 + v / 100},
            {"roc_auc": 0.78},
        )
        for v in (1, 2, 3)
    ] + [
        ModelVersionInfo(
            "segflow-ltv",
            "1",
            start,
            "champion",
            {"normalized_gini": 0.41},
            {"normalized_gini": 0.3},
        )
    ]
    drift = pd.DataFrame(
        {"column": ["events_28d", "sessions_7d", "plan"], "psi": [0.31, 0.05, 0.01]}
    )
    drift["drifting"] = drift["psi"] > 0.2
    freshness = {
        "raw/events": start,
        "raw/crm_contacts": start,
        "user_scores": start - timedelta(hours=3),
        "destination_sync": start - timedelta(hours=40),
    }
    return ReportInputs(
        freshness_max_age_hours=30,
        runs=runs,
        model_versions=versions,
        drift=drift,
        freshness=freshness,
        checks=checks,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    rng = random.Random(11)
    db = tmp / "warehouse.duckdb"
    conn = duckdb.connect(str(db))
    _raw(conn, rng)
    _marts(conn, rng)
    _segments_scores_sync(conn, tmp, rng)
    _realtime_runs(conn, rng)
    conn.close()
    result = build_report(db, tmp / "report", _inputs(), now=datetime(2026, 3, 21, 6, tzinfo=UTC))
    return result


def _realtime_runs(conn, rng) -> None:
    """Three daily hand-overs of the realtime consumer (the realtime page)."""
    from orchestration.realtime.reconcile import Reconciliation, record_run

    applied = 0
    for day in range(3):
        applied += rng.randint(1_000, 5_000)
        stats = {"events_applied": applied, "events_quarantined": day, "rule_evaluations": 3 * applied,
                 "events_per_busy_second": 4_000.0 + day, "intraday_profiles": 200,
                 "events_emitted": 40 * (day + 1), "events_unsent": 0, "last_batch_at": None}  # fmt: skip
        result = Reconciliation(date(2026, 3, 18 + day), compared=200, agreed=200 - day)
        record_run(conn, result.day, day * 7, stats, result)


def test_every_page_and_chart_is_built(report):
    assert [p for p in report.pages] == [
        "index.html" if s == "overview" else f"{s}.html" for s in PAGE_ORDER
    ]
    assert report.missing == {}, report.missing
    assert all(n >= 1 for n in report.pages.values()), report.pages
    for page in report.out_dir.glob("*.html"):
        text = page.read_text()
        assert "<script" not in text
        links = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text)
        local = {f"{p}" for p in report.pages} | {"data:,"}
        assert all(link in local for link in links), (page.name, set(links) - local)
        assert "url(http" not in text and "@import" not in text


@pytest.mark.skipif(
    find_chromium() is None, reason="chromium not installed (make test installs it)"
)
def test_pages_in_headless_chromium(report):
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT.parent / ".gitignore").write_text("*\n")
    total = 0
    with Browser() as browser:
        for name in report.pages:
            visit = browser.visit(
                report.out_dir / name,
                script=CHART_CHECK,
                screenshot=OUTPUT / name.replace(".html", ".png"),
            )
            assert visit.console_errors == [], (name, visit.console_errors)
            assert visit.foreign_requests == [], (name, visit.foreign_requests)
            charts = [c for c in visit.result if c["svg"]]
            assert len(charts) == report.pages[name], (name, visit.result)
            for chart in charts:
                assert chart["rows"] > 0 and chart["marks"] > 0, (name, chart)
                assert chart["details"] == 1 and chart["table_rows"] > 0, (name, chart)
            assert visit.screenshot.stat().st_size > 10_000
            total += len(charts)
            print(f"{name}: {len(charts)} charts, screenshot {visit.screenshot}")
    assert total == report.charts


def test_empty_warehouse_and_a_broken_page_still_give_a_report(tmp_path):
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    broken = ReportInputs(drift=pd.DataFrame({"unexpected": [1.0]}))  # no psi column
    result = build_report(db, tmp_path / "report", broken)
    assert result.charts == 0 and len(result.pages) == len(PAGE_ORDER)
    assert any(m.startswith("page error: KeyError") for m in result.missing["models.html"])
    assert "no main.user_segments" in " ".join(result.missing["segments.html"])
    assert "page error" in (tmp_path / "report" / "models.html").read_text()


def test_pages_built_beside_rendering_log_in_order_on_the_callers_thread(tmp_path):
    """Pages are built on a second thread while the caller renders; every log line (a
    page's build error included) still comes from the caller's thread, in page order, and
    each page's menu lists every page with itself marked."""
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    lines: list[tuple[str, int]] = []
    broken = ReportInputs(drift=pd.DataFrame({"unexpected": [1.0]}))
    build_report(db, tmp_path / "report", broken, log=lambda m: lines.append((m, get_ident())))
    assert {thread for _, thread in lines} == {get_ident()}
    messages = [m for m, _ in lines]
    error = next(i for i, m in enumerate(messages) if m.startswith("models: page not built"))
    assert messages[error + 1].startswith("models.html: 0 chart(s)")
    assert [m.split(":")[0] for m in messages if ".html:" in m] == [
        "index.html" if s == "overview" else f"{s}.html" for s in PAGE_ORDER
    ]
    for page in (tmp_path / "report").glob("*.html"):
        menu = re.findall(r'<a href="([^"]+)" class="(current|)"', page.read_text())
        assert [href for href, _ in menu] == [
            "index.html" if s == "overview" else f"{s}.html" for s in PAGE_ORDER
        ]
        assert [href for href, mark in menu if mark] == [page.name]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.skipif(
    find_chromium() is None, reason="chromium not installed (make test installs it)"
)
def test_readme_screenshots_script_captures_first_screens_without_machine_paths(report, tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "screenshots.py"
    out = tmp_path / "docs"
    done = subprocess.run(
        [sys.executable, str(script), "--report", str(report.out_dir), "--out", str(out),
         "--pages", "overview,segments"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    shots = sorted(p.name for p in out.glob("*.png"))
    assert shots == ["report-overview.png", "report-segments.png"]
    assert all(_png_size(out / name) == (1280, 900) for name in shots)
    machine = str(report.out_dir.parent)  # the warehouse's folder: never on a page
    for page in report.out_dir.glob("*.html"):
        text = page.read_text()
        assert machine not in text and "warehouse.duckdb" in text, page.name
    # a page that could not be built never becomes a README image
    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    build_report(db, tmp_path / "broken", ReportInputs(drift=pd.DataFrame({"x": [1.0]})))
    refused = subprocess.run(
        [sys.executable, str(script), "--report", str(tmp_path / "broken"), "--out", str(out),
         "--pages", "models"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode != 0 and "could not be built" in refused.stderr
