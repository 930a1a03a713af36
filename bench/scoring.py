"""Benchmark: daily scoring throughput (users per second, one core) against a bare
`predict_proba` on the same rows, with and without top-3 reason codes, and a check that the
codes are per-user stable (a user's codes are the same scored alone or in the whole batch).

    .venv/bin/python bench/scoring.py                       # 100,000 users
    .venv/bin/python bench/scoring.py --users 20000
    .venv/bin/python bench/scoring.py --home /work/bench-data/daily100k --day 2026-12-04

A churn model is trained exactly as the `churn_model` asset does (declared features, MLflow
registry) on the synthetic marts of `tests/support/ml_marts.py`, then `ml.scoring.score_users` scores one
day of `--users` rows. Results: `bench/results/scoring_<users>.{json,md}`.

`--home` measures what the daily job does instead: the champions of an existing SEGFLOW_HOME
(its MLflow store, read only: churn, LTV and conversion, as trained on its history) scoring
that home's `fct_user_features` rows of `--day` (the warehouse opened read only) with top-3
reasons for churn and LTV, as `user_scores` does (`bench/scoring_champions.py`). Results:
`bench/results/scoring_champions_<users>.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"


def _scoring_frame(features: pd.DataFrame, users: int) -> pd.DataFrame:
    """`users` rows for one day: the latest synthetic snapshot repeated with new user ids."""
    day = features["snapshot_date"].max()
    latest = features[features["snapshot_date"] == day].reset_index(drop=True)
    reps = int(np.ceil(users / len(latest)))
    frame = pd.concat([latest] * reps, ignore_index=True).iloc[:users].copy()
    frame["user_id"] = [f"b{i:07d}" for i in range(len(frame))]
    return frame


def _timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--train-users", type=int, default=4000)
    parser.add_argument("--home", type=Path, help="score a SEGFLOW_HOME's own champions")
    parser.add_argument("--day", help="with --home: the fct_user_features day to score")
    args = parser.parse_args(argv)
    if args.home is not None:
        from scoring_champions import bench_champions

        return bench_champions(args.home, args.day, RESULTS)

    from contracts.models import CHURN_MODEL
    from ml import registry
    from ml.features import FeatureSpec, prepare_features
    from ml.scoring import load_champions, score_users, score_with

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.ml_marts import synthetic_marts

    from ml.tracking import train_model

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="segflow-bench-scoring-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    marts = synthetic_marts(n_users=args.train_users, n_weeks=8, seed=1)
    with threadpool_limits(limits=1):
        t_train, result = _timed(
            lambda: train_model("churn", marts["ml_churn_training"], uri, work / "artifacts")
        )
        frame = _scoring_frame(marts["fct_user_features"], args.users)
        day = frame["snapshot_date"].iloc[0]
        champion = registry.load_by_alias(CHURN_MODEL, uri)
        spec = FeatureSpec.from_dict(champion.meta["feature_spec"])
        X = prepare_features(frame, spec)
        t_bare, _ = _timed(lambda: champion.model.predict_proba(X)[:, 1])
        registry.forget_loaded()  # a cold load, as the daily run's first scoring does
        t_cold, _ = _timed(lambda: score_users(frame, uri, day, top_reasons=0))
        registry.forget_loaded()
        t_load, champions = _timed(lambda: load_champions(uri))
        t_scores, _ = _timed(lambda: score_with(frame, champions, day, top_reasons=0), 3)
        t_reasons, scored = _timed(lambda: score_with(frame, champions, day, top_reasons=3), 3)
        sample = frame.sample(n=min(500, len(frame)), random_state=0)
        alone = score_users(sample, uri, day, top_reasons=3).set_index("user_id")
    together = scored.set_index("user_id").loc[alone.index]
    stable = bool((alone["churn_reasons"] == together["churn_reasons"]).all())
    n = len(frame)
    report = {
        "users": n,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu (1 thread used)",
        "features": len(spec.columns),
        "reason_candidates": len(champion.meta.get("reason_features") or spec.columns),
        "train_seconds": round(t_train, 1),
        "bare_predict_proba_seconds": round(t_bare, 3),
        "bare_predict_proba_users_per_s": round(n / t_bare),
        "champion_load_seconds": round(t_load, 3),
        "score_users_cold_seconds": round(t_cold, 3),
        "score_users_cold_users_per_s": round(n / t_cold),
        "scores_seconds": round(t_scores, 3),
        "scores_users_per_s": round(n / t_scores),
        "scores_top3_reasons_seconds": round(t_reasons, 3),
        "scores_top3_reasons_users_per_s": round(n / t_reasons),
        "reasons_stable_alone_vs_batch": stable,
        "users_with_reasons": int((scored["churn_reasons"].fillna("") != "").sum()),
        "targets": {"scores_users_per_s": 100_000, "top3_reasons_users_per_s": 20_000},
        "estimator": champion.meta.get("candidate", "boosted"),
        "model_version": result.version,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"scoring_{n}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Scoring throughput ({n:,} users, one day, one thread)",
        "",
        f"Machine: {report['machine']}. Churn model: {report['features']} features, "
        f"{report['reason_candidates']} reason candidates.",
        "",
        "| step | seconds | users / s | target |",
        "|---|---|---|---|",
        f"| bare predict_proba (prepared rows) | {t_bare:.3f} | {n / t_bare:,.0f} | |",
        f"| champions loaded (once per run; MLflow + skops) | {t_load:.3f} | | |",
        f"| scores only (rows to `user_scores` frame, champions loaded) | {t_scores:.3f} | "
        f"{n / t_scores:,.0f} | 100,000 |",
        f"| scores + top-3 reasons (champions loaded) | {t_reasons:.3f} | "
        f"{n / t_reasons:,.0f} | 20,000 |",
        f"| score_users cold: champion load + scores | {t_cold:.3f} | {n / t_cold:,.0f} | |",
        "",
        f"Load average before / after: {load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        " (a shared machine: a busy one slows every row).",
        "",
        f"Reason codes per-user stable (500 users scored alone == in the batch): {stable}.",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
