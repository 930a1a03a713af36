"""Benchmark: model quality against the demo generator's ground truth.

    .venv/bin/python bench/model_quality.py                     # 100k users x 180 days
    .venv/bin/python bench/model_quality.py --users 3000 --days 120

Pipeline: generate demo data -> load raw tables -> dbt (training marts) -> train churn, LTV
and conversion exactly as the `*_model` assets do -> compare on each model's holdout rows:
- churn / conversion: model ROC AUC vs oracle AUC (the generator's true probability scored
  against the same realised labels) vs the baseline's; target churn >= 0.95 x oracle.
- LTV: Spearman of the prediction with the true expected 90-day revenue (and the oracle's
  Spearman with the realised revenue, next to the model's and the baseline's).
Results: `bench/results/model_quality_<users>x<days>.{json,md,png}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from contracts.models import KINDS  # noqa: E402
from contracts.raw import RAW_TABLES  # noqa: E402
from demo import truth_columns  # noqa: E402
from orchestration.run_window import dbt_vars_arg  # noqa: E402
from orchestration.settings import Settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules below
from model_quality_metrics import (  # noqa: E402
    CLV_FEATURES,
    ceiling_predictions,
    compare,
    metric,
    slice_rows,
    slices,
    with_customer_base_features,
)
from model_quality_report import figure, markdown  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
TABLES = RAW_TABLES
MARTS = {kind: spec.training_table for kind, spec in KINDS.items()}
ORACLE_REPLICAS = 100  # simulated futures per user for the SaaS churn oracle (demo.saas_oracle)


def oracle_columns(profile: str, definition: str, horizons: dict[str, int]) -> dict[str, str]:
    """The truth column each model is scored against: the true probability (or value) of
    exactly the label the pipeline trains on, over the horizon its settings give each kind
    (`horizons`: kind -> days; names from demo.truth_columns)."""
    churn_days = horizons["churn"]
    if profile == "store":  # activity = orders; the truth knows who is still a customer
        churn = f"p_no_purchase_{churn_days}d"
    else:
        churn = f"p_{'cancel' if definition == 'cancellation' else 'inactive'}_{churn_days}d"
    return {
        "churn": churn,
        "conversion": truth_columns.conversion_column(horizons["conversion"]),
        "ltv": truth_columns.revenue_column(horizons["ltv"]),
    }


def observable_columns(profile: str, horizons: dict[str, int]) -> dict[str, str]:
    """The store's oracle knows who silently left; its observable oracle is the Bayes
    posterior from the data segflow sees (demo.store_oracle), the fair ceiling."""
    if profile != "store":
        return {}
    return {
        "churn": truth_columns.observable(f"p_no_purchase_{horizons['churn']}d"),
        "ltv": truth_columns.observable(truth_columns.revenue_column(horizons["ltv"])),
    }


def _generate(
    work: Path, users: int, days: int, seed: int, start: date, profile: str, horizons: dict
) -> dict:
    from demo.saas import generate
    from demo.store import generate_store

    t0 = time.perf_counter()
    common = {
        "users": users,
        "days": days,
        "seed": seed,
        "start": start,
        "horizon_days": horizons["churn"],
    }
    if profile == "store":
        generate_store(work / "landing", work / "truth", ltv_horizon_days=horizons["ltv"], **common)
    else:
        generate(
            work / "landing",
            work / "truth",
            oracle_replicas=ORACLE_REPLICAS,
            conversion_days=horizons["conversion"],
            ltv_days=horizons["ltv"],
            **common,
        )
    return {"seconds": round(time.perf_counter() - t0, 1)}


def _load(work: Path, days: int, start: date) -> dict:
    from orchestration.sources.load import load_partitions
    from orchestration.warehouse import connect

    t0 = time.perf_counter()
    dates = [start + timedelta(days=i) for i in range(days)]
    with connect(work / "warehouse.duckdb") as conn:
        for table in TABLES:
            load_partitions(conn, table, dates, work / "landing", "demo", 3)
    return {"seconds": round(time.perf_counter() - t0, 1)}


def _dbt(work: Path) -> dict:
    t0 = time.perf_counter()
    env = {**os.environ, "SEGFLOW_DUCKDB_PATH": str(work / "warehouse.duckdb")}
    dbt = Path(sys.executable).with_name("dbt")
    command = [
        str(dbt),
        "run",
        "--project-dir",
        str(REPO / "dbt_project"),
        "--profiles-dir",
        str(REPO / "dbt_project"),
        "--target-path",
        str(work / "dbt_target"),
        "--log-path",
        str(work / "dbt_logs"),
        "--select",
        *(f"+{mart}" for mart in MARTS.values()),
        "+fct_user_features",
        *dbt_vars_arg(Settings.from_env()),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dbt failed ({done.returncode}):\n{done.stdout[-4000:]}")
    return {"seconds": round(time.perf_counter() - t0, 1)}


def _marts(work: Path) -> dict[str, pd.DataFrame]:
    from orchestration.warehouse import connect

    with connect(work / "warehouse.duckdb") as conn:
        return {
            kind: conn.execute(f"select * from main.{table}").df() for kind, table in MARTS.items()
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--profile",
        choices=("saas", "store"),
        default="saas",
        help="demo profile; store runs with inactivity churn of 90 days and no conversion model",
    )
    parser.add_argument("--start", type=date.fromisoformat, default=date(2025, 1, 1))
    parser.add_argument("--max-train-rows", type=int, default=400_000)
    parser.add_argument("--workdir", type=Path, help="default: a temp folder, removed afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="skip generate/load/dbt; reuse the warehouse in --workdir",
    )
    args = parser.parse_args(argv)

    from ml.tracking import train_model
    from orchestration.model_inputs import label_definition, model_features
    from orchestration.settings import Settings

    if args.profile == "store":  # the store's churn: no order for 90 days
        os.environ.setdefault("SEGFLOW_CHURN_DEFINITION", "inactivity")
        os.environ.setdefault("SEGFLOW_CHURN_INACTIVE_DAYS", "90")
    settings = Settings.from_env()
    horizons = {kind: label_definition(kind, settings).horizon_days for kind in MARTS}
    horizon = horizons["churn"]
    columns = oracle_columns(args.profile, settings.churn_definition, horizons)
    observable = observable_columns(args.profile, horizons)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="segflow-model-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "churn_definition": settings.churn_definition,
        "churn_horizon_days": horizon,
        "label_horizon_days": horizons,
        "load": Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else "",
        "users": args.users,
        "days": args.days,
        "seed": args.seed,
        "profile": args.profile,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "steps": {},
        "quality": {},
        "mlflow_metrics": {},
        "warnings": {},
    }
    try:
        if not args.reuse:
            report["steps"]["generate"] = _generate(
                work, args.users, args.days, args.seed, args.start, args.profile, horizons
            )
            report["steps"]["load"] = _load(work, args.days, args.start)
            report["steps"]["dbt"] = _dbt(work)
        marts = _marts(work)
        truth = pd.read_parquet(work / "truth" / "truth_weekly.parquet")
        truth["snapshot_date"] = pd.to_datetime(truth["snapshot_date"]).dt.date
        truth["user_id"] = truth["user_id"].astype(str)
        tracking_uri = f"sqlite:///{work / 'mlflow' / 'mlflow.db'}"
        (work / "mlflow").mkdir(exist_ok=True)
        for kind, frame in marts.items():
            if args.profile == "store" and kind == "conversion":
                continue  # no subscriptions to convert to
            if frame.empty:
                report["warnings"][kind] = [f"{MARTS[kind]} is empty: data too short"]
                continue
            t0 = time.perf_counter()
            result = train_model(
                kind,
                frame,
                tracking_uri,
                work / "mlflow" / "artifacts",
                features=model_features(kind),
                label=label_definition(kind, Settings.from_env()),
                max_train_rows=args.max_train_rows,
                output_dir=work / "plots" / kind,
            )
            report["steps"][f"train_{kind}"] = {"seconds": round(time.perf_counter() - t0, 1)}
            holdout = result.holdout_predictions.assign(
                user_id=lambda f: f["user_id"].astype(str),
                snapshot_date=lambda f: pd.to_datetime(f["snapshot_date"]).dt.date,
            )
            report["quality"][kind] = compare(kind, holdout, truth, columns[kind])
            report["quality"][kind]["oracle_column"] = columns[kind]
            ceiling = ceiling_predictions(kind, frame, result, result.feature_columns)
            joined = holdout.merge(ceiling, on=["user_id", "snapshot_date"]).merge(
                truth, on=["user_id", "snapshot_date"], how="inner"
            )
            joined = joined[joined[columns[kind]].notna()]
            report["quality"][kind]["slices"] = slices(
                kind,
                joined,
                Settings.from_env().churn_inactive_days,
                columns[kind],
                observable.get(kind),
            )
            if kind in ("churn", "ltv"):  # does the customer-base model help as a feature?
                hybrid = ceiling_predictions(
                    kind,
                    with_customer_base_features(frame, kind, horizons[kind]),
                    result,
                    [*result.feature_columns, *CLV_FEATURES],
                ).rename(columns={"ceiling": "hybrid"})
                both = joined.merge(
                    hybrid[["user_id", "snapshot_date", "hybrid"]], on=["user_id", "snapshot_date"]
                )
                report["quality"][kind]["hybrid"] = {
                    name: {
                        "rows": len(rows),
                        "ceiling": metric(kind, rows, "ceiling"),
                        "ceiling_plus_bgnbd_features": metric(kind, rows, "hybrid"),
                    }
                    for name, rows in slice_rows(both, Settings.from_env().churn_inactive_days)
                }
            report["quality"][kind]["candidates"] = result.candidate_metrics
            report["quality"][kind]["champion_candidate"] = result.winner
            report["quality"][kind]["champion_trails"] = result.decision.trailing
            report["quality"][kind]["refit_window"] = result.refit_window
            report["quality"][kind]["clv_baseline"] = result.clv_baseline_metrics
            report["quality"][kind]["model_metrics"] = result.metrics
            report["quality"][kind]["label_metrics"] = result.label_metrics
            report["mlflow_metrics"][kind] = {
                **{k: v for k, v in result.metrics.items() if np.isfinite(v)},
                **{
                    f"baseline_{k}": v for k, v in result.baseline_metrics.items() if np.isfinite(v)
                },
            }
            report["warnings"][kind] = result.warnings
            report["quality"][kind]["window"] = result.window
            print(kind, json.dumps(report["quality"][kind], default=str), flush=True)
    finally:
        if not (args.keep or args.workdir):
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = {"store": "_store"}.get(args.profile, "")
    suffix += "_" + os.environ.get("SEGFLOW_CHURN_DEFINITION", "inactivity")
    stem = RESULTS / f"model_quality{suffix}_{args.users}x{args.days}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2, default=str))
    stem.with_suffix(".md").write_text(markdown(report))
    figure(report, stem.with_suffix(".png"))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
