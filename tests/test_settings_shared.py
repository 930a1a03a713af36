"""One setting, one meaning: every value dbt reads from the environment has the same variable
name and default in orchestration/settings.py, and dbt really sees the value that is set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dbt_fixtures import run_dbt

from orchestration.settings import DBT_PROJECT_DIR, PROJECT_ROOT

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

ENV_VAR = re.compile(r"env_var\('(SEGFLOW_[A-Z0-9_]+)',\s*'([^']*)'\)")


def _python_defaults() -> dict[str, str]:
    """Variable -> default as written in settings.py (`_int("SEGFLOW_X", 3)` and friends)."""
    source = (PROJECT_ROOT / "orchestration" / "settings.py").read_text()
    found = re.findall(r'_\w+\(\s*"(SEGFLOW_[A-Z0-9_]+)",\s*"?([^",)]*)"?', source)
    return {name: default.strip() for name, default in found}


def test_dbt_env_defaults_match_settings() -> None:
    dbt_vars = dict(ENV_VAR.findall((DBT_PROJECT_DIR / "dbt_project.yml").read_text()))
    assert "SEGFLOW_LATE_ARRIVAL_DAYS" in dbt_vars
    python = _python_defaults()
    for name, default in dbt_vars.items():
        assert name in python, f"{name} is read by dbt_project.yml but not by settings.py"
        assert python[name] == default, f"{name}: dbt default {default!r}, Python {python[name]!r}"


def test_dbt_sees_the_late_arrival_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_LATE_ARRIVAL_DAYS", "7")
    proc = run_dbt(
        [
            "compile",
            "--quiet",
            "--inline",
            "select {{ var('late_arrival_days') | int + 100 }} as v",
        ],
        tmp_path / "w.duckdb",
        tmp_path / "target",
    )
    assert "107" in proc.stdout, proc.stdout


def test_every_variable_read_is_in_the_readme() -> None:
    """The configuration table lists every environment variable the code reads."""
    read = set()
    for package in ("orchestration", "expectations", "ml"):
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            read |= set(re.findall(r'"((?:SEGFLOW|CUSTOMERIO)_[A-Z0-9_]+)"', path.read_text()))
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert read and sorted(v for v in read if f"`{v}`" not in readme) == []
