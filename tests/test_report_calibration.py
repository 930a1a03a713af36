"""The Models page's churn calibration: every scored day with an observed outcome counts (the
training days are passed as literal dates so DuckDB can skip the other days), and repeated
builds over tied scores give the same deciles (ties are cut by a hash of user and day; DuckDB's
own order among ties varied at 100k x 180 but not at this size, so that part cannot fail here)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pandas as pd

from orchestration.report.inputs import Warehouse
from orchestration.report.pages.model_scores import calibration
from orchestration.report.render import Page

START = date(2026, 5, 4)


def _warehouse(threads: int) -> duckdb.DuckDBPyConnection:
    """12 scored days x 400 users; outcomes observed on 5 of them (the first and last scored
    day among them); scores in 4 tied values, so ties cross every decile boundary."""
    conn = duckdb.connect(config={"threads": threads})
    users = [f"u{i:04d}" for i in range(400)]
    days = [START + timedelta(days=d) for d in range(12)]
    scores = pd.DataFrame(
        [(u, d, (i % 4) / 4) for d in days for i, u in enumerate(users)],
        columns=["user_id", "score_date", "churn_probability"],
    )
    observed = [days[0], days[3], days[5], days[8], days[11]]
    labels = pd.DataFrame(
        [(u, d, (i * 7 + d.day) % 3 == 0) for d in observed for i, u in enumerate(users)],
        columns=["user_id", "snapshot_date", "churned_next_window"],
    )
    for name, frame in (("user_scores", scores), ("ml_churn_training", labels)):
        conn.register("_frame", frame)
        conn.execute(f"create table main.{name} as select * from _frame")
        conn.unregister("_frame")
    return conn


def _deciles(threads: int) -> pd.DataFrame:
    page = Page("models", "Models", "")
    calibration(page, Warehouse(_warehouse(threads)))
    return page.charts[0].data


def test_every_observed_day_counts_and_builds_repeat():
    one = _deciles(1)
    assert one["users"].sum() == 5 * 400  # the first and the last observed day included
    assert one["churned"].sum() == sum(
        (i * 7 + d.day) % 3 == 0
        for d in (START + timedelta(days=k) for k in (0, 3, 5, 8, 11))
        for i in range(400)
    )
    for _ in range(3):
        pd.testing.assert_frame_equal(_deciles(4), one)
