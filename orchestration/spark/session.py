"""The Spark session of segflow's Python steps on the Spark engine.

Same catalog and semantics as dbt's `spark` target (profiles.yml): the warehouse folder, the
Derby metastore, UTC session time and exact decimal division, so Python steps read the tables
dbt built. Import pyspark lazily: the CLI must not pay for it on the DuckDB engine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from orchestration.settings import Settings
from orchestration.spark import metastore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def session_config(settings: Settings) -> dict[str, str]:
    env = settings.spark_env()
    return {
        "spark.master": settings.spark_master,
        "spark.sql.warehouse.dir": env["SEGFLOW_SPARK_WAREHOUSE"],
        "spark.hadoop.javax.jdo.option.ConnectionURL": (
            f"jdbc:derby:;databaseName={env['SEGFLOW_SPARK_METASTORE']};create=true"
        ),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.decimalOperations.allowPrecisionLoss": "false",
        "spark.sql.shuffle.partitions": os.environ.get("SEGFLOW_SPARK_SHUFFLE_PARTITIONS", "4"),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": (
            f"{env['SEGFLOW_SPARK_JAVA_OPTIONS']} "
            f"-Dderby.stream.error.file={settings.spark_dir / 'derby.log'}"
        ).strip(),
        "spark.sql.codegen.wholeStage": env["SEGFLOW_SPARK_CODEGEN"],
        "spark.sql.adaptive.enabled": env["SEGFLOW_SPARK_ADAPTIVE"],
        "spark.sql.legacy.createHiveTableByDefault": "false",
        "spark.sql.codegen.hugeMethodLimit": "8000",
        "spark.sql.sources.parallelPartitionDiscovery.threshold": env[
            "SEGFLOW_SPARK_LISTING_THRESHOLD"
        ],
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": env[
            "SEGFLOW_SPARK_SUCCESS_MARKERS"
        ],
        "spark.sql.catalogImplementation": settings.spark_catalog,
    }


def hold_process(settings: Settings) -> None:
    """Make this process the Spark engine's: the metastore held for the process's lifetime,
    and Python workers (the scoring UDF) on this interpreter, which has the model's libraries
    (pyspark reads PYSPARK_PYTHON when its context starts, which may be dbt-spark's)."""
    if settings.spark_catalog == "in-memory":
        _require_fresh_warehouse(settings)
    metastore.hold_for_process(settings.spark_env()["SEGFLOW_SPARK_METASTORE"])
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def _require_fresh_warehouse(settings: Settings) -> None:
    """An in-memory catalog knows no table an earlier process built: refuse a warehouse that
    holds some (dbt would rebuild them over their folders and fail, or read stale ones)."""
    if metastore.held():
        return  # this process's own tables
    warehouse = Path(settings.spark_env()["SEGFLOW_SPARK_WAREHOUSE"])
    built = sorted(p.name for p in warehouse.glob("*.db/*") if p.is_dir())
    if built:
        raise RuntimeError(
            f"SEGFLOW_SPARK_CATALOG=in-memory keeps no catalog between processes, but the Spark "
            f"warehouse {warehouse} already holds tables from an earlier run ({', '.join(built[:5])}"
            f"{', ...' if len(built) > 5 else ''}): use SEGFLOW_SPARK_CATALOG=hive (the default) or "
            "a fresh SEGFLOW_SPARK_DIR"
        )


def get_session(settings: Settings | None = None, app_name: str = "segflow") -> SparkSession:
    """This process's Spark session: dbt-spark's when a dbt step ran here (getOrCreate), the
    same catalog otherwise."""
    from pyspark.sql import SparkSession

    settings = settings or Settings.from_env()
    hold_process(settings)
    builder = SparkSession.builder.appName(app_name).enableHiveSupport()
    for key, value in session_config(settings).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
