"""One raw contract: the loader, the quality suites and docs/contracts.md agree on it."""

from __future__ import annotations

import re

from contracts import marts, tracking_plan
from contracts.models import KINDS
from expectations import tables as contract
from orchestration.settings import PROJECT_ROOT
from orchestration.sources.files import TABLES as LOADER_TABLES

RAW = ("crm_contacts", "events", "billing_invoices")


def _columns(table: str) -> list[tuple[str, str]]:
    spec = contract.TABLES[f"raw.{table}"]
    return [(c, t) for c, t in spec.columns.items() if c not in contract.META_COLUMNS]


def test_loader_reads_the_contract() -> None:
    kinds = {"VARCHAR": "str", "TIMESTAMP": "ts", "DOUBLE": "num", "JSON": "json"}
    for table in RAW:
        assert list(LOADER_TABLES[table].columns) == [(c, kinds[t]) for c, t in _columns(table)]


def test_docs_list_the_contract() -> None:
    docs = (PROJECT_ROOT / "docs" / "contracts.md").read_text()
    for table in RAW:
        row = next(line for line in docs.splitlines() if line.startswith(f"| `raw.{table}` |"))
        documented = re.findall(r"(\w+) (VARCHAR|TIMESTAMP|DOUBLE|JSON)\b", row.split("|")[2])
        assert documented == _columns(table), table


def _features_docs() -> str:
    docs = (PROJECT_ROOT / "docs" / "contracts.md").read_text()
    start = docs.index("- `fct_user_features`")
    return docs[start : docs.index("\n- `", start + 1)]


def test_docs_list_the_feature_columns() -> None:
    """Every fct_user_features column of the contract is on the page, by name or (for the
    columns expanded from the tracking plan) by its documented family."""
    plan = tracking_plan.load()
    section = _features_docs()
    named = set(re.findall(r"\b[a-z_0-9]+\b", section))
    expanded = {
        *plan.milestone_columns,
        *plan.counter_columns,
        *tracking_plan.event_feature_columns(plan.core_features),
    }
    assert "`reached_<milestone>`" in section and "vars.milestone_counters" in section
    for suffix in tracking_plan.EVENT_SUFFIXES:
        assert f"`evt_<event slug>{suffix}`" in section, suffix
    undocumented = [c for c in marts.feature_columns(plan) if c not in named | expanded]
    assert undocumented == []
    documented = {w for w in named if w in marts.feature_columns(plan)}
    # and nothing on the page names a column the contract does not have
    stale = [
        w
        for w in re.findall(r"\b(?:reached|is|days|evt)_[a-z_0-9]+\b", section)
        if w not in marts.feature_columns(plan) and w not in marts.SCORE_COLUMNS
    ]
    assert stale == [] and documented


def test_docs_list_the_score_columns_in_contract_order() -> None:
    """user_scores is derived from the model kinds (contracts/models.py); the documented
    column order is the table's, so a change to a kind's columns must show up on the page."""
    docs = (PROJECT_ROOT / "docs" / "contracts.md").read_text()
    start = docs.index("`SCORE_COLUMNS`):", docs.index("- `user_scores` (grain"))
    entry = docs[start : docs.index("\n- `", start)]
    named = [w for w in re.findall(r"\b[a-z_0-9]+\b", entry) if w in marts.SCORE_COLUMNS]
    assert named == list(marts.SCORE_COLUMNS)
    for spec in KINDS.values():
        assert marts.SCORE_COLUMNS[spec.score_column] == "DOUBLE", spec.kind
        assert set(spec.score_fields) <= set(marts.SCORE_COLUMNS), spec.kind
        assert spec.model_version_column in marts.SCORE_COLUMNS, spec.kind
