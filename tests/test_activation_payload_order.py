"""The desired payload's canonical member order: the one-pass ordering (fixed names placed at
SQL build time, segment members in their names' order) gives the same text as sorting every
row's members, for plain and for awkward segment names."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pandas as pd
import pytest
from support.sync_inputs import write_inputs

from orchestration.activation import payload
from orchestration.activation.payload import PayloadOptions, desired_people_sql

DAY = date(2025, 3, 10)
# Names that sort differently from their members once `":true` follows them (space and "!"
# sort below '"'), that JSON escapes, or that are not ASCII, beside plain ones.
SEGMENT_LISTS = [
    ["trial", "at_risk"],
    ["a b", "a", "a!", "a-b"],
    ['x"y', "x", "x\\y"],
    ["é", "e", "z"],
    ["seg.1", "seg-1", "seg_1", "Seg", "SEG"],
    ["segments", "segment", "s"],
    ["trial", None, ""],
    [],
]


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    users = [f"u{i}" for i in range(len(SEGMENT_LISTS))]
    segments = pd.DataFrame(
        {
            "user_id": users,
            "segment_date": DAY,
            "segments": SEGMENT_LISTS,
            "primary_segment": ["trial", None, "x", "é", "Seg", "s", "trial", None],
            "onboarding_flow": "flow_a",
            "experiment": ["exp1", None, None, "exp1", None, None, None, None],
            "experiment_variant": "control",
            "next_block": None,
        }
    )
    scores = pd.DataFrame(
        {
            "user_id": users,
            "score_date": DAY,
            "churn_probability": [0.123, None, 1.0, 0.5, 0.004, 0.9, 0.31, 0.2],
            "churn_band": ["low", None, "high", "medium", "low", "high", "low", "low"],
            "ltv_pred": 250.4,
            "ltv_band": "mid",
            "churn_reasons": "low_activity",
            "churn_model_version": "7",
        }
    )
    write_inputs(connection, user_segments=segments, user_scores=scores)
    yield connection
    connection.close()


def payloads(conn, options: PayloadOptions) -> dict[str, str]:
    sql = desired_people_sql(conn, options)
    return dict(conn.execute(f"select person_id, payload from ({sql})", {"as_of": DAY}).fetchall())


def test_one_pass_order_equals_sorting_every_row(conn, monkeypatch):
    fast = payloads(conn, PayloadOptions())
    monkeypatch.setattr(payload, "PLAIN_SEGMENT_NAME", "")  # no row qualifies: all sorted
    general = payloads(conn, PayloadOptions())
    assert fast == general
    assert fast["u7"] == "{}"
    first = json.loads(fast["u0"])
    assert first["segments"] == "at_risk,trial" and first["segment_trial"] is True
    assert list(first) == sorted(first, key=lambda name: json.dumps(name) + ":")


def test_a_fixed_name_inside_the_segment_members_sorts_every_row(conn, monkeypatch):
    """The opt-in `segment_reasons` attribute sorts among the segment members: the general
    way for every row, the same text as before."""
    conn.execute(
        "create table main.segment_reasons (user_id VARCHAR, segment_date DATE, "
        "segment VARCHAR, reason VARCHAR)"
    )
    options = PayloadOptions(segment_reasons=True)
    assert "regexp_full_match" not in desired_people_sql(conn, options)
    with_reasons = payloads(conn, options)
    monkeypatch.setattr(payload, "PLAIN_SEGMENT_NAME", "")
    assert with_reasons == payloads(conn, options)
