"""GX Data Docs built once per run (expectations.runner.data_docs_once) render every stored
result as building after each suite does, and a copied SEGFLOW_HOME writes its own pages."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from test_expectations_suites import CONFIG, add_events, create_raw

from expectations import validate_table
from expectations.runner import data_docs_once

DAY = date(2025, 3, 10)
NOW = datetime(2025, 3, 12, 12, 0)


@pytest.fixture
def conn():
    with duckdb.connect() as connection:
        create_raw(connection, "events")
        for day in (DAY - timedelta(days=1), DAY):
            add_events(connection, day, 20)
        yield connection


def _pages(gx_dir: Path) -> list[str]:
    """The rendered validation pages, by suite (their run-time folders differ per build)."""
    folder = gx_dir / "data_docs" / "validations"
    return sorted(p.relative_to(folder).parts[0] for p in folder.rglob("*.html"))


def test_docs_built_once_equal_docs_built_per_suite(conn, tmp_path) -> None:
    each, once = tmp_path / "each" / "gx", tmp_path / "once" / "gx"
    for day in (DAY - timedelta(days=1), DAY):
        validate_table(conn, "events", [day], CONFIG, gx_dir=each, now=NOW)
    with data_docs_once():
        results = [
            validate_table(conn, "events", [day], CONFIG, gx_dir=once, now=NOW)
            for day in (DAY - timedelta(days=1), DAY)
        ]
        assert _pages(once) == []  # nothing rendered yet: the block builds when it ends
        assert all(
            r.data_docs_index == (once / "data_docs" / "index.html").resolve() for r in results
        )
    assert _pages(once) == _pages(each) and len(_pages(once)) == 6
    index = (once / "data_docs" / "index.html").read_text()
    assert (
        index.count("raw_events__rows/")
        == 2
        == ((each / "data_docs" / "index.html").read_text().count("raw_events__rows/"))
    )
    assert [r.passed for r in results[0].outcomes] == [
        o.passed
        for o in validate_table(conn, "events", [DAY - timedelta(days=1)], CONFIG, now=NOW).outcomes
    ]


def test_a_copied_home_writes_its_own_data_docs(conn, tmp_path) -> None:
    first = tmp_path / "first" / "gx"
    validate_table(conn, "events", [DAY], CONFIG, gx_dir=first, now=NOW)
    copy = tmp_path / "copy" / "gx"
    shutil.copytree(first, copy)
    before = _pages(first)
    validate_table(conn, "events", [DAY - timedelta(days=1)], CONFIG, gx_dir=copy, now=NOW)
    assert _pages(first) == before  # the original home is left alone
    assert len(_pages(copy)) == len(before) + 3
    assert (copy / "data_docs" / "index.html").read_text().count("raw_events__rows/") == 2
