"""The tracking plan is the user's (issue 21): with a product's own events in place of the demo
ones, the dbt unit tests still pass, because the tests that need demo names declare the demo
plan themselves (overrides.vars in _intermediate__unit_tests.yml)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.dbt_fixtures import create_raw_tables, run_dbt

pytestmark = pytest.mark.slow

USER_PLAN = {
    "milestones": [
        {"name": "account_created", "events": ["Workspace Opened"]},
        {"name": "first_value", "events": ["Invoice Sent"]},
    ],
    "core_features": ["Invoice Sent", "Client Added"],
    "support_events": ["Help Asked"],
    "upgrade_events": ["Upgraded"],
    "cancel_events": ["Closed Account"],
    "other_events": ["Logged In"],
    "paid_plans": ["pro"],
    "plans": ["free", "pro"],
}


def test_dbt_unit_tests_pass_with_a_products_own_tracking_plan(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(db)) as conn:
        create_raw_tables(conn)
    proc = run_dbt(
        ["build", "--select", "+int_sessions"],
        db,
        tmp_path / "target",
        dbt_vars={"tracking_plan": USER_PLAN},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "int_sessions::sessions_split_on_gap_longer_than_timeout" in proc.stdout
