"""segflow's settings reach dbt as vars (macro `setting`): a missing one is a compile error that
names it; under vars.lint_only (a bare `sqlfluff lint`) placeholders stand in, on an in-memory
database, so the models compile without segflow and without a warehouse."""

from __future__ import annotations

from pathlib import Path

from dbt_fixtures import run_dbt_cli

from orchestration import run_window
from orchestration.settings import Settings


def test_a_missing_setting_names_itself(tmp_path: Path) -> None:
    values = run_window.dbt_vars(Settings.from_env())
    values.pop("late_arrival_days")
    proc = run_dbt_cli(
        ["compile", "--select", "int_user_activity_daily"],
        tmp_path / "warehouse.duckdb",
        tmp_path / "target",
        values,
        check=False,
    )
    assert proc.returncode != 0
    assert "vars.late_arrival_days is not set" in proc.stdout + proc.stderr


def test_lint_only_compiles_without_settings_or_warehouse(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "warehouse.duckdb"
    proc = run_dbt_cli(
        ["compile", "--select", "fct_user_features", "int_user_activity_daily"],
        missing,
        tmp_path / "target",
        {"lint_only": True},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert not missing.parent.exists()
    compiled = next((tmp_path / "target").rglob("fct_user_features.sql")).read_text()
    assert "snapshot_date" in compiled
