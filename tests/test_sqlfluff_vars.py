"""`make lint` feeds sqlfluff's dbt templater the settings' dbt vars through an extra config
written by `segflow dbt-vars --sqlfluff`; these tests pin that it is the same `dbt_vars()` dbt
gets (any setting, not only the defaults) and that `.sqlfluff` holds no copy of them."""

from __future__ import annotations

import configparser
from pathlib import Path

from orchestration.cli import main
from orchestration.run_window import dbt_vars
from orchestration.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SECTION = "sqlfluff:templater:dbt:context"


def _generated(capsys) -> dict[str, str]:
    assert main(["dbt-vars", "--sqlfluff"]) == 0
    parser = configparser.ConfigParser()
    parser.read_string(capsys.readouterr().out)
    return dict(parser[SECTION])


def test_sqlfluff_context_is_dbt_vars(capsys, monkeypatch):
    monkeypatch.setenv("SEGFLOW_CHURN_DEFINITION", "cancellation")
    monkeypatch.setenv("SEGFLOW_LATE_ARRIVAL_DAYS", "5")
    expected = {k: str(v) for k, v in dbt_vars(Settings.from_env()).items()}
    assert _generated(capsys) == expected
    assert expected["churn_definition"] == "cancellation"
    assert expected["late_arrival_days"] == "5"


def test_dot_sqlfluff_holds_no_copy_of_the_settings():
    parser = configparser.ConfigParser()
    parser.read(REPO / ".sqlfluff")
    copied = set(parser[SECTION]) & set(dbt_vars(Settings.from_env()))
    assert not copied, f".sqlfluff repeats settings {copied}; they come from `segflow dbt-vars`"
