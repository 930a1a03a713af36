"""The forward_window macro (dbt_project/macros/outcomes.sql) on the real dbt CLI: events
strictly after the anchor and up to anchor + days count, the same user only, the filter
applies, anchors without an event get no row."""

from __future__ import annotations

import json

import pytest
from dbt_fixtures import run_dbt

pytestmark = pytest.mark.slow  # one dbt invocation

SQL = """
with anchors as (
    select * from (values ('u1', date '2025-01-10'), ('u2', date '2025-01-10'),
        ('u3', date '2025-01-10')) as t (user_id, anchor_date)
),
events as (
    select * from (values
        ('u1', date '2025-01-10', 1, 'pro'),   -- on the anchor day: not after it
        ('u1', date '2025-01-11', 2, 'pro'),   -- first day of the window
        ('u1', date '2025-01-13', 64, 'free'), -- inside, filtered out
        ('u1', date '2025-01-17', 4, 'pro'),   -- last day of the window (anchor + 7)
        ('u1', date '2025-01-18', 8, 'pro'),   -- one day too late
        ('u2', date '2025-01-12', 16, 'free'), -- only filtered-out events
        ('u9', date '2025-01-12', 32, 'pro')   -- another user
    ) as t (user_id, event_date, amount, plan)
)
{{ forward_window('anchors', 'anchor_date', 'events', 'event_date', 7,
    ['sum(e.amount) as total', 'count(*) as n'], event_filter="e.plan = 'pro'") }}
"""


def test_forward_window_counts_the_window_after_the_anchor(tmp_path):
    db = tmp_path / "w.duckdb"
    proc = run_dbt(
        ["show", "--inline", SQL, "--output", "json", "--log-format", "text"], db, tmp_path
    )
    text = proc.stdout
    rows = json.loads(text[text.index("{") : text.rindex("}") + 1])["show"]
    assert rows == [{"user_id": "u1", "anchor_date": "2025-01-10", "total": 6, "n": 2}], rows
