"""`bench/scoring.py --home`: a SEGFLOW_HOME's own champions scoring one day of its features,
as the daily `user_scores` step does (ml.score_table: all champions, top-3 reasons for the
banded kinds, OpenMP capped to one thread), on one thread and on every core (the tree walks'
row blocks, ml.row_blocks: what the step uses). Nothing is written to the home: the warehouse
is opened read only and the MLflow store is only read. Wall and CPU seconds, with the load
beside them."""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import date
from pathlib import Path

import duckdb
from threadpoolctl import threadpool_limits


def _timed(fn) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _features(warehouse: Path, day: date):
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(
            "select * from main.fct_user_features where snapshot_date = ?", [day]
        ).df()


def bench_champions(home: Path, day_text: str | None, results: Path) -> int:
    os.environ["SEGFLOW_HOME"] = str(home.resolve())
    from ml import registry, row_blocks
    from ml.score_table import DEFAULT_CHUNK_DAYS
    from ml.scoring import load_champions, score_with
    from orchestration.settings import Settings

    registry.import_model_loader()
    settings = Settings.from_env()
    uri = settings.mlflow_tracking_uri
    day = date.fromisoformat(day_text) if day_text else None
    if day is None:
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
            day = conn.execute("select max(snapshot_date) from main.fct_user_features").fetchone()[
                0
            ]
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    t_read = _timed(lambda: _features(settings.duckdb_path, day))
    features = t_read[2]
    t_load = _timed(lambda: load_champions(uri))  # before the cap: see write_user_scores
    champions = t_load[2]
    cores = row_blocks.default_workers()
    timings = {}
    with threadpool_limits(limits=1):
        # Paid once per run: numba's import, the compiled kernels read from their cache
        # (ml.tree_kernels; a first run on a machine compiles them instead), each champion's
        # tree scorer built and checked against scikit-learn.
        t_first = _timed(lambda: score_with(features.head(100), champions, [day], top_reasons=3))
        for workers in sorted({1, cores}):
            with row_blocks.limit(workers):
                timings[workers] = (
                    _timed(lambda: score_with(features, champions, [day], top_reasons=0)),
                    _timed(lambda: score_with(features, champions, [day], top_reasons=3)),
                )
        t_scores, t_reasons = timings[1]
        scored = t_reasons[2].set_index("user_id")
        same = all(
            t[1][2].equals(t_reasons[2]) and t[0][2].equals(t_scores[2]) for t in timings.values()
        )
        sample = features.sample(n=min(100, len(features)), random_state=0)
        alone = [score_with(sample.iloc[[i]], champions, [day]) for i in range(len(sample))]
    reason_columns = [c for c in scored.columns if c.endswith("_reasons")]
    # equals: a kind without a champion has null codes on both sides (== says False)
    stable = all(
        row.set_index("user_id")[reason_columns].equals(scored.loc[row["user_id"], reason_columns])
        for row in alone
    )
    n = len(features)
    shapes = {
        c.loaded.model_name: f"{type(c.loaded.model.named_steps['model']).__name__}, "
        f"{len(c.spec.columns)} features, {len(c.loaded.meta.get('reason_features') or [])} "
        "reason candidates"
        for c in champions
        if c is not None
    }
    report = {
        "users": n,
        "day": str(day),
        "home": str(home),
        "chunk_days": DEFAULT_CHUNK_DAYS,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "champions": shapes,
        "features_read": {"wall": round(t_read[0], 2), "cpu": round(t_read[1], 2)},
        "champions_load": {"wall": round(t_load[0], 2), "cpu": round(t_load[1], 2)},
        "first_call_100_rows": {"wall": round(t_first[0], 2), "cpu": round(t_first[1], 2)},
        "scores": {"wall": round(t_scores[0], 2), "cpu": round(t_scores[1], 2)},
        "scores_top3_reasons": {"wall": round(t_reasons[0], 2), "cpu": round(t_reasons[1], 2)},
        "threads": {
            str(w): {
                "scores": {"wall": round(s[0], 2), "cpu": round(s[1], 2)},
                "scores_top3_reasons": {"wall": round(r[0], 2), "cpu": round(r[1], 2)},
            }
            for w, (s, r) in timings.items()
        },
        "same_rows_on_any_thread_count": same,
        "reasons_stable_alone_vs_batch": stable,
        "load_before": load_before,
        "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    results.mkdir(parents=True, exist_ok=True)
    stem = results / f"scoring_champions_{n}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Scoring with the daily job's champions ({n:,} users, {day})",
        "",
        f"Home: `{home}` (read only). Machine: {report['machine']}.",
        "",
        *(f"- {name}: {shape}" for name, shape in shapes.items()),
        "",
        "| step | threads | wall s | CPU s | users / s (wall) | users / s (CPU) |",
        "|---|---|---|---|---|---|",
        f"| read the day's fct_user_features | | {t_read[0]:.2f} | {t_read[1]:.2f} | | |",
        f"| champions loaded (MLflow + skops) | | {t_load[0]:.2f} | {t_load[1]:.2f} | | |",
        f"| first call, 100 rows (numba import, cached kernels, tree scorers) | 1 | "
        f"{t_first[0]:.2f} | {t_first[1]:.2f} | | |",
        *(
            f"| {label} | {w} | {t[0]:.2f} | {t[1]:.2f} | {n / t[0]:,.0f} | {n / t[1]:,.0f} |"
            for w, pair in timings.items()
            for label, t in zip(
                ("scores, all champions", "scores + top-3 reasons (churn, LTV)"), pair, strict=True
            )
        ),
        "",
        f"Load average before / after: {report['load_before']} / {report['load_after']}.",
        "",
        f"Reason codes per-user stable ({len(sample)} users scored alone == in the batch): "
        f"{stable}. The same rows on one thread and on {cores}: {same}.",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
