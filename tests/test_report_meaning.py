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

from orchestration.report import charts
from orchestration.report.charts import segment_colour, segment_scale
from orchestration.report.inputs import ModelVersionInfo, ReportInputs, Warehouse
from orchestration.report.pages import (
    experiments,
    model_scores,
    models,
    onboarding,
    overview,
    retention,
    segments,
)
from orchestration.report.render import Page
from orchestration.segments.config import load_config

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
        and "needs 42 days of history (have 12): 2 weekly training snapshots" in html
    )


def test_candidate_metrics_are_read_from_the_training_run() -> None:
    from orchestration.defs.report import candidate_metrics

    metrics = {"roc_auc": 0.8, "candidate_bg_nbd_roc_auc": 0.83, "candidate_boosted_roc_auc": 0.8,
               "candidate_boosted_brier": 0.1, "baseline_roc_auc": 0.7}  # fmt: skip
    assert candidate_metrics(metrics, {"roc_auc", "brier"}) == {
        "bg_nbd": {"roc_auc": 0.83},
        "boosted": {"roc_auc": 0.8, "brier": 0.1},
    }


def test_the_models_page_reads_a_training_run_as_ml_tracking_logs_it() -> None:
    from orchestration.defs.report import run_metrics

    # the shape ml/tracking.py logs: the winner unprefixed, each candidate prefixed, no
    # baseline_*; the baseline is the linear candidate
    metrics = {"roc_auc": 0.977, "brier": 0.05, "candidate_linear_roc_auc": 0.976,
               "candidate_linear_brier": 0.06, "candidate_boosted_roc_auc": 0.977,
               "candidate_boosted_brier": 0.05, "label_train_base_rate": 0.2,
               "challenger_roc_auc": 0.977, "promoted": 1.0}  # fmt: skip
    own, baseline, candidates = run_metrics(metrics)
    assert own == {"roc_auc": 0.977, "brier": 0.05}
    assert baseline == {"roc_auc": 0.976, "brier": 0.06}
    assert set(candidates) == {"linear", "boosted"}
    version = ModelVersionInfo("segflow-churn", "1", None, "champion", own, baseline, candidates)
    table = models.versions_table(ReportInputs(model_versions=[version]))
    assert table[["model_value", "baseline_value", "champion"]].values.tolist() == [[0.977, 0.976, True]]  # fmt: skip


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


def test_partly_evaluated_segments_are_a_band_not_full_height_nor_dropped() -> None:
    d0, d1 = START, START + timedelta(days=1)
    user_segments = pd.DataFrame(
        {"user_id": ["a", "b", "c", "a", "b", "c"], "segment_date": [d0, d0, d0, d1, d1, d1],
         "segments": [["smb"], ["smb", "churn_risks"], [], ["smb"], ["smb"], []]}
    )  # fmt: skip
    coverage = pd.DataFrame(
        [(d0, "smb", 3, 0, []), (d0, "churn_risks", 3, 1, ["churn_band"]),
         (d0, "high_ltv", 3, 3, ["ltv_band"]), (d1, "smb", 3, 0, []),
         (d1, "churn_risks", 3, 2, ["churn_band"]), (d1, "high_ltv", 3, 3, ["ltv_band"])],
        columns=["segment_date", "segment", "population", "undetermined", "null_columns"],
    )  # fmt: skip
    wh = _warehouse(user_segments=user_segments, segment_coverage=coverage)
    frame = segments.sizes(wh)
    got = frame.set_index(["segment", "day"])[["users", "undetermined"]]
    # high_ltv has no members and nobody could be decided: kept, at 0 with a band up to 3
    assert got.loc[("high_ltv", pd.Timestamp(d1))].tolist() == [0, 3]
    assert got.loc[("churn_risks", pd.Timestamp(d1))].tolist() == [0, 2]
    assert got.loc[("churn_risks", pd.Timestamp(d0))].tolist() == [1, 1]
    assert got.loc[("smb", pd.Timestamp(d1))].tolist() == [2, 0]
    chart = segments.size_chart(frame)
    spec = chart.chart.to_dict()
    layers = spec["spec"]["layer"]
    assert [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers] == ["line", "area"]  # fmt: skip
    assert layers[1]["encoding"]["y2"]["field"] == "upper"
    assert "churn_risks 2 undecided" in chart.note and "high_ltv 3 undecided" in chart.note
    assert "smb" not in chart.note
    partly = segments.partly_evaluated(frame)
    assert partly[["segment", "days_affected", "members", "undecided", "null_columns"]].values.tolist() == [
        ["churn_risks", 2, 0, 2, "churn_band"], ["high_ltv", 2, 0, 3, "ltv_band"],
    ]  # fmt: skip
    html = segments.build(wh).html([], datetime.now(UTC), "test")
    assert "Partly evaluated segments" in html


def test_reasons_are_counted_only_in_the_band_campaigns_act_on_and_read_in_words() -> None:
    day = START + timedelta(days=3)
    scores = pd.DataFrame(
        [("a", day, "high", "inactive_14d,few_features_used", "low", "plan_pro"),
         ("b", day, "high", "inactive_14d", "high", "seats_high"),
         ("c", day, "low", "inactive_14d,activity_down_50pct", "high", "seats_high"),
         ("d", day - timedelta(days=1), "high", "activity_down_50pct", None, None)],
        columns=["user_id", "score_date", "churn_band", "churn_reasons", "ltv_band", "ltv_reasons"],
    )  # fmt: skip
    page = Page("models", "Models", "")
    model_scores.action_reasons(page, _warehouse(user_scores=scores))
    chart = _chart(page, "Why users are in the high band")
    got = chart.data[["meaning", "reason", "users"]].values.tolist()
    assert got == [
        ["raises churn risk", "inactive 14+ days", 2],  # c is low band; d is an older day
        ["raises churn risk", "few features used", 1],
        ["raises expected value", "seats high", 2],
    ]


def test_configured_segments_get_distinct_colours_stable_from_their_names(
    tmp_path, monkeypatch
) -> None:
    shipped = load_config().segment_names
    colours = {name: segment_colour(name) for name in shipped}
    assert len(set(colours.values())) == len(shipped) == 12  # plain hashing gave 9 for these
    # the same set of names in any order gives the same colours; a new segment moves at most
    # the segments its slot collides with
    assert charts.assign_colours(reversed(shipped)) == colours
    more = charts.assign_colours([*shipped, "win_back"])
    moved = [n for n in shipped if more[n] != colours[n]]
    assert len(set(more.values())) == 13 and len(moved) <= 1
    # beyond the palette: still a colour for everyone, the first 16 distinct
    many = charts.assign_colours([f"s{i:02d}" for i in range(20)])
    assert len(set(many.values())) == len(charts.PALETTE)
    # a renamed file is read from SEGFLOW_SEGMENTS_FILE; an unknown name keeps its hash slot
    path = tmp_path / "segments.yml"
    path.write_text("segments:\n  - {name: alpha, rule: 'true'}\n  - {name: beta, rule: 'true'}\n")
    monkeypatch.setenv("SEGFLOW_SEGMENTS_FILE", str(path))
    assert segment_colour("alpha") != segment_colour("beta")
    assert segment_colour("churn_risks") == charts.PALETTE[charts._slot("churn_risks")]
