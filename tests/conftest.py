"""Shared test settings: every test run writes under a temporary SEGFLOW_HOME, never ./data.

The suite runs on two pytest-xdist workers (`make test`: `-n 2 --dist loadfile
--no-loadscope-reorder`: each module on one worker, in the order below, the most expensive
first). A session run several modules read (tests/support/shared_runs.py) is built once per
worker that runs one of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run on fixed historical dates; without this, partitions would start where this
# machine's data starts (or 120 days ago), which moves. Set at import: definitions build their
# partitions when first imported, which can be during collection.
os.environ.setdefault("SEGFLOW_PARTITIONS_START", "2025-01-01")

pytest_plugins = ("support.shared_runs", "support.cpu_time")

# The most expensive modules first (CPU seconds measured with support.cpu_time), so the two
# workers finish together instead of one starting a five-minute module at the end. A module
# not listed runs after these, slow ones (`pytestmark = pytest.mark.slow`) before fast ones.
EXPENSIVE_FIRST = (
    "test_orchestration_backfill.py",
    "test_spark_engine.py",
    "test_pipeline_e2e.py",
    "test_cli_run.py",
    "test_report_e2e.py",
    "test_spark_job.py",
    "test_dbt_analytics.py",
    "test_ml_labels.py",
    "test_dbt_transform.py",
    "test_activation_endstate.py",
    "test_ml_pipeline.py",
    "test_spark_scoring.py",
    "test_report.py",
    "test_tracking_plan.py",
    "test_dbt_incremental_bounded.py",
    "test_sources_vendors.py",
    "test_sources_gate.py",
    "test_sensors_landing.py",
)


@pytest.fixture(scope="session", autouse=True)
def isolated_segflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("segflow_home")
    previous = {k: os.environ.get(k) for k in ("SEGFLOW_HOME", "DAGSTER_HOME")}
    os.environ["SEGFLOW_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    (home / "dagster_home").mkdir()
    yield home
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _rank(item: pytest.Item) -> tuple[int, int]:
    name = item.path.name
    if name in EXPENSIVE_FIRST:
        return 0, EXPENSIVE_FIRST.index(name)
    return (1 if item.get_closest_marker("slow") else 2), 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The expensive modules first (xdist's --dist loadfile keeps each module on one worker,
    so a module-scoped warehouse is built once). The sort is stable: a module's tests keep
    their order."""
    items.sort(key=_rank)


def pytest_configure(config: pytest.Config) -> None:
    """Before the xdist workers start, the controller makes sure the dbt manifest exists:
    two workers importing the Dagster definitions at once on a fresh clone would both parse
    into dbt_project/target."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    from orchestration.cli_run import parse_manifest
    from orchestration.settings import DBT_PROJECT_DIR, Settings

    if not (DBT_PROJECT_DIR / "target" / "manifest.json").exists():
        parse_manifest(Settings.from_env())


# A module that builds a warehouse through dbt, Dagster or the CLI end to end carries
# `pytestmark = pytest.mark.slow` at its top: `make test-fast` (pytest -m "not slow") leaves it out.
