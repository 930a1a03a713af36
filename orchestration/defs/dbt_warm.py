"""One warm dbt per run process: dbt's programmatic runner (dbtRunner) instead of a dbt CLI
subprocess per step.

A daily run has three dbt steps. As subprocesses each paid a Python start, dbt's imports, a
partial parse of the project and an adapter set-up of its own, seconds each before any SQL ran
(the fixed cost of a small day). Here dbt is imported and the project parsed once per process
(the in-process executor runs every step of a run in the launcher's process); every step then
builds on a fresh copy of that parse (orchestration/dbt_parse.py), so no step parses and no
build sees another's compiled state. dbt's result events are turned into Dagster events by
dagster-dbt's own converter, exactly as the CLI path streams them.

`SEGFLOW_DBT_IN_PROCESS=0` returns to the dagster-dbt CLI subprocess per step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject
from dagster_dbt.asset_utils import get_updated_cli_invocation_params_for_context
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

from orchestration.dbt_parse import DbtParseError, invoke
from orchestration.dbt_selection import in_process_flags

RESULT_EVENTS = frozenset(
    ("LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult", "NodeFinished")
)


def _failures(events: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r['data']['node_info']['unique_id']}: {r['data']['node_info'].get('node_status')}"
        f" ({r['data'].get('run_result', {}).get('message', '')[:300]})"
        for r in events
        if r["info"]["name"] == "NodeFinished"
        and r["data"]["node_info"].get("node_status") in ("error", "fail", "runtime error")
    ]


def build(
    context: dg.AssetExecutionContext,
    project: DbtProject,
    translator: DagsterDbtTranslator,
    vars_arg: Sequence[str],
    extra_args: Sequence[str] = (),
) -> Iterator[Any]:
    """`dbt build` of this step's selected models in this process (plus `extra_args`, e.g.
    exclusions); yields Dagster events."""
    params = get_updated_cli_invocation_params_for_context(
        context=context, manifest={}, dagster_dbt_translator=translator
    )
    selection = list(params.selection_args)
    if params.indirect_selection:
        selection += ["--indirect-selection", params.indirect_selection]
    selection += [*extra_args, *in_process_flags()]
    context.log.info(f"dbt (in process): build {' '.join(selection)}")
    try:
        with invoke(
            "build",
            Path(project.project_dir),
            str(project.target),
            vars_arg,
            selection,
            keep_event=RESULT_EVENTS.__contains__,
        ) as run:
            for raw in run.events:
                event = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
                yield from event.to_default_asset_events(
                    manifest=params.manifest,
                    dagster_dbt_translator=params.dagster_dbt_translator,
                    context=context,
                    target_path=run.target_dir,
                    project=project,
                )
            result, failed = run.result, _failures(run.events)
    except DbtParseError as exc:
        raise dg.Failure(str(exc)) from exc
    if not result.success:
        raise dg.Failure(
            f"dbt build failed{': ' + '; '.join(failed) if failed else ''}"
            f"{' (' + str(result.exception) + ')' if result.exception else ''}"
        )
