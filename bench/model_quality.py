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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from demo import truth_columns  # noqa: E402
from ml.metrics import normalized_gini  # noqa: E402
from orchestration.run_window import dbt_vars_arg  # noqa: E402
from orchestration.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
TABLES = ("crm_contacts", "events", "billing_invoices")
MARTS = {
    "churn": "ml_churn_training",
    "ltv": "ml_ltv_training",
    "conversion": "ml_conversion_training",
}
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


def _compare(kind: str, holdout: pd.DataFrame, truth: pd.DataFrame, column: str) -> dict:
    """Model, baseline and oracle on the holdout rows the truth file covers."""
    joined = holdout.merge(truth, on=["user_id", "snapshot_date"], how="inner")
    joined = joined[joined[column].notna()]  # e.g. conversion: paid in the truth already
    oracle = joined[column].to_numpy(dtype=float)
    y = joined["label"].to_numpy(dtype=float)
    out = {"holdout_rows": len(holdout), "rows_with_truth": len(joined)}
    if kind == "ltv":
        for name, values in (
            ("model", joined["prediction"]),
            ("baseline", joined["baseline_prediction"]),
            ("oracle", oracle),
        ):
            out[f"{name}_spearman_realised"] = float(spearmanr(values, y).statistic)
            out[f"{name}_gini_realised"] = float(normalized_gini(y, np.asarray(values, float)))
        for name in ("prediction", "baseline_prediction"):
            label = "model" if name == "prediction" else "baseline"
            out[f"{label}_spearman_vs_true_expected"] = float(
                spearmanr(joined[name], oracle).statistic
            )
        return out
    for name, values in (
        ("model", joined["prediction"]),
        ("baseline", joined["baseline_prediction"]),
        ("oracle", oracle),
    ):
        out[f"{name}_auc"] = float(roc_auc_score(y, values))
    out["model_share_of_oracle"] = out["model_auc"] / out["oracle_auc"]
    out["base_rate"] = float(y.mean())
    return out


def _ceiling(kind: str, frame: pd.DataFrame, result, features) -> pd.DataFrame:
    """The ceiling our features allow: a plain gradient-boosted model (defaults) fitted on
    the same training snapshots of our own feature table with the true label, predicting
    the same holdout. Returns user_id, snapshot_date, ceiling."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from contracts.models import model_kind

    spec = model_kind(kind)
    dates = pd.to_datetime(frame["snapshot_date"]).dt.date
    train_max = date.fromisoformat(result.window["train_max_snapshot"])
    holdout_day = date.fromisoformat(result.window["holdout_snapshot"])
    train, holdout = frame[dates <= train_max], frame[dates == holdout_day]
    train = train[train[spec.label].notna()]
    cols = [c for c in features if c in frame.columns]

    def X(rows: pd.DataFrame) -> pd.DataFrame:
        out = rows[cols].copy()
        for c in cols:
            if out[c].dtype == object or str(out[c].dtype) in ("string", "category"):
                out[c] = pd.Categorical(
                    out[c].astype(str), categories=sorted(frame[c].astype(str).unique())
                )
            else:
                out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
        return out

    y = pd.to_numeric(train[spec.label]).to_numpy(float)
    if spec.task == "classification":
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
        predicted = model.fit(X(train), (y > 0).astype(int)).predict_proba(X(holdout))[:, 1]
    else:
        model = HistGradientBoostingRegressor(
            loss="poisson", categorical_features="from_dtype", random_state=0
        )
        predicted = model.fit(X(train), np.clip(y, 0, None)).predict(X(holdout))
    return pd.DataFrame(
        {
            "user_id": holdout["user_id"].astype(str).to_numpy(),
            "snapshot_date": pd.to_datetime(holdout["snapshot_date"]).dt.date.to_numpy(),
            "ceiling": predicted,
            "days_since_last_active": pd.to_numeric(holdout["days_since_last_active"]).to_numpy(),
        }
    )


CLV_FEATURES = ("clv_p_alive", "clv_expected_transactions", "clv_prediction")


def _with_customer_base_features(frame: pd.DataFrame, kind: str, horizon_days: int) -> pd.DataFrame:
    """The customer-base model's outputs as columns (BG/NBD P(alive) and expected
    transactions, and its own prediction: P(no activity) for churn, BG/NBD x Gamma-Gamma
    revenue for LTV), fitted per snapshot on that snapshot's rows only (each customer's
    history up to it: no data after the snapshot)."""
    from ml import clv

    parts = []
    for _, rows in frame.groupby("snapshot_date", sort=False):
        rows = rows.copy()
        try:
            model = clv.customer_base_model(kind, horizon_days).fit(rows)
            data = clv.rfm(rows, *model._rfm)
            rows["clv_p_alive"] = model.model.p_alive(data)
            rows["clv_expected_transactions"] = model.model.expected_transactions(
                data, horizon_days / clv.WEEK
            )
            rows["clv_prediction"] = (
                model.predict_proba(rows)[:, 1] if kind == "churn" else model.predict(rows)
            )
        except (ValueError, FloatingPointError):  # ClvUnavailable is a ValueError
            for column in CLV_FEATURES:
                rows[column] = np.nan
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def _metric(kind: str, rows: pd.DataFrame, column: str) -> float | None:
    """ROC AUC (churn) or normalised Gini (LTV) of `column` against the label."""
    if kind != "ltv":
        return _auc(rows, column)
    y = rows["label"].to_numpy(float)
    return float(normalized_gini(y, rows[column].to_numpy(float))) if y.sum() > 0 else None


def _slice_rows(joined: pd.DataFrame, quiet_days: int):
    quiet = joined["days_since_last_active"].fillna(np.inf) >= quiet_days
    return (("all", joined), ("quiet", joined[quiet]), ("active", joined[~quiet]))


def _auc(rows: pd.DataFrame, column: str) -> float | None:
    y = rows["label"].to_numpy(float)
    return float(roc_auc_score(y, rows[column])) if 0 < y.sum() < len(y) else None


def _slices(
    kind: str, joined: pd.DataFrame, quiet_days: int, column: str, observable: str | None
) -> dict:
    """Model / ceiling / oracle on all holdout rows and on the quiet / non-quiet slices."""
    out = {}
    quiet = joined["days_since_last_active"].fillna(np.inf) >= quiet_days
    for name, rows in (("all", joined), ("quiet", joined[quiet]), ("active", joined[~quiet])):
        y = rows["label"].to_numpy(float)
        entry = {"rows": len(rows), "base_rate": float(y.mean()) if len(y) else None}
        scored = [("prediction", "prediction"), ("ceiling", "ceiling"), ("oracle", column)]
        for score, col in scored + ([("observable", observable)] if observable else []):
            values = rows[col].to_numpy(float)
            if kind == "ltv":
                entry[score] = float(normalized_gini(y, values)) if len(y) and y.sum() > 0 else None
            else:
                entry[score] = float(roc_auc_score(y, values)) if 0 < y.sum() < len(y) else None
        p, c, o = entry["prediction"], entry["ceiling"], entry["oracle"]
        entry["model_share_of_ceiling"] = p / c if p is not None and c else None
        entry["model_share_of_oracle"] = p / o if p is not None and o else None
        if observable:
            b = entry["observable"]
            entry["model_share_of_observable"] = p / b if p is not None and b else None
        out[name] = entry
    return out


def _figure(report: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, kind in zip(axes, ("churn", "conversion", "ltv"), strict=True):
        q = report["quality"].get(kind)
        if not q:
            ax.set_title(f"{kind}: not trained")
            continue
        if kind == "ltv":
            names = ["model", "baseline", "oracle"]
            values = [q[f"{n}_spearman_realised"] for n in names]
            ax.set_ylabel("Spearman with realised 90d revenue")
        else:
            names = ["model", "baseline", "oracle"]
            values = [q[f"{n}_auc"] for n in names]
            ax.set_ylabel("ROC AUC (holdout)")
            ax.set_ylim(0.5, 1.0)
        ax.bar(names, values, color=["tab:blue", "tab:gray", "tab:green"])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.3f}", ha="center", va="bottom")
        ax.set_title(kind)
    fig.suptitle(f"Model vs baseline vs oracle: {report['users']} users x {report['days']} days")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _markdown(report: dict) -> str:
    lines = [
        f"# Model quality vs ground truth ({report['users']} users x {report['days']} days, "
        f"seed {report['seed']})",
        "",
        f"Churn: {report.get('churn_definition')}, horizon {report.get('churn_horizon_days')} "
        f"days; oracle columns: "
        + ", ".join(f"{k} `{q.get('oracle_column')}`" for k, q in report["quality"].items())
        + f". Machine: {report['machine']}, load at start `{report.get('load')}`. Steps (s): "
        + ", ".join(f"{k} {v['seconds']}" for k, v in report["steps"].items()),
        "",
        "| model | metric | model | baseline | oracle | model / oracle | holdout rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("churn", "conversion"):
        q = report["quality"].get(kind)
        if q:
            lines.append(
                f"| {kind} | ROC AUC | {q['model_auc']:.4f} | {q['baseline_auc']:.4f} | "
                f"{q['oracle_auc']:.4f} | {q['model_share_of_oracle']:.3f} | "
                f"{q['rows_with_truth']} |"
            )
    q = report["quality"].get("ltv")
    if q:
        lines.append(
            f"| ltv | Spearman vs realised 90d revenue | {q['model_spearman_realised']:.4f} "
            f"| {q['baseline_spearman_realised']:.4f} | {q['oracle_spearman_realised']:.4f} "
            f"| {q['model_spearman_realised'] / q['oracle_spearman_realised']:.3f} | "
            f"{q['rows_with_truth']} |"
        )
        lines.append(
            f"| ltv | Spearman vs true expected revenue | "
            f"{q['model_spearman_vs_true_expected']:.4f} | "
            f"{q['baseline_spearman_vs_true_expected']:.4f} | 1 | | |"
        )
        lines.append(
            f"| ltv | normalised Gini vs realised 90d revenue | {q['model_gini_realised']:.4f} | "
            f"{q['baseline_gini_realised']:.4f} | {q['oracle_gini_realised']:.4f} | "
            f"{q['model_gini_realised'] / q['oracle_gini_realised']:.3f} | |"
        )
    lines += [
        "",
        "Model vs the BG/NBD + Gamma-Gamma baseline on the same holdout (as logged to MLflow):",
        "",
        "| model | metric | model | BG/NBD+GG |",
        "|---|---|---|---|",
    ]
    for kind, metric in (
        ("churn", "roc_auc"),
        ("churn", "top_decile_lift"),
        ("ltv", "normalized_gini"),
        ("ltv", "spearman"),
    ):
        q = report["quality"].get(kind) or {}
        clv = q.get("clv_baseline") or {}
        if metric in clv:
            lines.append(
                f"| {kind} | {metric} | {q['model_metrics'][metric]:.4f} | {clv[metric]:.4f} |"
            )
    lines += [
        "",
        "All holdout customers and two slices (quiet: at least SEGFLOW_CHURN_INACTIVE_DAYS "
        "without activity at the holdout snapshot). Ceiling: a plain gradient-boosted model "
        "on our own feature table with the true label. Metric: ROC AUC (LTV: normalised Gini).",
        "",
        "Observable oracle (store only): the Bayes posterior from the data segflow sees, with "
        "the generator's priors (demo/store_oracle.py); the oracle itself knows who silently "
        "left, which no data shows.",
        "",
        "| model | slice | rows | champion | ceiling | oracle | observable oracle | "
        "champion / ceiling | champion / oracle | champion / observable oracle |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, q in report["quality"].items():
        for name, s in (q.get("slices") or {}).items():
            cells = [
                s["prediction"],
                s["ceiling"],
                s["oracle"],
                s.get("observable"),
                s["model_share_of_ceiling"],
                s["model_share_of_oracle"],
                s.get("model_share_of_observable"),
            ]
            shown = " | ".join("n/a" if v is None else f"{v:.3f}" for v in cells)
            lines.append(f"| {kind} | {name} | {s['rows']} | {shown} |")
    hybrids = {k: q["hybrid"] for k, q in report["quality"].items() if q.get("hybrid")}
    if hybrids:
        lines += [
            "",
            "Does the customer-base model help as a feature? The ceiling model with BG/NBD "
            "P(alive), expected transactions and the customer-base prediction (LTV: x "
            "Gamma-Gamma) added, fitted per snapshot on data up to it (churn: ROC AUC, LTV: Gini):",
            "",
            "| model | slice | rows | ceiling | ceiling + customer-base features |",
            "|---|---|---|---|---|",
        ]
        for kind, hybrid in hybrids.items():
            for name, h in hybrid.items():
                cells = [h["ceiling"], h["ceiling_plus_bgnbd_features"]]
                shown = " | ".join("n/a" if v is None else f"{v:.3f}" for v in cells)
                lines.append(f"| {kind} | {name} | {h['rows']} | {shown} |")
    lines += ["", "Candidates on the same holdout (the champion is the best by construction):", ""]
    for kind, q in report["quality"].items():
        if q.get("candidates"):
            shown = ", ".join(
                f"{n} {m.get('roc_auc', m.get('normalized_gini', float('nan'))):.4f}"
                for n, m in q["candidates"].items()
            )
            lines.append(
                f"- {kind}: champion **{q['champion_candidate']}**; {shown}; trails: "
                f"{', '.join(q['champion_trails']) or 'none'}; refit "
                f"{q['refit_window']['refit_min_snapshot']}..{q['refit_window']['refit_max_snapshot']}"
            )
    churn = report["quality"].get("churn")
    if churn:
        verdict = "met" if churn["model_share_of_oracle"] >= 0.95 else "NOT met"
        lines += [
            "",
            f"Target churn AUC >= 0.95 x oracle: **{verdict}** "
            f"({churn['model_share_of_oracle']:.3f}).",
        ]
    lines += ["", "Training metrics as logged to MLflow (holdout = latest labelled snapshot):", ""]
    for kind, metrics in report["mlflow_metrics"].items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        lines.append(f"- {kind}: {shown}")
    for kind, warnings in report["warnings"].items():
        for warning in warnings:
            lines.append(f"- {kind} warning: {warning}")
    return "\n".join(lines) + "\n"


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
            report["quality"][kind] = _compare(kind, holdout, truth, columns[kind])
            report["quality"][kind]["oracle_column"] = columns[kind]
            ceiling = _ceiling(kind, frame, result, result.feature_columns)
            joined = holdout.merge(ceiling, on=["user_id", "snapshot_date"]).merge(
                truth, on=["user_id", "snapshot_date"], how="inner"
            )
            joined = joined[joined[columns[kind]].notna()]
            report["quality"][kind]["slices"] = _slices(
                kind,
                joined,
                Settings.from_env().churn_inactive_days,
                columns[kind],
                observable.get(kind),
            )
            if kind in ("churn", "ltv"):  # does the customer-base model help as a feature?
                hybrid = _ceiling(
                    kind,
                    _with_customer_base_features(frame, kind, horizons[kind]),
                    result,
                    [*result.feature_columns, *CLV_FEATURES],
                ).rename(columns={"ceiling": "hybrid"})
                both = joined.merge(
                    hybrid[["user_id", "snapshot_date", "hybrid"]], on=["user_id", "snapshot_date"]
                )
                report["quality"][kind]["hybrid"] = {
                    name: {
                        "rows": len(rows),
                        "ceiling": _metric(kind, rows, "ceiling"),
                        "ceiling_plus_bgnbd_features": _metric(kind, rows, "hybrid"),
                    }
                    for name, rows in _slice_rows(both, Settings.from_env().churn_inactive_days)
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
    stem.with_suffix(".md").write_text(_markdown(report))
    _figure(report, stem.with_suffix(".png"))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
