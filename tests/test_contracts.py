"""One raw contract: the loader, the quality suites and docs/contracts.md agree on it."""

from __future__ import annotations

import re

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
