"""Contract-shaped `fct_user_features` and `user_scores` from a seed, for tests and the
benchmark of the segment step without running ingest, dbt and the models first. Behaviour is
deliberately varied (engaged, steady, fading and stalled users, all company sizes and
several industries) so every shipped segment and trigger has members."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from contracts import tracking_plan
from orchestration.segments.schema import FEATURE_COLUMNS, SCORE_COLUMNS

INDUSTRIES = ("software", "finance", "healthcare", "retail", "education", "manufacturing")
SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
PLAN = tracking_plan.load()
MILESTONES = PLAN.milestone_names
_ACTIVE_P = np.array([0.92, 0.6, 0.3, 0.12])  # power, steady, casual, fading
_BREADTH = np.array([5, 3, 2, 1])
_MILESTONE_RATE = np.array([0.6, 0.3, 0.12, 0.04])


def build_frames(
    users: int, days: int, start: date, seed: int = 7
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, scores) for `days` snapshot dates starting at `start`."""
    rng = np.random.default_rng(seed)
    history = 28 + 14  # simulated days before the first snapshot feed the rolling windows
    total = days + history
    kind = rng.choice(4, users, p=[0.15, 0.35, 0.3, 0.2])
    signup = rng.integers(0, total, users)
    churn = np.where(rng.random(users) < 0.25, signup + rng.integers(10, 60, users), 10**6)
    fade_day = np.where(kind == 3, signup + rng.integers(7, 40, users), 10**6)
    day_idx = np.arange(total)
    alive = (day_idx[None, :] >= signup[:, None]) & (day_idx[None, :] < churn[:, None])
    p_active = np.where(
        day_idx[None, :] < fade_day[:, None],
        np.maximum(_ACTIVE_P[kind], 0.5)[:, None],
        _ACTIVE_P[kind][:, None] * 0.3,
    )
    active = alive & (rng.random((users, total)) < p_active)
    active[np.arange(users), np.minimum(signup, total - 1)] = True
    events = np.where(active, rng.poisson(3 + 4 * (kind == 0)[:, None], (users, total)) + 1, 0)
    # milestone k reached on signup + cumulative geometric delays; slow users never finish.
    delays = rng.geometric(_MILESTONE_RATE[kind][:, None], (users, len(MILESTONES)))
    delays[:, 0] = 0
    reached_day = signup[:, None] + np.cumsum(delays, axis=1)
    industry = rng.choice(len(INDUSTRIES), users)
    size = rng.choice(len(SIZES), users, p=[0.35, 0.3, 0.18, 0.12, 0.05])
    paid_day = np.where(
        rng.random(users) < 0.2 + 0.3 * (kind == 0), signup + rng.integers(3, 50, users), 10**6
    )

    cum_active = np.concatenate([np.zeros((users, 1)), np.cumsum(active, axis=1)], axis=1)
    cum_events = np.concatenate([np.zeros((users, 1)), np.cumsum(events, axis=1)], axis=1)
    last_active = np.where(active, day_idx[None, :], -1)
    last_active = np.maximum.accumulate(last_active, axis=1)
    feature_rows, score_rows = [], []
    for t in range(history, total):
        who = np.flatnonzero(alive[:, t])
        if not len(who):
            continue

        def window(cum: np.ndarray, length: int, end: int = t, who: np.ndarray = who) -> np.ndarray:
            return cum[who, end + 1] - cum[who, max(end + 1 - length, 0)]

        snapshot = start + timedelta(days=t - history)
        events_7d = window(cum_events, 7)
        events_prev_7d = window(cum_events, 7, t - 7)
        reached = reached_day[who] <= t
        paid = paid_day[who] <= t
        trend = (events_7d - events_prev_7d) / np.maximum(events_prev_7d, 1)
        since_active = t - last_active[who, t]
        breadth = np.minimum(9, _BREADTH[kind[who]] + (window(cum_active, 28) > 10))
        frame = pd.DataFrame(
            {
                "user_id": [f"u{u:06d}" for u in who],
                "snapshot_date": snapshot,
                "signup_date": [start + timedelta(days=int(s) - history) for s in signup[who]],
                "days_since_signup": t - signup[who],
                "days_since_last_active": since_active,
                "active_days_7d": window(cum_active, 7),
                "active_days_28d": window(cum_active, 28),
                "events_7d": events_7d,
                "events_28d": window(cum_events, 28),
                "sessions_7d": window(cum_active, 7),
                "sessions_28d": window(cum_active, 28),
                "avg_session_minutes_28d": np.round(
                    4 + 3 * (kind[who] == 0) + rng.random(len(who)), 2
                ),
                "feature_breadth_28d": breadth,
                "feature_depth_28d": breadth * 3,
                "milestones_reached": reached.sum(axis=1),
                "onboarding_completion": reached.sum(axis=1) / len(MILESTONES),
                **{f"reached_{m}": reached[:, k] for k, m in enumerate(MILESTONES)},
                "days_to_first_value": np.where(
                    reached[:, -1], reached_day[who, -1] - signup[who], np.nan
                ),
                **{
                    column: reached[:, MILESTONES.index(milestone)].astype(int)
                    for column, milestone in PLAN.milestone_counters
                },
                "support_tickets_28d": 0,
                "support_tickets_total": 0,
                "events_prev_7d": events_prev_7d,
                "activity_trend": trend,
                "plan": np.where(paid, "pro", "free"),
                "is_paid": paid,
                "mrr": np.where(paid, 79.0, 0.0),
                "revenue_to_date": np.where(paid, 79.0, 0.0),
                "industry": [INDUSTRIES[i] for i in industry[who]],
                "company_size": [SIZES[s] for s in size[who]],
                "country": "US",
                "role": "analyst",
                "acquisition_channel": "organic_search",
                "is_active_28d": window(cum_active, 28) > 0,
                "is_churned": window(cum_active, 28) == 0,  # inactivity churn, 28 days
            }
        )
        feature_rows.append(frame)
        churn_p = np.clip(0.1 + 0.05 * since_active - 0.2 * np.clip(trend, -1, 1), 0.01, 0.99)
        ltv = 50 + 400 * paid + 300 * (size[who] >= 3) + 100 * (kind[who] == 0)
        score_rows.append(
            pd.DataFrame(
                {
                    "user_id": frame["user_id"],
                    "score_date": snapshot,
                    "churn_probability": churn_p,
                    "churn_band": np.select(
                        [churn_p >= 0.6, churn_p >= 0.3], ["high", "medium"], "low"
                    ),
                    "ltv_pred": ltv.astype(float),
                    "ltv_band": np.select([ltv >= 700, ltv >= 300], ["high", "medium"], "low"),
                    "conversion_probability": np.where(paid, np.nan, 0.1),
                    "churn_reasons": "inactive_days",
                    "ltv_reasons": "plan",
                    "churn_model_version": "1",
                    "ltv_model_version": "1",
                    "conversion_model_version": "1",
                }
            )
        )
    return pd.concat(feature_rows, ignore_index=True), pd.concat(score_rows, ignore_index=True)


def write_tables(
    conn: duckdb.DuckDBPyConnection, features: pd.DataFrame, scores: pd.DataFrame | None
) -> None:
    """(Re)create main.fct_user_features / main.user_scores with the contract's types."""
    for table, frame, types in (
        ("fct_user_features", features, FEATURE_COLUMNS),
        ("user_scores", scores, SCORE_COLUMNS),
    ):
        conn.execute(f"drop table if exists main.{table}")
        if frame is None:
            continue
        casts = ", ".join(
            f'cast("{c}" as {t}) as "{c}"' for c, t in types.items() if c in frame.columns
        )
        conn.register("_synthetic", frame)
        conn.execute(f"create table main.{table} as select {casts} from _synthetic")
        conn.unregister("_synthetic")
