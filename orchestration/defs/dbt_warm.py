"""One warm dbt per run process: dbt's programmatic runner (dbtRunner) instead of a dbt CLI
subprocess per step.

A daily run has three dbt steps. As subprocesses each paid a Python start, dbt's imports, a
partial parse of the project and an adapter set-up of its own, seconds each before any SQL ran
(the fixed cost of a small day). Here dbt is imported and the project parsed once per process
(the in-process executor runs every step of a run in the launcher's process); every step then
invokes the same parsed manifest, so no step parses. dbt's result events are turned into
Dagster events by dagster-dbt's own converter, exactly as the CLI path streams them.

Opt-in (`SEGFLOW_DBT_IN_PROCESS=1`; default 0 = the dagster-dbt CLI subprocess per step): a second
build in one process on the cached manifest referenced ephemeral CTEs dbt no longer injected
(`__dbt__cte__int_segment_members does not exist`), and a deep copy per build broke dbt's lookups.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

from orchestration.dbt_parse import DbtParseError, dbt_args, parsed_manifest

PARTIAL_PARSE = "partial_parse.msgpack"
RESULT_EVENTS = frozenset(
    ("LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult", "NodeFinished")
)
_LOCK = threading.Lock()


def _target_dir(project: DbtProject) -> Path:
    """A private target folder per process (seeded with the project's partial parse file), so
    concurrent runs never write each other's artifacts."""
    project_target = Path(project.project_dir) / project.target_path
    target = project_target / f"warm-{uuid.uuid4().hex[:8]}"
    target.mkdir(parents=True, exist_ok=True)
    if (project_target / PARTIAL_PARSE).exists():
        shutil.copy(project_target / PARTIAL_PARSE, target / PARTIAL_PARSE)
    return target


_TARGETS: dict[str, Path] = {}


def _target_for_process(project: DbtProject) -> Path:
    with _LOCK:
        key = str(project.project_dir)
        if key not in _TARGETS:
            _TARGETS[key] = _target_dir(project)
        return _TARGETS[key]


def _release_warehouse() -> None:
    """Close dbt's DuckDB handle: DuckDB refuses a second in-process connection to the same
    file with other settings, and the run's Python steps open their own after dbt."""
    from dbt.adapters.factory import FACTORY

    for adapter in list(FACTORY.adapters.values()):
        adapter.cleanup_connections()
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another engine's adapter only
        return
    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
    if env is not None:
        env.close()


def build(
    context: dg.AssetExecutionContext,
    project: DbtProject,
    translator: DagsterDbtTranslator,
    vars_arg: Sequence[str],
) -> Iterator[Any]:
    """`dbt build` of this step's selected models in this process; yields Dagster events."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    target_dir = _target_for_process(project)
    project_dir, target = Path(project.project_dir), str(project.target)
    try:
        manifest_obj = parsed_manifest(project_dir, target, vars_arg, target_dir)
    except DbtParseError as exc:
        raise dg.Failure(str(exc)) from exc
    params = get_updated_cli_invocation_params_for_context(
        context=context, manifest={}, dagster_dbt_translator=translator
    )
    raw_events: list[dict[str, Any]] = []

    def collect(msg: Any) -> None:
        if msg.info.name in RESULT_EVENTS:
            raw_events.append(msg_to_dict(msg))

    args = ["build", *dbt_args(project_dir, target, target_dir, vars_arg), *params.selection_args]
    if params.indirect_selection:
        args += ["--indirect-selection", params.indirect_selection]
    context.log.info(f"dbt (in process): {' '.join(args)}")
    try:
        result = dbtRunner(manifest=manifest_obj, callbacks=[collect]).invoke(args)
    finally:
        _release_warehouse()
    for raw in raw_events:
        event = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
        yield from event.to_default_asset_events(
            manifest=params.manifest,
            dagster_dbt_translator=params.dagster_dbt_translator,
            context=context,
            target_path=target_dir,
            project=project,
        )
    if not result.success:
        failed = [
            f"{r['data']['node_info']['unique_id']}: {r['data']['node_info'].get('node_status')}"
            f" ({r['data'].get('run_result', {}).get('message', '')[:300]})"
            for r in raw_events
            if r["info"]["name"] == "NodeFinished"
            and r["data"]["node_info"].get("node_status") in ("error", "fail", "runtime error")
        ]
        raise dg.Failure(
            f"dbt build failed{': ' + '; '.join(failed) if failed else ''}"
            f"{' (' + str(result.exception) + ')' if result.exception else ''}"
        )
