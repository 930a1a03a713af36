"""Contract-shaped input tables for tests, the benchmark and a no-upstream demo of the sync.

Creates `user_segments`, `user_scores`, `segment_membership`, `user_triggers` exactly as
docs/contracts.md types them, from DataFrames or from a seeded synthetic population.
"""

from __future__ import annotations

import json
import random
from datetime import date

import duckdb
import pandas as pd

from contracts import marts

DDL = {
    "user_segments": """create or replace table main.user_segments (user_id VARCHAR,
        segment_date DATE, segments VARCHAR[], primary_segment VARCHAR, onboarding_flow VARCHAR,
        experiment VARCHAR, experiment_variant VARCHAR, next_block VARCHAR)""",
    "user_scores": marts.ddl("main.user_scores", marts.SCORE_COLUMNS, "create or replace table"),
    "segment_membership": """create or replace table main.segment_membership (user_id VARCHAR,
        segment VARCHAR, entered_at DATE, exited_at DATE)""",
    "user_triggers": """create or replace table main.user_triggers (user_id VARCHAR,
        trigger VARCHAR, fired_at DATE, context VARCHAR)""",
}
COLUMNS = {
    "user_segments": [
        "user_id",
        "segment_date",
        "segments",
        "primary_segment",
        "onboarding_flow",
        "experiment",
        "experiment_variant",
        "next_block",
    ],
    "user_scores": list(marts.SCORE_COLUMNS),
    "segment_membership": ["user_id", "segment", "entered_at", "exited_at"],
    "user_triggers": ["user_id", "trigger", "fired_at", "context"],
}


def write_inputs(conn: duckdb.DuckDBPyConnection, **frames: pd.DataFrame) -> None:
    """(Re)create each named contract table from its DataFrame (missing columns -> NULL)."""
    for table, frame in frames.items():
        if table not in DDL:
            raise ValueError(f"unknown input table {table!r}; expected one of {sorted(DDL)}")
        conn.execute(DDL[table])
        if frame is None or frame.empty:
            continue
        data = frame.reindex(columns=COLUMNS[table])
        conn.register("_frame", data)
        conn.execute(f"insert into main.{table} select * from _frame")
        conn.unregister("_frame")


SEGMENTS = ("new_user", "activated", "power_user", "at_risk", "trial", "high_ltv")


def synthetic_inputs(n_users: int, as_of: date, seed: int = 7) -> dict[str, pd.DataFrame]:
    """A plausible population for one day: segments, scores, entries today, a few triggers."""
    rng = random.Random(seed)
    seg_rows, score_rows, member_rows, trigger_rows = [], [], [], []
    for i in range(n_users):
        user_id = f"user_{i:06d}"
        segments = sorted(rng.sample(SEGMENTS, rng.randint(1, 3)))
        seg_rows.append(
            {
                "user_id": user_id,
                "segment_date": as_of,
                "segments": segments,
                "primary_segment": segments[0],
                "onboarding_flow": f"flow_{segments[0]}",
                "experiment": "onboarding_v2",
                "experiment_variant": rng.choice(["control", "treatment"]),
                "next_block": rng.choice(
                    ["invite_teammate", "connect_integration", "create_report"]
                ),
            }
        )
        churn = rng.random()
        score_rows.append(
            {
                "user_id": user_id,
                "score_date": as_of,
                "churn_probability": churn,
                "churn_band": "high" if churn > 0.6 else "medium" if churn > 0.3 else "low",
                "ltv_pred": rng.uniform(0, 900),
                "ltv_band": rng.choice(["low", "mid", "high"]),
                "conversion_probability": None if rng.random() < 0.3 else rng.random(),
                "churn_reasons": "low_activity,no_teammates,support_tickets",
                "ltv_reasons": "plan,seats",
                "churn_model_version": "3",
                "ltv_model_version": "2",
                "conversion_model_version": "1",
            }
        )
        if rng.random() < 0.2:
            member_rows.append(
                {
                    "user_id": user_id,
                    "segment": segments[-1],
                    "entered_at": as_of,
                    "exited_at": None,
                }
            )
        if rng.random() < 0.05:
            trigger_rows.append(
                {
                    "user_id": user_id,
                    "trigger": "trial_ending",
                    "fired_at": as_of,
                    "context": json.dumps({"days_left": rng.randint(1, 7)}),
                }
            )
    return {
        "user_segments": pd.DataFrame(seg_rows),
        "user_scores": pd.DataFrame(score_rows),
        "segment_membership": pd.DataFrame(member_rows, columns=COLUMNS["segment_membership"]),
        "user_triggers": pd.DataFrame(trigger_rows, columns=COLUMNS["user_triggers"]),
    }
