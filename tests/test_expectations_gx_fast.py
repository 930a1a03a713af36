"""expectations/gx_fast.py: GX's kwargs lookups with one configuration build per call give
GX's own values for every rule of every suite, metric ids are GX's own for plain and other
values, and a suite's outcomes are the same with GX's own methods and with the replacements."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import numpy as np
import pytest
from great_expectations.core.id_dict import IDDict
from great_expectations.expectations.expectation import Expectation

from expectations import QualityConfig, gx_fast, validate_table
from expectations.suites import partition_rules, row_rules, schema_rules
from expectations.tables import TABLES

NOW = datetime(2025, 3, 12, 12, 0)
RESULT_FORMATS = (
    None,
    {"result_format": {"result_format": "SUMMARY", "partial_unexpected_count": 5}},
    {
        "result_format": {
            "result_format": "SUMMARY",
            "partial_unexpected_count": 5,
            "unexpected_index_column_names": ["user_id"],
        }
    },
)


def every_rule():
    config = QualityConfig()
    for spec in TABLES.values():
        yield from schema_rules(spec)
        yield from row_rules(spec, spec.columns, config, NOW)
        yield from partition_rules(spec, config)


def test_installed_on_the_locked_gx_version():
    """A GX upgrade that changes these methods fails here: re-check gx_fast against it."""
    assert gx_fast.applicable()
    assert Expectation._get_runtime_kwargs is gx_fast.get_runtime_kwargs


@pytest.mark.parametrize("runtime", RESULT_FORMATS)
def test_same_kwargs_as_gx_for_every_rule(runtime):
    rules = list(every_rule())
    assert len(rules) > 100
    for rule in rules:
        exp = rule.expectation
        original, replaced = gx_fast.ORIGINALS, gx_fast.REPLACEMENTS
        assert replaced["_get_runtime_kwargs"](exp, runtime) == original["_get_runtime_kwargs"](
            exp, runtime
        ), rule.name
        assert replaced["_get_success_kwargs"](exp) == original["_get_success_kwargs"](exp)
        assert replaced["_get_domain_kwargs"](exp) == original["_get_domain_kwargs"](exp)
        for key in (*exp.runtime_keys, *exp.success_keys, "no_such_key"):
            assert replaced["_get_success_kwarg"](exp, key, 7) == original["_get_success_kwarg"](
                exp, key, 7
            ), (rule.name, key)


class Text(str):
    pass


ID_VALUES = (
    None, "x", Text("y"), 0, 7, -3, True, False, 1.5, float("nan"), float("inf"), -0.0,
    np.int64(4), np.float64(2.5), np.bool_(True), np.float32(0.1), [1, None, "a"], (1, 2),
    {"a": None, "b": [True, 1.0]}, {1: "int key"}, {"a": float("nan")}, {"s": {1, 2}},
    date(2025, 3, 10), [np.int64(1)],
)  # fmt: skip


def test_metric_ids_equal_gx_own():
    """Every pair of values (plain or not, nested or not) gives GX's own id."""
    assert IDDict.to_id is gx_fast.to_id
    for first in ID_VALUES:
        for second in ID_VALUES:
            ids = IDDict({"batch_id": "b", "column": "c", "first": first, "second": second})
            same = IDDict(dict(ids))  # GX's conversion may change its argument in place
            assert gx_fast.to_id(ids) == gx_fast.ORIGINAL_TO_ID(same), (first, second)
    for keys in ((), ("column",), ("column", "first")):
        ids = IDDict({"column": "c", "first": None, "x": 1})
        assert gx_fast.to_id(ids, keys) == gx_fast.ORIGINAL_TO_ID(ids, keys)
        assert gx_fast.to_id(ids, None, {"x"}) == gx_fast.ORIGINAL_TO_ID(ids, None, {"x"})


def test_suite_outcomes_equal_with_gx_own_methods(monkeypatch):
    conn = duckdb.connect()
    conn.execute("create schema raw")
    conn.execute(
        "create table raw.billing_invoices as select 'i' || i as invoice_id, "
        "case when i % 7 = 0 then null else 'u' || (i % 5) end as user_id, "
        "case when i % 11 = 0 then -5.0 else i * 1.5 end as amount, "
        "case when i % 13 = 0 then 'xxx' else 'USD' end as currency, 'paid' as status, "
        "timestamp '2025-03-01' as period_start, timestamp '2025-04-01' as period_end, "
        "timestamp '2025-03-10 10:00' as paid_at, date '2025-03-10' as _partition_date, "
        "timestamp '2025-03-11' as _loaded_at, 'files' as _source, 'inv.csv' as _source_file, "
        "i::BIGINT as _source_line from range(60) t(i)"
    )
    day = [date(2025, 3, 10)]
    patched = validate_table(conn, "billing_invoices", day, now=NOW).outcomes
    for name, method in gx_fast.ORIGINALS.items():
        monkeypatch.setattr(Expectation, name, method)
    monkeypatch.setattr(IDDict, "to_id", gx_fast.ORIGINAL_TO_ID)
    own = validate_table(conn, "billing_invoices", day, now=NOW).outcomes
    assert not all(o.passed for o in own)  # the frame has defects: failures are compared too
    assert [o.__dict__ for o in patched] == [o.__dict__ for o in own]


def test_data_docs_index_equal_with_remembered_reads(tmp_path, monkeypatch):
    """The index built from remembered light copies of stored results is GX's own index
    (but for the build time GX puts in its logo's URL)."""
    import contextlib
    import re

    from expectations.runner import build_data_docs, open_context

    conn = duckdb.connect()
    conn.execute("create schema raw")
    conn.execute(
        "create table raw.billing_invoices as select 'i' || i as invoice_id, 'u' || i as user_id, "
        "case when i = 3 then -1.0 else 10.0 end as amount, 'USD' as currency, "
        "'paid' as status, timestamp '2025-03-01' as period_start, "
        "timestamp '2025-04-01' as period_end, timestamp '2025-03-10 10:00' as paid_at, "
        "date '2025-03-10' as _partition_date, timestamp '2025-03-11' as _loaded_at, "
        "'files' as _source, 'inv.csv' as _source_file, i::BIGINT as _source_line "
        "from range(20) t(i)"
    )
    gx_dir = tmp_path / "gx"
    for _ in range(2):  # two stored results per suite: read once, then remembered
        validate_table(conn, "billing_invoices", [date(2025, 3, 10)], now=NOW, gx_dir=gx_dir)
    assert gx_fast._INDEX_ENTRIES

    def index() -> str:
        text = build_data_docs(open_context(gx_dir), gx_dir).read_text()
        return re.sub(r"\?d=[0-9T.]+Z", "", text)

    remembered = index()
    monkeypatch.setattr(gx_fast, "index_reads_once", lambda *a: contextlib.nullcontext())
    own = index()
    assert own.count("validations/") >= 6  # two results for each of three suites
    assert remembered == own
