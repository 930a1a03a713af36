"""dbt on DuckDB through dagster-dbt: staging -> incremental (partitioned) -> marts -> segment marts.

dbt tests surface as asset checks. Incremental models get the run's partition window as
`min_date`/`max_date` vars, so a backfill range is one dbt invocation.
"""

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration.dbt_selection import TRAINING_TAG, split_models, window_vars
from orchestration.defs.jobs import TRAINING_GROUP
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, single_run
from orchestration.settings import DBT_PROJECT_DIR, Settings
from orchestration.warehouse import dbt_env

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, target=Settings.from_env().dbt_target)
dbt_project.prepare_if_dev()
if not dbt_project.manifest_path.exists():
    # Outside `dagster dev` nothing prepares the manifest; build it once so imports work.
    dbt_project.preparer.prepare(dbt_project)


class SegflowDbtTranslator(DagsterDbtTranslator):
    """Groups follow dbt folders (staging / intermediate / marts); the training sets join the
    weekly training group, so the daily job never builds them."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] != "model":
            return super().get_group_name(dbt_resource_props)
        if TRAINING_TAG in dbt_resource_props.get("config", {}).get("tags", []):
            return TRAINING_GROUP
        fqn = dbt_resource_props.get("fqn", [])
        return f"dbt_{fqn[1]}" if len(fqn) > 2 else "dbt"


translator = SegflowDbtTranslator()
selection = split_models(dbt_project.manifest_path)


def _dbt_env() -> None:
    """dbt reads the warehouse path from the environment; always hand it the resolved one.

    Tests run only once every model they read is built or selected ("buildable"), so a test
    spanning two steps runs in the later one instead of failing in the earlier one."""
    settings = Settings.from_env()
    duckdb_path = settings.duckdb_path
    os.environ["SEGFLOW_DUCKDB_PATH"] = str(duckdb_path)
    os.environ.update(dbt_env(settings))  # memory_limit / threads for profiles.yml
    os.environ.setdefault("DBT_INDIRECT_SELECTION", "buildable")
    duckdb_path.parent.mkdir(parents=True, exist_ok=True)


def _dbt_assets(name: str, models: tuple[str, ...], partitioned: bool) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        select=" ".join(models),
        name=name,
        partitions_def=daily_partitions if partitioned else None,
        backfill_policy=single_run if partitioned else None,
        dagster_dbt_translator=translator,
        pool=DUCKDB_POOL,
    )
    def _assets(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        _dbt_env()
        args = ["build"]
        if partitioned:
            window = context.partition_time_window
            dbt_vars = window_vars(window.start.isoformat(), window.end.isoformat())
            context.log.info(f"dbt incremental window {dbt_vars}")
            args += ["--vars", json.dumps(dbt_vars)]
        # No fetch_row_counts(): it opens the DuckDB file in this process with dbt's connection
        # settings, which then blocks every later connection of the run.
        yield from dbt.cli(args, context=context).stream()

    return _assets


@dg.definitions
def defs() -> dg.Definitions:
    groups = {
        "dbt_upstream": (selection.upstream, False),
        "dbt_incremental": (selection.incremental, True),
        "dbt_marts": (selection.downstream, False),
        "dbt_segment_marts": (selection.after_segments, False),
        "dbt_training_sets": (selection.training, False),
    }
    assets = [
        _dbt_assets(name, models, partitioned)
        for name, (models, partitioned) in groups.items()
        if models
    ]
    dbt = DbtCliResource(
        project_dir=dbt_project,
        target=Settings.from_env().dbt_target,
        dbt_executable=str(Path(sys.executable).parent / "dbt"),
    )
    return dg.Definitions(assets=assets, resources={"dbt": dbt})
