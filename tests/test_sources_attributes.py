"""The `attributes:` block of sources.yml: declared types reach dbt's vars, the contract's
feature columns and the model inputs; a bad entry fails naming the file and the entry."""

from __future__ import annotations

import pytest

from contracts import marts
from orchestration.model_inputs import model_features
from orchestration.run_window import dbt_vars
from orchestration.settings import Settings
from orchestration.sources.mapping_rules import MappingError
from orchestration.sources.mappings import declared_attributes, parse_config

SOURCES = {"sources": {"events": "segment_s3"}}


def _attributes(entries):
    return parse_config({**SOURCES, "attributes": entries}, "landing/sources.yml").attributes


def test_declared_attributes_reach_dbt_vars_contract_and_model_inputs(tmp_path, monkeypatch):
    (tmp_path / "sources.yml").write_text(
        "sources: {events: segment_s3}\n"
        "attributes:\n  - {name: date_of_birth, type: date}\n"
        "  - {name: channel, type: category}\n  - {name: employees, type: number}\n"
    )
    monkeypatch.setenv("SEGFLOW_SOURCES_FILE", str(tmp_path / "sources.yml"))
    settings = Settings.from_env()
    assert dbt_vars(settings)["custom_attributes"] == [
        {"name": "date_of_birth", "type": "date", "column": "years_since_date_of_birth"},
        {"name": "channel", "type": "category", "column": "channel"},
        {"name": "employees", "type": "number", "column": "employees"},
    ]
    attributes = declared_attributes(settings)
    columns = marts.feature_columns(attributes=attributes)
    assert list(columns)[-3:] == ["years_since_date_of_birth", "channel", "employees"]
    assert [columns[c] for c in list(columns)[-3:]] == ["INT", "VARCHAR", "DOUBLE"]
    assert {"years_since_date_of_birth", "channel"} <= set(
        model_features("churn", None, attributes)
    )
    assert "years_since_date_of_birth" not in marts.feature_columns()


def test_no_sources_file_declares_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("SEGFLOW_SOURCES_FILE", raising=False)
    monkeypatch.setenv("SEGFLOW_LANDING_DIR", str(tmp_path))
    monkeypatch.setenv("SEGFLOW_DEMO_DIR", str(tmp_path))
    assert dbt_vars(Settings.from_env())["custom_attributes"] == []


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"name": "birthday", "type": "datetime"}], "attributes[0]: type 'datetime'"),
        ([{"name": "Date Of Birth", "type": "date"}], "attributes[0]: name 'Date Of Birth'"),
        ([{"name": "plan", "type": "category"}], "feature column 'plan', which already exists"),
        (
            [{"name": "tier", "type": "category"}, {"name": "tier", "type": "number"}],
            "attributes[1]: 'tier' would become feature column 'tier'",
        ),
        ([{"name": "tier"}], "attributes[0]: expected {name: <name>, type: <type>}"),
        ({"name": "tier", "type": "number"}, "`attributes:` must be a list"),
    ],
)
def test_bad_attribute_entries_fail_naming_the_file_and_entry(entries, message):
    with pytest.raises(MappingError) as err:
        _attributes(entries)
    assert str(err.value).startswith("landing/sources.yml: ")
    assert message in str(err.value)
