"""bench/model_quality.py's report: the figure and the Markdown table (split from
model_quality.py)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure(report: dict, path: Path) -> None:
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


def markdown(report: dict) -> str:
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
