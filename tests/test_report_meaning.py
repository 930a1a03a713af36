"""What the report's charts mean, on small hand-made warehouses: retention leaves out what was
never observed, the funnel starts from the customers observed at step 1, revenue retention
follows its stated definition, entered/exited separates the first load, a segment keeps its
colour, experiments say their verdict in words with the relative lift's CI, the Models page
gates on each kind's primary metric and says when a model is missing, and the drift chart
holds the feature_drift check's own numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from orchestration.report.charts import segment_colour, segment_scale
from orchestration.report.inputs import ModelVersionInfo, ReportInputs, Warehouse
from orchestration.report.pages import (
    experiments,
    models,
    onboarding,
    overview,
    retention,
    segments,
)

START = date(2026, 3, 2)  # first day of data (a Monday)


def _warehouse(**tables: pd.DataFrame) -> Warehouse:
    conn = duckdb.connect()
    conn.execute("create schema raw")
    conn.execute("create table raw.events as select ?::date as _partition_date", [START])
    conn.execute("insert into raw.events values (?)", [START + timedelta(days=40)])
    for name, frame in tables.items():
        conn.register("_t", frame)
        conn.execute(f"create table main.{name} as select * from _t")
        conn.unregister("_t")
    return Warehouse(conn)


def _chart(page, title_part: str):
    found = [c for c in page.charts if title_part in c.title]
    assert found, [c.title for c in page.charts]
    return found[0]


def test_retention_leaves_out_unobserved_cohorts_and_marks_size_and_maturity() -> None:
    rows = []
    for cohort, size, periods in (
        (START - timedelta(days=7), 50, 6),
        (START, 40, 5),
        (START + timedelta(days=28), 30, 2),
    ):
        for p in range(periods):
            early_unobserved = cohort < START and p < 2
            rows.append(
                (
                    "week",
                    cohort,
                    p,
                    size,
                    0 if early_unobserved else size // 2,
                    0.0 if early_unobserved else 0.5,
                )
            )
    frame = pd.DataFrame(rows, columns=["cohort_grain", "cohort_start", "period_number", "cohort_size", "retained_users", "retention_rate"])  # fmt: skip
    page = retention.build(_warehouse(fct_cohort_retention=frame))
    data = _chart(page, "Weekly cohort retention").data
    assert set(pd.to_datetime(data["cohort_start"]).dt.date) == {START, START + timedelta(days=28)}
    assert not (data["retention_rate"] == 0).any()  # the pre-window cohort's unobserved 0s are gone
    observed = retention.observed_cohorts(frame, START)
    assert set(observed["cohort"]) == {"2026-03-02 (n=40)", "2026-03-30 (n=30) immature"}


def test_revenue_retention_is_against_month_one_with_a_minimum_base_and_bounded() -> None:
    def rows(cohort, revenues, paying):
        return [("month", cohort, p, 100, paying[p], r) for p, r in enumerate(revenues)]

    frame = pd.DataFrame(
        rows(date(2026, 2, 1), [5, 100, 90], [1, 20, 18])  # pre-window: left out
        + rows(date(2026, 3, 1), [2, 100, 80, 500], [1, 10, 8, 9])  # month 0 is trials
        + rows(date(2026, 4, 1), [1, 10, 50], [1, 2, 3]),  # 2 paying in month 1: too small a base
        columns=["cohort_grain", "cohort_start", "period_number", "cohort_size", "paying_users", "revenue"],
    )  # fmt: skip
    rv = retention.revenue_retention(frame, START - timedelta(days=1))
    assert list(rv["cohort"].unique()) == ["2026-03"]
    assert list(rv["period_number"]) == [1, 2, 3]
    assert list(rv["nrr"]) == [1.0, 0.8, 5.0]
    assert rv["nrr_drawn"].max() == retention.NRR_CAP


def test_funnel_starts_from_customers_observed_at_step_one() -> None:
    rows = []
    for week, counts in (("2026-02-23", [500, 100, 50]), ("2026-03-02", [60, 30, 12]), ("2026-03-09", [40, 20, 8])):  # fmt: skip
        for step, (m, n) in enumerate(
            zip(["signed_up", "project", "invited"], counts, strict=True), 1
        ):
            rows.append(("signup_week", week, step, m, n, None))
    rows += [("all", "all", 1, "signed_up", 600, 1.0)]
    f = pd.DataFrame(rows, columns=["dimension", "dimension_value", "step_number", "milestone", "users_reached", "median_days_to_reach"])  # fmt: skip
    steps = onboarding.observed_funnel(f, START)
    assert list(steps["users_reached"]) == [100, 50, 20]  # 60 + 40 observed at step 1, not 600
    assert list(steps["pct_of_step_1"]) == [1.0, 0.5, 0.2]
    assert list(steps["drop_off_users"]) == [0, 50, 30]
    assert list(steps["drop_off_pct"]) == [0.0, 0.5, 0.6]
    page = onboarding.build(_warehouse(fct_onboarding_funnel=f))
    assert "100 customers observed entering step 1" in page.charts[0].title


def test_movements_mark_the_first_load_apart_and_colours_follow_names() -> None:
    day0 = START
    segments_frame = pd.DataFrame({"segment_date": [day0, day0 + timedelta(days=1)], "user_id": ["a", "b"], "segments": [["x"], ["x"]]})  # fmt: skip
    membership = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d"],
            "segment": ["power", "power", "power", "trial"],
            "entered_at": [day0, day0, day0 + timedelta(days=2), day0 + timedelta(days=2)],
            "exited_at": [None, day0 + timedelta(days=3), None, None],
        }
    )
    wh = _warehouse(user_segments=segments_frame, segment_membership=membership)
    moves = segments.movements(wh)
    first = moves[moves["movement"] == segments.FIRST_LOAD]
    assert first[["segment", "users"]].values.tolist() == [["power", 2]]
    entered = moves[moves["movement"] == "entered"]
    assert sorted(entered["users"]) == [1, 1] and (moves["movement"] == "exited").sum() == 1
    chart = segments.movement_chart(moves)
    assert "power 2" in chart.note and "first load" in chart.note
    assert segments.FIRST_LOAD not in set(
        chart.chart.to_dict()["datasets"].popitem()[1][0].values()
    )
    assert segment_colour("power") == segment_colour("power")
    one = segment_scale(["power", "trial"]).to_dict()
    two = segment_scale(["trial", "zz_new", "power"]).to_dict()
    assert dict(zip(one["domain"], one["range"], strict=True))["power"] == dict(zip(two["domain"], two["range"], strict=True))["power"]  # fmt: skip


def test_experiment_verdict_in_words_and_relative_lift_ci() -> None:
    lift, low, high = experiments.relative_lift(0.6, 400, 0.5, 400)
    assert lift == pytest.approx(0.2, abs=1e-4) and low < lift < high
    # by hand: se = sqrt(0.4 / 240 + 0.5 / 200) = 0.06455; exp(ln 1.2 -/+ 1.96 se) - 1
    assert (low, high) == (pytest.approx(0.0574, abs=1e-4), pytest.approx(0.3618, abs=1e-4))
    history = pd.DataFrame(
        [
            ("onb", "all", "control", 72, 2.0, 0.5, "control", date(2026, 4, 5)),
            ("onb", "all", "tutorial", 560, 15.0, 0.6, "insufficient_sample", date(2026, 4, 5)),
            ("onb", "new", "control", 30, 0.0, 0.5, "control", date(2026, 4, 5)),
            ("onb", "new", "tutorial", 90, 3.0, 0.6, "insufficient_sample", date(2026, 4, 5)),
        ],
        columns=["experiment", "segment", "variant", "users", "users_per_day", "onboarding_completion_rate", "verdict", "as_of"],
    )  # fmt: skip
    e = experiments.arms(history, min_sample=100)
    words = e.set_index(["segment", "variant"])["in_words"]
    # (100 - 72) / 2 a day = 14 days
    assert words["all", "tutorial"] == "no verdict yet: control has 72 of the 100 needed: about 14 more days at today's rate"  # fmt: skip
    # both arms short; control gains no one, the variant needs ceil(10 / 3) = 4 days
    assert words["new", "tutorial"] == (
        "no verdict yet: control has 30 of the 100 needed: no one joined it lately, so it will "
        "not get there at today's rate; tutorial has 90 of the 100 needed: about 4 more days at "
        "today's rate"
    )


def _versions(kind: str, metric: str, values: dict[int, float], champion: int, baseline: float):
    return [
        ModelVersionInfo(f"segflow-{kind}", str(v), None, "champion" if v == champion else "", {metric: m, "mae": 1.0}, {metric: baseline})
        for v, m in values.items()
    ]  # fmt: skip


def test_models_gate_on_the_primary_metric_flag_a_trailing_champion_and_say_no_model_yet() -> None:
    inputs = ReportInputs(
        model_versions=_versions("churn", "roc_auc", {1: 0.936, 2: 0.93}, 1, 0.942)
        + _versions("ltv", "normalized_gini", {1: 0.4, 2: 0.5}, 1, 0.2)
        + [
            ModelVersionInfo(
                "segflow-conversion",
                "1",
                None,
                "champion",
                {"roc_auc": 0.8},
                {"roc_auc": 0.7},
                {"boosted": {"roc_auc": 0.8}, "bg_nbd": {"roc_auc": 0.83}},
            )
        ]
    )
    features = pd.DataFrame({"snapshot_date": [START + timedelta(days=i) for i in range(12)]})
    page = models.build(_warehouse(fct_user_features=features), inputs)
    html = page.html([page], datetime(2026, 4, 1, tzinfo=UTC), "test")
    assert "churn: champion v1 trails its baseline" in html and "roc_auc 0.936 vs 0.942" in html
    assert "ltv: champion v1 trails v2" in html and "normalized_gini 0.400 vs 0.500" in html
    assert "conversion: champion v1 trails candidate bg_nbd" in html
    assert "roc_auc 0.800 vs 0.830" in html and "beats the champion" in html
    ltv = _chart(page, "segflow-ltv")
    assert "normalized_gini" in ltv.title and set(ltv.data["metric"]) == {"normalized_gini"}


def test_no_model_yet_says_the_history_it_needs() -> None:
    features = pd.DataFrame({"snapshot_date": [START + timedelta(days=i) for i in range(12)]})
    page = models.build(_warehouse(fct_user_features=features), ReportInputs())
    html = page.html([page], datetime(2026, 4, 1, tzinfo=UTC), "test")
    assert (
        "conversion: no model yet" in html
        and "needs more than 28 days of history (have 12)" in html
    )


def test_candidate_metrics_are_read_from_the_training_run() -> None:
    from orchestration.defs.report import candidate_metrics

    metrics = {"roc_auc": 0.8, "candidate_bg_nbd_roc_auc": 0.83, "candidate_boosted_roc_auc": 0.8,
               "candidate_boosted_brier": 0.1, "baseline_roc_auc": 0.7}  # fmt: skip
    assert candidate_metrics(metrics, {"roc_auc", "brier"}) == {
        "bg_nbd": {"roc_auc": 0.83},
        "boosted": {"roc_auc": 0.8, "brier": 0.1},
    }


def test_drift_chart_holds_the_checks_numbers() -> None:
    from orchestration.defs.metadata import preview
    from orchestration.defs.report import markdown_table

    check_table = pd.DataFrame({"column": ["events_28d", "plan"], "psi": [0.3141, 0.0123], "drifting": [True, False]})  # fmt: skip
    parsed = markdown_table(preview(check_table, rows=40).value)
    assert list(parsed["column"]) == ["events_28d", "plan"]
    assert pd.to_numeric(parsed["psi"]).tolist() == [0.3141, 0.0123]


def test_overview_shows_a_failed_checks_message() -> None:
    checks = pd.DataFrame(
        [{"asset": "raw/events", "check": "gx_suite", "severity": "ERROR", "blocking": True, "passed": False,
          "message": "message_id unique: found 12 duplicates", "when_utc": None}]
    )  # fmt: skip
    page = overview.build(_warehouse(), ReportInputs(checks=checks), datetime.now(UTC))
    html = page.html([page], datetime.now(UTC), "test")
    assert "message_id unique: found 12 duplicates" in html


def test_segments_page_shows_which_rule_arm_put_members_there() -> None:
    reasons = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d"],
            "segment_date": [START] * 4,
            "segment": ["churn_risks", "churn_risks", "churn_risks", "smb"],
            "reason": [
                "churn_band == 'high'",
                "churn_band == 'high'",
                "activity_trend <= -0.5",
                "x",
            ],
        }
    )
    chart = segments.reasons_chart(_warehouse(segment_reasons=reasons))
    assert chart.data[["segment", "reason", "users"]].values.tolist() == [
        ["churn_risks", "churn_band == 'high'", 2],
        ["churn_risks", "activity_trend <= -0.5", 1],
    ]


def test_severity_and_blocking_read_as_one_label() -> None:
    assert overview.check_kind("ERROR", True) == "ERROR, blocks downstream"
    assert overview.check_kind("ERROR", False) == "ERROR, does not block"
    assert overview.check_kind("WARN", True) == "WARN, never blocks"


def test_segment_funnel_rates_are_of_members_observed_at_step_one() -> None:
    f = pd.DataFrame(
        {
            "segment": ["a", "a", "a", "b", "b", "b"],
            "step_number": [1, 2, 3, 1, 2, 3],
            "users_in_segment": [100, 100, 100, 10, 10, 10],
            "users_reached": [40, 20, 10, 0, 0, 0],
        }
    )
    rates = onboarding.segment_rates(f)
    assert rates["pct_of_step_1"].tolist() == [1.0, 0.5, 0.25]  # b: nobody observed, left out
