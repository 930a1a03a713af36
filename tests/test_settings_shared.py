"""One setting, one meaning: dbt reads segflow's settings only through `dbt_vars(settings)`
(no copied defaults in dbt_project.yml), and dbt really sees the value that is set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dbt_fixtures import run_dbt

from orchestration.run_window import dbt_vars
from orchestration.settings import DBT_PROJECT_DIR, PROJECT_ROOT, Settings

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it


# a var read in dbt: var('x') or the settings macro setting('x')
READ_VAR = r"(?:\bvar|\bsetting)\('(\w+)'"


def test_dbt_project_holds_no_copy_of_a_setting() -> None:
    """dbt gets settings only from `dbt_vars(settings)`: no `env_var('SEGFLOW_...')` default in
    dbt_project.yml, and every var the models read that is a setting is one dbt_vars passes."""
    project = (DBT_PROJECT_DIR / "dbt_project.yml").read_text()
    assert "env_var('SEGFLOW_" not in project and 'env_var("SEGFLOW_' not in project
    declared = yaml.safe_load(project)["vars"] or {}
    passed = set(dbt_vars(Settings.from_env()))
    assert not passed & set(declared), "a setting's default is copied into dbt_project.yml"
    sql = "".join(p.read_text() for p in (DBT_PROJECT_DIR / "models").rglob("*.sql"))
    read = set(re.findall(READ_VAR, sql))
    macros = "".join(p.read_text() for p in (DBT_PROJECT_DIR / "macros").rglob("*.sql"))
    assert passed <= read | set(re.findall(READ_VAR, macros))  # some only via macros
    assert read <= passed | set(declared) | {"value_milestone"}, read - passed - set(declared)


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
