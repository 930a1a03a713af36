"""The segflow code location: every module under `defs/`, run in-process.

The in-process executor keeps each run to one process, and the `duckdb` pool (limit 1,
set in DAGSTER_HOME/dagster.yaml) keeps two runs from writing the warehouse at once.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
