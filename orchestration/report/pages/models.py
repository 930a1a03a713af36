"""Models: per kind, every registered version and its baseline on the kind's primary metric
(the one promotion gates on), a badge where the champion trails, "no model yet" with the
history needed when a kind has none, the churn champion's calibration and gains, drift as the
feature_drift check computed it, and today's scores and bands."""

from __future__ import annotations

import altair as alt
import pandas as pd

from orchestration.report.charts import BAD, NEUTRAL, W, plot
from orchestration.report.inputs import ReportInputs, Warehouse, nonempty
from orchestration.report.model_facts import model_facts
from orchestration.report.pages import model_scores
from orchestration.report.render import Page, kpis, table_block
from orchestration.report.run_summary import history_days, no_model_text
from orchestration.settings import Settings


def build(wh: Warehouse, inputs: ReportInputs) -> Page:
    page = Page(
        "models",
        "Models",
        "Each model's registered versions against their baselines on the metric promotion "
        "gates on, the churn champion's calibration and gains on outcomes observed since, "
        "drift per feature as the feature_drift check computed it, and today's scores and bands.",
    )
    table = versions_table(inputs)
    have = history_days(wh.conn) if wh.has("fct_user_features") else 0
    badges = []
    # each kind's horizon as its label was built (the settings of this run)
    for fact in model_facts(Settings.from_env()).values():
        g = table[table["model"] == fact.registered_name] if nonempty(table) else table
        if not nonempty(g):
            badges.append((f"{fact.kind}: no model yet", no_model_text(fact, have), "bad"))
            continue
        badges.append(champion_badge(fact.kind, g))
        page.add(_versions_chart(fact.registered_name, fact.primary_metric, g))
        page.add(_candidates_table(fact.registered_name, g))
    page.add(kpis(badges))
    model_scores.calibration(page, wh)
    _drift(page, inputs)
    model_scores.scores(page, wh)
    model_scores.action_reasons(page, wh)
    return page


def versions_table(inputs: ReportInputs) -> pd.DataFrame:
    """One row per version: its primary metric, the baseline's, and whether it is champion."""
    facts = {f.registered_name: f for f in model_facts().values()}
    rows = []
    for v in inputs.model_versions:
        fact = facts.get(v.model)
        if fact is None or fact.primary_metric not in v.metrics:
            continue
        rows.append(
            {
                "model": v.model,
                "version": int(v.version),
                "aliases": v.aliases,
                "champion": "champion" in v.aliases.split(","),
                "metric": fact.primary_metric,
                "model_value": v.metrics[fact.primary_metric],
                "baseline_value": v.baseline.get(fact.primary_metric),
                "candidates": {
                    name: m[fact.primary_metric]
                    for name, m in v.candidates.items()
                    if fact.primary_metric in m
                },
            }
        )
    return pd.DataFrame(rows)


def champion_badge(kind: str, g: pd.DataFrame) -> tuple[str, str, str]:
    """'ok' when the champion is at least as good as every other version and its baseline on
    the primary metric (higher is better); else which one it trails and by how much."""
    champion = g[g["champion"]]
    if champion.empty:
        return (f"{kind}: no champion", "versions registered, none promoted", "bad")
    c = champion.iloc[0]
    metric = c["metric"]
    rivals = [(f"v{int(r.version)}", r.model_value) for r in g[~g["champion"]].itertuples()]
    if not pd.isna(c["baseline_value"]):
        rivals.append(("its baseline", c["baseline_value"]))
    rivals += [(f"candidate {n}", v) for n, v in (c.get("candidates") or {}).items()]
    trails = [(name, value) for name, value in rivals if value > c["model_value"]]
    if not trails:
        return (f"{kind}: champion v{int(c['version'])}", f"{metric} {c['model_value']:.3f}", "ok")
    name, value = max(trails, key=lambda t: t[1])
    return (
        f"{kind}: champion v{int(c['version'])} trails {name}",
        f"{metric} {c['model_value']:.3f} vs {value:.3f}",
        "bad",
    )


def _candidates_table(model: str, g: pd.DataFrame):
    """Every candidate of the champion's training run beside the champion, on the primary
    metric, with a mark where a candidate beats the champion."""
    champion = g[g["champion"]]
    if champion.empty or not champion.iloc[0].get("candidates"):
        return None
    c = champion.iloc[0]
    rows = [{"model": f"champion v{int(c['version'])}", c["metric"]: c["model_value"], "": ""}]
    rows += [
        {"model": f"candidate {name}", c["metric"]: value,
         "": "beats the champion" if value > c["model_value"] else ""}
        for name, value in sorted(c["candidates"].items(), key=lambda kv: -kv[1])
    ]  # fmt: skip
    return table_block(f"{model}: the champion's training run, every candidate", pd.DataFrame(rows))


def _versions_chart(model: str, metric: str, g: pd.DataFrame):
    long = g.melt(
        id_vars=["version", "aliases", "champion"],
        value_vars=["model_value", "baseline_value"],
        var_name="series",
        value_name=metric,
    ).dropna(subset=[metric])
    return plot(
        f"{model}: {metric} (the metric promotion gates on) per version vs its baseline",
        long,
        "line",
        table=g.drop(columns=["candidates"]),
        note="champion = the version with the 'champion' alias; higher is better",
        width=W - 200,
        height=180,
        mark_args={"point": True},
        x=alt.X("version:O"),
        y=alt.Y(f"{metric}:Q", scale=alt.Scale(zero=False)),
        color=alt.Color("series:N"),
    )


def _drift(page: Page, inputs: ReportInputs) -> None:
    if not nonempty(inputs.drift):
        page.missing.append("drift per feature (the feature_drift check has not run yet)")
        return
    d = inputs.drift.sort_values("psi", ascending=False).head(30)
    page.add(
        plot("Drift per feature: the feature_drift check's latest result", d, "bar",
             note=inputs.drift_note, width=W - 160, height=16 * len(d),
             y=alt.Y("column:N", sort="-x", title=None),
             x=alt.X("psi:Q", title="PSI (as the check computed it)"),
             color=alt.Color("drifting:N", scale=alt.Scale(domain=[False, True], range=[NEUTRAL, BAD])))
    )  # fmt: skip
