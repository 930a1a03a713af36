"""Shared test settings: every test run writes under a temporary SEGFLOW_HOME, never ./data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
