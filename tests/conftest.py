"""Shared test settings: every test run writes under a temporary SEGFLOW_HOME, never ./data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests run on fixed historical dates; without this, partitions would start where this
# machine's data starts (or 120 days ago), which moves. Set at import: definitions build their
# partitions when first imported, which can be during collection.
os.environ.setdefault("SEGFLOW_PARTITIONS_START", "2025-01-01")


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


# Modules that build a warehouse through dbt, Dagster or the CLI end to end: `make test-fast`
# (pytest -m "not slow") leaves them out; `make test` runs everything.
SLOW_MODULES = {
    "test_activation_endstate",
    "test_cli_run",
    "test_dbt_analytics",
    "test_dbt_incremental_bounded",
    "test_dbt_transform",
    "test_ml_labels",
    "test_ml_pipeline",
    "test_ml_store_demo",
    "test_orchestration_backfill",
    "test_pipeline_e2e",
    "test_report",
    "test_segments_demo",
    "test_sensors_landing",
    "test_settings_shared",
    "test_sources_vendors",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
