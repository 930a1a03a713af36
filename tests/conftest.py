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


# A module that builds a warehouse through dbt, Dagster or the CLI end to end carries
# `pytestmark = pytest.mark.slow` at its top: `make test-fast` (pytest -m "not slow") leaves it out.
