"""Revenue reconciles raw -> staging -> fct_user_features on real dbt (issue 21): the check
passes on a simulated product and blocks, naming the invoice, when a paid invoice would leave
revenue between layers (a paid row without a paid date, a payer with no feature rows); event
counts reconcile raw -> staging -> stitched -> daily activity with every drop by reason."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from expectations.reconcile import NEAR_DAYS, check_layers
from tests.dbt_fixtures import load_raw, run_dbt, simulate

pytestmark = pytest.mark.slow

DAYS = 21


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[date]]:
    tmp = tmp_path_factory.mktemp("reconcile")
    data = simulate(users=40, days=DAYS, seed=5)
    db = tmp / "warehouse.duckdb"
    load_raw(db, data)
    run_dbt(["run", "--select", "+fct_user_features"], db, tmp / "target")
    return db, tmp, data.dates


def _result(db: Path, dates: list[date]):
    with duckdb.connect(str(db)) as conn:
        return check_layers(conn, dates)


def test_revenue_reconciles_on_a_simulated_product(built) -> None:
    db, _, dates = built
    result = _result(db, dates)
    assert [o.check for o in result.outcomes] == [
        "billing_invoices.revenue.raw_to_staging",
        "billing_invoices.revenue.staging_to_features",
        "events.counts.raw_to_daily_activity",
    ]
    assert all(o.passed for o in result.outcomes), [o.message for o in result.outcomes]
    raw_paid = result.outcomes[0].observed_value["raw_paid"]
    assert raw_paid > 0  # the simulation has paid invoices: the check compared real money
    totals = result.outcomes[2].observed_value["totals"]
    # the simulation re-delivers messages and has anonymous visitors: drops have reasons
    assert totals["dropped_duplicate"] > 0
    assert totals["raw"] - totals["dropped_duplicate"] == totals["staging"]
    assert totals["staging"] - totals["dropped_unidentified_anonymous"] == totals["stitched"]
    assert totals["stitched"] == totals["daily_activity"] > 0


def test_events_lost_between_layers_block_naming_the_day(built) -> None:
    db, tmp, dates = built
    day = dates[4]
    with duckdb.connect(str(db)) as conn:
        conn.execute("create table main.stitched_backup as select * from main.int_events_stitched")
        conn.execute(
            "delete from main.int_events_stitched where message_id in (select message_id "
            "from main.int_events_stitched where event_date = ? limit 3)",
            [day],
        )
    try:
        events = _result(db, dates).outcomes[2]
        assert not events.passed and events.blocking
        assert f"{day}: staging" in events.message and "!= stitched" in events.message
    finally:
        with duckdb.connect(str(db)) as conn:
            conn.execute("delete from main.int_events_stitched")
            conn.execute("insert into main.int_events_stitched select * from main.stitched_backup")
            conn.execute("drop table main.stitched_backup")


def test_a_redelivery_kept_weeks_earlier_is_a_duplicate_not_lost(built) -> None:
    """The staged row is looked up near the day first; one further away than NEAR_DAYS
    must still be found (in all of staging), else the re-delivery would count as lost."""
    db, _, dates = built
    late = dates[-1]
    assert (late - dates[0]).days > NEAR_DAYS
    with duckdb.connect(str(db)) as conn:
        message = conn.execute(
            "select message_id from main.stg_events__events where event_date = ? "
            "order by message_id limit 1",
            [dates[0]],
        ).fetchone()[0]
        conn.execute(
            "insert into raw.events select * replace "
            '(cast(? as timestamp) + interval 1 hour as "timestamp") '
            "from raw.events where message_id = ? limit 1",
            [late, message],
        )
    try:
        events = _result(db, [late]).outcomes[2]
        assert events.passed, events.message
        day = events.observed_value["per_day"][0]
        assert day["dropped_duplicate"] >= 1 and not day["problems"]
    finally:
        with duckdb.connect(str(db)) as conn:
            conn.execute(
                'delete from raw.events where message_id = ? and cast("timestamp" as date) = ?',
                [message, late],
            )


def _insert_invoice(db: Path, invoice: str, user: str, paid_at: datetime | None, day: date):
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            """insert into raw.billing_invoices (invoice_id, user_id, amount, currency, status,
               period_start, period_end, paid_at, _partition_date, _loaded_at, _source,
               _source_file, _source_line)
               values (?, ?, 42.5, 'USD', 'paid', ?, ?, ?, ?, now(), 'files', 'x.csv', 2)""",
            [invoice, user, day, day + timedelta(days=30), paid_at, day],
        )


def test_a_paid_invoice_without_paid_date_blocks_naming_it(built) -> None:
    db, tmp, dates = built
    day = dates[5]
    with duckdb.connect(str(db)) as conn:
        user = conn.execute("select min(user_id) from main.fct_user_features").fetchone()[0]
    _insert_invoice(db, "in_lost_no_date", user, None, day)
    try:
        run_dbt(["run", "--select", "stg_billing__invoices"], db, tmp / "target")
        result = _result(db, dates)
        staged = result.outcomes[0]
        assert not staged.passed and staged.blocking
        assert "in_lost_no_date" in staged.message
        assert staged.sample_unexpected[0]["staging_revenue"] is None
    finally:
        with duckdb.connect(str(db)) as conn:
            conn.execute("delete from raw.billing_invoices where invoice_id = 'in_lost_no_date'")
        run_dbt(["run", "--select", "stg_billing__invoices"], db, tmp / "target")


def test_revenue_that_never_reaches_the_features_blocks_naming_it(built) -> None:
    db, tmp, dates = built
    day = dates[3]
    paid = datetime.combine(day, datetime.min.time())
    _insert_invoice(db, "in_orphan", "user_not_in_crm", paid, day)
    try:
        run_dbt(
            ["run", "--select", "stg_billing__invoices", "fct_user_features"], db, tmp / "target"
        )
        result = _result(db, dates)
        staged, features, _ = result.outcomes
        assert staged.passed  # raw and staging agree
        assert not features.passed and features.blocking
        assert "in_orphan" in features.message and "user_not_in_crm" in features.message
        assert features.sample_unexpected[0]["why"] == "no feature row for this customer that day"
        # the invoices behind each differing customer-day, the paid day itself included
        assert features.sample_unexpected[0]["snapshot_date"] == str(day)
        assert all(o["invoices"] == ["in_orphan"] for o in features.sample_unexpected)
    finally:
        with duckdb.connect(str(db)) as conn:
            conn.execute("delete from raw.billing_invoices where invoice_id = 'in_orphan'")
