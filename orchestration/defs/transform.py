"""dbt on DuckDB through dagster-dbt: staging -> incremental (partitioned) -> marts -> segment marts
(and the training sets, in the weekly training job).

dbt tests surface as asset checks. Every invocation, and the parse that writes the manifest,
gets the same `--vars` from `dbt_vars(settings)`; the incremental step's partition window goes
to the run-window table instead (orchestration/run_window.py), so a new day never makes dbt
re-parse the project and a backfill range is still one dbt invocation.
"""

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from orchestration import warehouse
from orchestration.dbt_selection import TRAINING_TAG, pipeline_exclusions, split_models
from orchestration.defs import dbt_warm
from orchestration.defs.jobs import TRAINING_GROUP
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, run_window, single_run
from orchestration.run_window import dbt_vars_arg, window_in_table, window_sql
from orchestration.settings import DBT_PROJECT_DIR, Settings
from orchestration.spark import metastore as spark_metastore
from orchestration.spark import session as spark_session
from orchestration.warehouse import dbt_env

dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR,
    target=Settings.from_env().dbt_target,
    # The manifest's parse gets the same vars as every invocation: partial parsing stays valid.
    prepare_project_cli_args=["parse", "--quiet", *dbt_vars_arg(Settings.from_env())],
)
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
        settings = Settings.from_env()
        window = run_window(context) if partitioned else None
        if partitioned and window is None:
            raise dg.Failure(f"{name}: a partitioned dbt step needs a partition range")
        if window is not None and window_in_table(settings):
            with warehouse.connect(settings.duckdb_path) as conn:
                conn.execute(window_sql(window))
            context.log.info(f"dbt incremental window {window.label} (table segflow_run_window)")
            window = None  # not in --vars: no re-parse
        if settings.dbt_in_process:
            # One warm dbt per run process. On the spark target its Spark session (dbt-spark's
            # session method: getOrCreate) is the process's one JVM for every step, holding the
            # Derby metastore for the process; the window reaches it through --vars (one parse
            # per distinct window, kept for the process).
            if settings.dbt_target == "spark":
                spark_session.hold_process(settings)
            vars_arg = dbt_vars_arg(settings, window)
            yield from dbt_warm.build(
                context, dbt_project, translator, vars_arg, pipeline_exclusions()
            )
            return
        if settings.dbt_target == "spark" and settings.spark_catalog == "in-memory":
            raise dg.Failure(
                "SEGFLOW_SPARK_CATALOG=in-memory needs SEGFLOW_DBT_IN_PROCESS=1: the catalog "
                "lives in the run's process, and a dbt subprocess per step would not see it"
            )
        args = ["build", *dbt_vars_arg(settings, window), *pipeline_exclusions()]
        # No fetch_row_counts(): it opens the DuckDB file in this process with dbt's connection
        # settings, which then blocks every later connection of the run.
        # The spark target's Derby metastore takes one process at a time: a clear error now
        # rather than a failure deep in Spark when another run holds it.
        with spark_metastore.for_dbt(
            settings.dbt_target, settings.spark_env()["SEGFLOW_SPARK_METASTORE"]
        ):
            yield from dbt.cli(args, context=context).stream()

    return _assets


@dg.definitions
def defs() -> dg.Definitions:
    groups = {
        # The staging views the incremental models read run in the same dbt invocation
        # (one dbt start-up less per run); they are partitioned with them.
        "dbt_incremental": selection.upstream + selection.incremental,
        "dbt_marts": selection.downstream,
        "dbt_segment_marts": selection.after_segments,
        "dbt_training_sets": selection.training,
    }
    # A step with an incremental model is partitioned, so the run's window reaches it; an
    # unpartitioned one would rebuild every date of its incremental models every day.
    assets = [
        _dbt_assets(name, models, selection.needs_window(models))
        for name, models in groups.items()
        if models
    ]
    dbt = DbtCliResource(
        project_dir=dbt_project,
        target=Settings.from_env().dbt_target,
        dbt_executable=str(Path(sys.executable).parent / "dbt"),
    )
    return dg.Definitions(assets=assets, resources={"dbt": dbt})
