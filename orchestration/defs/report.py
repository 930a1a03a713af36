"""`segflow_report`: the static offline HTML report, rebuilt at the end of every daily run.

The report itself is plain Python (`orchestration.report`); this module gathers what only
Dagster and MLflow know (run history, check results, last updates, model versions, drift)
and links the folder from the asset's metadata. `segflow report` calls the same function.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from orchestration.definitions import FRESHNESS_ASSETS
from orchestration.defs.partitions import DUCKDB_POOL, window_from_tags
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from orchestration.report import ModelVersionInfo, ReportInputs, ReportResult, RunInfo, build_report
from orchestration.report.run_summary import check_message
from orchestration.settings import Settings


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def recent_runs(instance: dg.DagsterInstance, limit: int = 30) -> list[RunInfo]:
    runs = []
    for record in instance.get_run_records(limit=limit):
        run = record.dagster_run
        failed = ""
        if run.status == dg.DagsterRunStatus.FAILURE:
            events = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
            ).records
            failed = ", ".join(
                sorted({r.event_log_entry.dagster_event.step_key or "" for r in events})
            )
        window = window_from_tags(run.tags)
        partition = window.label if window else ""
        runs.append(
            RunInfo(
                run_id=run.run_id,
                job=run.job_name,
                status=run.status.value,
                started=_ts(record.start_time),
                finished=_ts(record.end_time),
                partition=partition,
                failed_steps=failed,
            )
        )
    return runs


def last_updates(instance: dg.DagsterInstance) -> dict[str, datetime]:
    out = {}
    for path in FRESHNESS_ASSETS:
        key = dg.AssetKey.from_user_string(path)
        event = instance.get_latest_materialization_event(key)
        if event is not None:
            out[key.to_user_string()] = _ts(event.timestamp)
    return out


DONE = {
    AssetCheckExecutionRecordStatus.SUCCEEDED,
    AssetCheckExecutionRecordStatus.FAILED,
}


def latest_checks(instance: dg.DagsterInstance, check_keys) -> pd.DataFrame:
    """Each check's latest finished evaluation. A check can be planned by a run still queued or
    going (a backfill beside the daily run): its latest record then holds no result, so the
    one before it is read."""
    storage = instance.event_log_storage
    records = storage.get_latest_asset_check_execution_by_key(list(check_keys))
    rows = []
    for key, record in records.items():
        if record.status not in DONE:
            history = storage.get_asset_check_execution_history(key, limit=1, status=DONE)
            record = history[0] if history else None
        evaluation = record.evaluation if record is not None else None
        if not isinstance(evaluation, dg.AssetCheckEvaluation):
            continue
        rows.append(
            {
                "asset": key.asset_key.to_user_string(),
                "check": key.name,
                "severity": evaluation.severity.value,
                "blocking": bool(getattr(evaluation, "blocking", False)),
                "passed": bool(evaluation.passed),
                "message": "" if evaluation.passed else check_message(dict(evaluation.metadata)),
                "when_utc": _ts(record.create_timestamp),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["passed", "asset", "check"]) if len(frame) else frame


def model_versions(tracking_uri: str) -> list[ModelVersionInfo]:
    """Every registered version of segflow's models (ml.registry.version_listing: read from
    the registry cache while the store is unchanged, so a daily run does not load MLflow)."""
    from ml.registry import version_listing
    from orchestration.report.model_facts import model_facts

    out = []
    for name in (fact.registered_name for fact in model_facts().values()):
        for v in version_listing(name, tracking_uri) or []:
            own, baseline, candidates = run_metrics(v["metrics"])
            out.append(
                ModelVersionInfo(
                    model=name,
                    version=v["version"],
                    created=_ts(v["created_ms"] / 1000),
                    aliases=",".join(v["aliases"]),
                    metrics=own,
                    baseline=baseline,
                    candidates=candidates,
                )
            )
    return out


def run_metrics(metrics: dict[str, float]) -> tuple[dict, dict, dict]:
    """(the version's own holdout metrics, the baseline's, every candidate's) from a training
    run. The run logs the winner's metrics unprefixed and each candidate's as
    `candidate_<name>_<metric>` (ml/tracking.py); the baseline is the linear candidate, or
    `baseline_<metric>` in runs logged before candidates existed."""
    from ml.candidates import LINEAR

    legacy = {
        k.removeprefix("baseline_"): v for k, v in metrics.items() if k.startswith("baseline_")
    }
    plain = {k: v for k, v in metrics.items() if not k.startswith(("baseline_", "candidate_"))}
    candidates = candidate_metrics(metrics, set(plain))
    measured = set(legacy) | {m for c in candidates.values() for m in c}
    own = {k: v for k, v in plain.items() if k in measured}
    return own, legacy or candidates.get(LINEAR, {}), candidates


def candidate_metrics(metrics: dict[str, float], names: set[str]) -> dict[str, dict[str, float]]:
    """`candidate_<name>_<metric>` run metrics (every candidate of the training run) as
    {candidate: {metric: value}}, for the metrics the version itself reports."""
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if not key.startswith("candidate_"):
            continue
        rest = key.removeprefix("candidate_")
        metric = next(
            (m for m in sorted(names, key=len, reverse=True) if rest.endswith("_" + m)), None
        )
        if metric:
            out.setdefault(rest[: -len(metric) - 1], {})[metric] = value
    return out


DRIFT_CHECK = dg.AssetCheckKey(dg.AssetKey("user_scores"), "feature_drift")


def drift_from_check(instance: dg.DagsterInstance) -> tuple[pd.DataFrame | None, str]:
    """The feature_drift check's latest finished result (its PSI per feature, its drifting
    list and threshold), so the chart and the check never disagree."""
    history = instance.event_log_storage.get_asset_check_execution_history(
        DRIFT_CHECK, limit=1, status=DONE
    )
    evaluation = history[0].evaluation if history else None
    if not isinstance(evaluation, dg.AssetCheckEvaluation):
        return None, ""
    metadata = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    table = markdown_table(str(metadata.get("psi_by_feature", "")))
    if table.empty or "psi" not in table:
        return None, ""
    drifting = {d.strip() for d in str(metadata.get("drifting_features", "")).split(",")}
    table = table.assign(
        psi=pd.to_numeric(table["psi"], errors="coerce"),
        drifting=table["column"].isin(drifting),
    )[["column", "psi", "drifting"]]
    note = (
        f"check {'passed' if evaluation.passed else 'FAILED'} at {_ts(history[0].create_timestamp):%Y-%m-%d %H:%M} UTC: "
        f"a feature drifts above PSI {metadata.get('threshold')} + noise floor "
        f"{metadata.get('noise_floor')}; today's not-churned customers vs the same population "
        "a week earlier, both scored by today's champion"
    )
    return table, note


def markdown_table(text: str) -> pd.DataFrame:
    """A pipe table as Dagster metadata previews hold it (header, rule, rows)."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if len(lines) < 3:
        return pd.DataFrame()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return pd.DataFrame(cells[2:], columns=cells[0])


def gather_inputs(
    instance: dg.DagsterInstance | None, settings: Settings, conn, check_keys=(), log=print
) -> ReportInputs:
    inputs = ReportInputs(freshness_max_age_hours=settings.freshness_max_age_hours)
    if instance is not None:
        inputs.runs = recent_runs(instance)
        inputs.freshness = last_updates(instance)
        if check_keys:
            inputs.checks = latest_checks(instance, check_keys)
    try:
        inputs.model_versions = model_versions(settings.mlflow_tracking_uri)
    except Exception as exc:  # the report must not fail because the registry is unreachable
        log(f"model registry not read: {exc}")
    if instance is not None:
        inputs.drift, inputs.drift_note = drift_from_check(instance)
    return inputs


def min_sample() -> int:
    return Settings.from_env().experiment_min_sample


def write_report(
    settings: Settings,
    instance: dg.DagsterInstance | None,
    check_keys=(),
    out_dir: Path | None = None,
    conn=None,
    log=print,
) -> ReportResult:
    """Gather inputs and build the report folder (default `SEGFLOW_REPORT_DIR`)."""
    from orchestration import warehouse

    out_dir = out_dir or settings.report_dir
    if conn is not None:
        inputs = gather_inputs(instance, settings, conn, check_keys, log)
        return build_report(
            settings.duckdb_path, out_dir, inputs, min_sample=min_sample(), log=log, conn=conn
        )
    with warehouse.connect(settings.duckdb_path) as own:
        inputs = gather_inputs(instance, settings, own, check_keys, log)
        return build_report(
            settings.duckdb_path, out_dir, inputs, min_sample=min_sample(), log=log, conn=own
        )


@dg.asset(
    group_name="monitoring",
    deps=["destination_sync", "fct_experiment_results"],
    kinds={"html", "python"},
    pool=DUCKDB_POOL,
    description="Static offline HTML report (Overview, Segments, Onboarding, Retention, "
    "Experiments, Models, Sync), rebuilt after every daily run and by `segflow report --open`. "
    f"Open `{Settings.from_env().report_dir / 'index.html'}` in a browser (works offline); "
    "charts are inline SVG with their numbers one click away.",
)
def segflow_report(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    segflow: SegflowSettingsResource,
) -> dg.MaterializeResult:
    settings = segflow.settings()
    try:
        check_keys = context.repository_def.asset_graph.asset_check_keys
    except Exception:  # in-process runs (CLI, tests) carry no repository: load the location
        from orchestration.definitions import defs as location

        check_keys = location().resolve_asset_graph().asset_check_keys
    with warehouse.connect() as conn:
        result = write_report(
            settings, context.instance, check_keys, conn=conn, log=context.log.info
        )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.url(f"{settings.report_url}/index.html"),
            "report_path": dg.MetadataValue.path(str(result.index)),
            "open_with": dg.MetadataValue.md(
                f"the link above opens while `segflow report --serve` runs; or open "
                f"`{result.index}` in a browser (works offline)"
            ),
            "charts": result.charts,
            "pages": dg.MetadataValue.json(result.pages),
            "not_shown_yet": dg.MetadataValue.json(result.missing),
        }
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[segflow_report])
