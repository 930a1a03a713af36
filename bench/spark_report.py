"""bench/spark.py's report: bench/results/spark-<users>x<days>.{json,md}, rewritten after every
step (each with its own load average: a run that spans sessions sees different loads)."""

from __future__ import annotations

import json
import os
from pathlib import Path

ENGINES = ("duckdb", "spark")
KINDS = {"full": "full build", "day": "one day"}


def _ratio(steps: dict, kind: str, field: str) -> float | None:
    figures = [steps.get(f"{engine}_{kind}", {}) for engine in ENGINES]
    if any(field not in f for f in figures) or not figures[0][field]:
        return None
    return round(figures[1][field] / figures[0][field], 2)


def write_report(out: Path, report: dict) -> None:
    steps = report["steps"]
    report["spark_vs_duckdb"] = {
        f"{kind}_{field.split('_')[0]}": _ratio(steps, kind, field)
        for kind in KINDS
        for field in ("wall_seconds", "cpu_seconds")
    }
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Spark vs DuckDB, {report['users']} users x {report['days']} days",
        "",
        f"{os.cpu_count()} cores, a shared machine: compare within this run only. CPU s = the "
        "process tree's user + system (JVM included; load-independent), wall s waits for a core.",
        "",
        "| step | engine | wall s | CPU s | peak MB | dbt models | s inside models | "
        "load before | load after | finished (UTC) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, label in KINDS.items():
        for engine in ENGINES:
            figure = steps.get(f"{engine}_{kind}")
            if figure is None:
                lines.append(f"| {label} | {engine} | not run | | | | | | | |")
            elif "error" in figure:
                lines.append(f"| {label} | {engine} | failed | | | | | | | |")
            else:
                lines.append(
                    f"| {label} | {engine} | {figure['wall_seconds']} | {figure['cpu_seconds']} "
                    f"| {figure['peak_rss_mb']} | {figure.get('models', '')} "
                    f"| {figure.get('models_seconds', '')} | {figure['loadavg_before'][0]} "
                    f"| {figure['loadavg_after'][0]} | {figure['finished_at']} |"
                )
    if "prepare" in steps:
        lines += [
            "",
            f"Data (seed {report['seed']}, work folder {report['work']}): {steps['prepare']}",
        ]
    ratios = {k: v for k, v in report["spark_vs_duckdb"].items() if v is not None}
    lines += ["", f"Spark / DuckDB: {ratios or 'not yet (a step is missing)'}"]
    for step, figure in steps.items():
        if "jvm_cpu_seconds" in figure:
            lines.append(f"\n{step}, the JVM's CPU s by thread kind: {figure['jvm_cpu_seconds']}")
        if "slowest_models" in figure:
            lines.append(f"\n{step}, slowest models (s): {figure['slowest_models']}")
    if report.get("notes"):
        lines += ["", report["notes"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
