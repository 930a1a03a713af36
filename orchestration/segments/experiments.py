"""`fct_experiment_results`: outcome rates per experiment x segment x variant with Wilson
intervals and a pooled two-proportion z-test of each variant against the control holdout.

A user enters an experiment on the first day `user_segments` shows them in it (exposure);
their segment is the primary segment on that day. Outcomes, as of `as_of`:
- onboarding completion: reached every milestone by as_of;
- days to first value: median over users who reached it;
- 28-day retention: among users exposed at least 28 days before as_of, active in the 7 days
  ending exposure + 28 (a user absent from the features that day has churned);
- conversion to paid: among users not paying at exposure, paying at some day up to as_of.
The verdict is on onboarding completion; it is only given when both arms have at least
`min_sample` users. `users_per_day` is the arm's recent intake read from the exposure dates
(the last `RATE_WINDOW_DAYS` days, leaving out the experiment's first day, when everyone
already there enters at once), so "about N more days" can be said from one day's table.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd

from orchestration.segments.config import ALL_SEGMENTS, CONTROL, SegmentConfig
from orchestration.segments.stats import two_proportion_z_test, wilson_interval
from orchestration.segments.tables import ensure_tables
from orchestration.settings import Settings

_OUTCOMES = """
with exposure as (
    select user_id, experiment, arg_min(experiment_variant, segment_date) as variant,
           arg_min(coalesce(primary_segment, '(none)'), segment_date) as segment,
           min(segment_date) as exposed_at
    from main.user_segments
    where experiment in (select unnest($experiments::VARCHAR[])) and segment_date <= $as_of
    group by user_id, experiment
),
outcome as (
    select e.user_id, e.experiment,
           coalesce(bool_or(f.onboarding_completion >= 1), false) as completed,
           max(f.days_to_first_value) as days_to_first_value,
           coalesce(bool_or(f.is_paid and f.snapshot_date = e.exposed_at), false) as paid_at_exposure,
           coalesce(bool_or(f.is_paid), false) as paid_by_as_of,
           coalesce(bool_or(f.snapshot_date = e.exposed_at + 28 and f.active_days_7d > 0), false)
               as retained_28d
    from exposure e
    left join main.fct_user_features f
      on f.user_id = e.user_id and f.snapshot_date between e.exposed_at and $as_of
    group by e.user_id, e.experiment
)
select e.experiment, e.segment, e.variant, e.user_id, e.exposed_at, o.completed, o.days_to_first_value,
       e.exposed_at + 28 <= $as_of as retention_eligible, o.retained_28d,
       not o.paid_at_exposure as conversion_eligible, o.paid_by_as_of as converted
from exposure e join outcome o using (user_id, experiment)
"""

RATE_WINDOW_DAYS = 14

RESULT_COLUMNS = [
    "experiment",
    "segment",
    "variant",
    "users",
    "users_per_day",
    "onboarding_completion_rate",
    "onboarding_completion_ci_low",
    "onboarding_completion_ci_high",
    "median_days_to_first_value",
    "retention_28d_users",
    "retention_28d",
    "retention_28d_ci_low",
    "retention_28d_ci_high",
    "conversion_users",
    "conversion_rate",
    "conversion_ci_low",
    "conversion_ci_high",
    "z_score",
    "p_value",
    "retention_28d_p_value",
    "conversion_p_value",
    "verdict",
    "as_of",
]


def experiment_results(
    conn: duckdb.DuckDBPyConnection,
    config: SegmentConfig,
    as_of: date,
    min_sample: int = Settings.experiment_min_sample,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Compute and replace `fct_experiment_results` as of `as_of`; returns the table."""
    ensure_tables(conn)
    experiments = [e.name for e in config.experiments]
    users = conn.execute(_OUTCOMES, {"experiments": experiments or [""], "as_of": as_of}).df()
    rows: list[dict[str, object]] = []
    for experiment, per_experiment in users.groupby("experiment", sort=True):
        window = intake_window(per_experiment["exposed_at"].min(), as_of)
        scopes = [(ALL_SEGMENTS, per_experiment)] + sorted(per_experiment.groupby("segment"))
        for segment, scope in scopes:
            arms = {v: _arm(frame, window) for v, frame in scope.groupby("variant")}
            control = arms.get(CONTROL)
            for variant, arm in sorted(arms.items()):
                rows.append(
                    _row(experiment, segment, variant, arm, control, min_sample, alpha, as_of)
                )
    result = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    conn.register("_experiment_results", result)
    conn.execute(
        "create or replace table main.fct_experiment_results as select * from _experiment_results"
    )
    conn.unregister("_experiment_results")
    return result


def intake_window(first_exposure: object, as_of: date) -> tuple[date, int] | None:
    """The first day and length of the window the intake rate is read over: up to
    `RATE_WINDOW_DAYS` days ending `as_of`, after the experiment's first day; None when the
    experiment is only one day old."""
    start = max(pd.Timestamp(first_exposure).date() + timedelta(days=1),
                as_of - timedelta(days=RATE_WINDOW_DAYS - 1))  # fmt: skip
    days = (as_of - start).days + 1
    return (start, days) if days > 0 else None


def _arm(frame: pd.DataFrame, window: tuple[date, int] | None) -> dict[str, object]:
    retention = frame[frame["retention_eligible"]]
    conversion = frame[frame["conversion_eligible"]]
    per_day = None
    if window is not None:
        exposed = pd.to_datetime(frame["exposed_at"]).dt.date
        per_day = round(int((exposed >= window[0]).sum()) / window[1], 3)
    return {
        "n": len(frame),
        "per_day": per_day,
        "completed": int(frame["completed"].sum()),
        "median_dtfv": frame["days_to_first_value"].median(),
        "retention_n": len(retention),
        "retained": int(retention["retained_28d"].sum()),
        "conversion_n": len(conversion),
        "converted": int(conversion["converted"].sum()),
    }


def _rate(successes: int, n: int) -> tuple[float | None, float | None, float | None]:
    if n == 0:
        return (None, None, None)
    low, high = wilson_interval(successes, n)
    return (successes / n, low, high)


def _row(
    experiment: str,
    segment: str,
    variant: str,
    arm: dict,
    control: dict | None,
    min_sample: int,
    alpha: float,
    as_of: date,
) -> dict[str, object]:
    completion = _rate(arm["completed"], arm["n"])
    retention = _rate(arm["retained"], arm["retention_n"])
    conversion = _rate(arm["converted"], arm["conversion_n"])
    z = p = p_retention = p_conversion = None
    if control is not None and variant != CONTROL:
        z, p = two_proportion_z_test(arm["completed"], arm["n"], control["completed"], control["n"])
        p_retention = two_proportion_z_test(
            arm["retained"], arm["retention_n"], control["retained"], control["retention_n"]
        )[1]
        p_conversion = two_proportion_z_test(
            arm["converted"], arm["conversion_n"], control["converted"], control["conversion_n"]
        )[1]
    if variant == CONTROL:
        verdict = "control"
    elif control is None:
        verdict = "no_control"
    elif arm["n"] < min_sample or control["n"] < min_sample:
        verdict = "insufficient_sample"
    elif p is None or pd.isna(p) or p >= alpha:
        verdict = "no_significant_difference"
    else:
        verdict = "better_than_control" if z > 0 else "worse_than_control"
    values = [
        experiment,
        segment,
        variant,
        arm["n"],
        arm["per_day"],
        *completion,
        arm["median_dtfv"],
        arm["retention_n"],
        *retention,
        arm["conversion_n"],
        *conversion,
        z,
        p,
        p_retention,
        p_conversion,
        verdict,
        as_of,
    ]
    return dict(zip(RESULT_COLUMNS, values, strict=True))
