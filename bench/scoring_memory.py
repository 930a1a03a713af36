"""Benchmark: peak memory of scoring a range of days into `user_scores` (ml.score_table
streams one day at a time), for two range lengths, so a reader sees whether peak RSS grows
with the number of days.

    .venv/bin/python bench/scoring_memory.py --users 25000 --days 28 273

A churn model is trained on the synthetic marts (tests/support/ml_marts.py); a DuckDB
warehouse holds `fct_user_features` for `--users` customers x the longest range; each range
is scored in a fresh child process whose own peak RSS (getrusage) is the figure.
Results: `bench/results/scoring_memory_<users>.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
RESULTS = REPO / "bench" / "results"


def _warehouse(work: Path, users: int, days: int) -> tuple[str, str, str]:
    """Train a churn champion; write `users` x `days` feature rows; (db, uri, last day)."""
    import duckdb
    import pandas as pd
    from scoring import _scoring_frame  # bench/scoring.py: one day of `users` rows
    from support.ml_marts import synthetic_marts
    from threadpoolctl import threadpool_limits

    from ml.tracking import train_model

    uri = f"sqlite:///{work / 'mlflow.db'}"
    marts = synthetic_marts(n_users=4000, n_weeks=8, seed=1)
    with threadpool_limits(limits=1):
        train_model("churn", marts["ml_churn_training"], uri, work / "artifacts")
    frame = _scoring_frame(marts["fct_user_features"], users)
    last = frame["snapshot_date"].iloc[0]
    db = work / "warehouse.duckdb"
    conn = duckdb.connect(str(db))
    conn.register("one_day", frame)
    conn.execute(
        "create table main.fct_user_features as select * replace "
        f"(cast(snapshot_date as date) - cast(d.range as integer) as snapshot_date) "
        f"from one_day cross join range({days}) as d"
    )
    conn.close()
    return str(db), uri, str(pd.Timestamp(last).date())


def _peak_rss_kib() -> int:
    """This process's own peak RSS: VmHWM (reset at exec). ru_maxrss is not used where VmHWM
    exists: on Linux it keeps the parent's high-water mark from before the fork + exec, so
    every child reported at least the parent's peak (the figures up to 2026-12-05)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _child(db: str, uri: str, last: str, days: int) -> None:
    """Score the last `days` days (in this fresh process) and print the peak RSS."""
    from datetime import date

    import duckdb

    from ml.score_table import write_user_scores

    last_day = date.fromisoformat(last)
    conn = duckdb.connect(db)
    t0 = time.perf_counter()
    written = write_user_scores(conn, uri, last_day - timedelta(days=days - 1), last_day)
    seconds = time.perf_counter() - t0
    conn.execute("drop table main.user_scores")
    conn.close()
    peak_kib = _peak_rss_kib()
    print(
        json.dumps(
            {
                "days": days,
                "rows": written.rows,
                "seconds": round(seconds, 1),
                "peak_rss_mib": round(peak_kib / 1024, 1),
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=25_000)
    parser.add_argument("--days", type=int, nargs="+", default=[28, 273])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        db, uri, last, days = args.child
        _child(db, uri, last, int(days))
        return 0
    work = Path(tempfile.mkdtemp(prefix="segflow-bench-scoring-memory-"))
    db, uri, last = _warehouse(work, args.users, max(args.days))
    runs = []
    for days in args.days:
        out = subprocess.run(
            [sys.executable, __file__, "--child", db, uri, last, str(days)],
            check=True,
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    report = {
        "users": args.users,
        "runs": runs,
        "loadavg": load,
        "cpus": os.cpu_count(),
        "chunk_days": 1,
        "top_reasons": 3,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"scoring_memory_{args.users}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Scoring a range into user_scores: peak RSS ({args.users:,} customers)",
        "",
        f"One day per chunk, top-3 reasons, one thread; load average {' '.join(load)} on "
        f"{os.cpu_count()} cpus. Each range is scored in a fresh process.",
        "",
        "| days | rows | seconds | peak RSS (MiB) |",
        "|---|---|---|---|",
        *(f"| {r['days']} | {r['rows']:,} | {r['seconds']} | {r['peak_rss_mib']} |" for r in runs),
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
