"""Small synthetic marts in the contract schema with a known signal, for tests and smoke runs.

Not the demo generator: just enough structure (a latent engagement that drives features,
churn, revenue and upgrades) to check that models learn, reason codes point the right way
and scoring covers every user, without running ingest and dbt.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from contracts import tracking_plan

PLAN = tracking_plan.load()
PLANS = np.array(["free", "trial", "pro", "enterprise"])
PLAN_MRR = {"free": 0.0, "trial": 0.0, "pro": 49.0, "enterprise": 399.0}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def synthetic_marts(
    n_users: int = 600, n_weeks: int = 8, seed: int = 0, start: date = date(2025, 1, 6)
) -> dict[str, pd.DataFrame]:
    """Weekly (Monday) snapshots for `n_users`; returns `fct_user_features`, the three training
    marts and `truth` (true churn/conversion probability and expected revenue per row)."""
    rng = np.random.default_rng(seed)
    users = np.array([f"u{i:05d}" for i in range(n_users)])
    engagement = rng.normal(0, 1, n_users)
    plan = rng.choice(PLANS, n_users, p=[0.4, 0.2, 0.3, 0.1])
    industry = rng.choice(["software", "retail", "finance", "health"], n_users)
    size = rng.choice(["1-10", "11-50", "51-200", "201-1000", "1000+"], n_users)
    signup = np.array([start - timedelta(days=int(d)) for d in rng.integers(1, 120, n_users)])
    frames = []
    active_total = rng.poisson(20 * _sigmoid(engagement)) + 1
    purchases = np.zeros(n_users)
    for week in range(n_weeks):
        snapshot = start + timedelta(weeks=week)
        engagement = 0.85 * engagement + rng.normal(0, 0.5, n_users)
        activity = _sigmoid(engagement)
        active_7 = rng.binomial(7, activity)
        active_prev = rng.binomial(7, _sigmoid(engagement + rng.normal(0, 0.4, n_users)))
        events_7 = active_7 * rng.poisson(5, n_users)
        events_prev = active_prev * rng.poisson(5, n_users)
        teammate = rng.random(n_users) < _sigmoid(engagement + 0.3)
        first_value = rng.random(n_users) < _sigmoid(engagement + 0.8)
        integrations = rng.poisson(np.exp(0.4 * engagement - 0.5))
        days_inactive = np.where(
            active_7 > 0, rng.integers(0, 3, n_users), rng.integers(7, 30, n_users)
        )
        paid = np.isin(plan, ["pro", "enterprise"])
        churn_logit = (
            -1.2
            - 1.4 * engagement
            - 0.8 * teammate
            - 0.6 * first_value
            + 0.06 * days_inactive
            - 0.5 * paid
        )
        churn_p = _sigmoid(churn_logit)
        convert_p = np.where(paid, 0.0, _sigmoid(-2.2 + 1.2 * engagement + 0.8 * teammate))
        mrr = np.array([PLAN_MRR[p] for p in plan])
        tenure = np.array([(snapshot - s).days for s in signup])
        active_total = active_total + active_7
        purchases = purchases + paid * (rng.random(n_users) < 0.25)
        first_active = np.maximum(tenure - rng.integers(0, 5, n_users), days_inactive)
        mean_gap = np.where(
            active_total > 1,
            (first_active - days_inactive) / np.maximum(active_total - 1, 1),
            np.nan,
        )
        expected_revenue = 3 * mrr * (1 - churn_p) + convert_p * 3 * 49.0
        frames.append(
            pd.DataFrame(
                {
                    "user_id": users,
                    "snapshot_date": snapshot,
                    "signup_date": signup,
                    "days_since_signup": [(snapshot - s).days for s in signup],
                    "days_since_last_active": days_inactive,
                    "days_since_first_active": first_active,
                    "tenure_bucket": pd.cut(
                        tenure,
                        [-1, 6, 27, 89, 364, 10**6],
                        labels=["0-6d", "7-27d", "28-89d", "90-364d", "365d+"],
                    ).astype(str),
                    "is_new_account": tenure < 28,
                    "active_days_total": active_total,
                    "purchases_total": purchases,
                    "days_since_first_purchase": np.where(purchases > 0, tenure // 2, np.nan),
                    "days_since_last_purchase": np.where(
                        purchases > 0, rng.integers(0, 30, n_users), np.nan
                    ),
                    "avg_order_value": np.where(purchases > 0, mrr, 0.0),
                    "mean_active_gap_days": mean_gap,
                    "recency_ratio": days_inactive
                    / np.where(np.isfinite(mean_gap) & (mean_gap > 0), mean_gap, np.nan),
                    "active_days_7d": active_7,
                    "active_days_28d": np.minimum(28, active_7 * 4 + rng.integers(0, 3, n_users)),
                    "events_7d": events_7,
                    "events_28d": events_7 * 4 + events_prev,
                    "sessions_7d": active_7,
                    "sessions_28d": active_7 * 4,
                    "avg_session_minutes_28d": np.round(rng.gamma(2, 6, n_users) * activity, 2),
                    "feature_breadth_28d": rng.binomial(9, activity),
                    "feature_depth_28d": rng.poisson(10 * activity),
                    "milestones_reached": 1 + teammate.astype(int) + first_value.astype(int),
                    "onboarding_completion": (1 + teammate + first_value) / 5.0,
                    # the plan's milestones in funnel order (strict: a plan of another
                    # length needs its own synthetic signal)
                    **dict(
                        zip(
                            PLAN.milestone_columns,
                            (
                                rng.random(n_users) < 0.97,
                                rng.random(n_users) < 0.8,
                                teammate,
                                integrations > 0,
                                first_value,
                            ),
                            strict=True,
                        )
                    ),
                    "days_to_first_value": pd.Series(
                        rng.integers(0, 20, n_users), dtype="Int64"
                    ).where(first_value),
                    **dict(
                        zip(
                            PLAN.counter_columns,
                            (teammate * rng.integers(1, 4, n_users), integrations),
                            strict=True,
                        )
                    ),
                    "support_tickets_28d": rng.poisson(0.3, n_users),
                    "support_tickets_total": rng.poisson(1.0, n_users),
                    "events_prev_7d": events_prev,
                    "activity_trend": (events_7 - events_prev) / np.maximum(events_prev, 1),
                    "plan": plan,
                    "is_paid": paid,
                    "mrr": mrr,
                    "revenue_to_date": mrr * rng.integers(0, 6, n_users),
                    "industry": industry,
                    "company_size": size,
                    "country": rng.choice(["US", "DE", "GB"], n_users),
                    "role": rng.choice(["engineer", "analyst", "manager"], n_users),
                    "acquisition_channel": rng.choice(
                        ["organic", "paid_search", "referral"], n_users
                    ),
                    "is_active_28d": active_7 + events_prev > 0,
                    "churned_next_window": rng.random(n_users) < churn_p,
                    "converted_next_window": rng.random(n_users) < convert_p,
                    "ltv_future": rng.poisson(np.maximum(expected_revenue, 0) / 10.0) * 10.0,
                    "_true_churn": churn_p,
                    "_true_conversion": convert_p,
                    "_true_revenue": expected_revenue,
                }
            )
        )
    full = pd.concat(frames, ignore_index=True)
    full["snapshot_date"] = pd.to_datetime(full["snapshot_date"]).dt.date
    truth = full[["user_id", "snapshot_date", "_true_churn", "_true_conversion", "_true_revenue"]]
    base = full.drop(columns=list(truth.columns[2:]))
    features = base.drop(columns=["churned_next_window", "converted_next_window", "ltv_future"])
    return {
        "fct_user_features": features,
        "ml_churn_training": base.drop(columns=["converted_next_window", "ltv_future"]),
        "ml_ltv_training": base.drop(columns=["churned_next_window", "converted_next_window"]),
        "ml_conversion_training": base.loc[~base["is_paid"]].drop(
            columns=["churned_next_window", "ltv_future"]
        ),
        "truth": truth.rename(columns=lambda c: c.lstrip("_")),
    }
