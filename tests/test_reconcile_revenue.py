"""Revenue reconciles raw -> staging -> fct_user_features on real dbt (issue 21): the check
passes on a simulated product and blocks, naming the invoice, when a paid invoice would leave
revenue between layers (a paid row without a paid date, a payer with no feature rows)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from expectations.reconcile import check_revenue
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
        return check_revenue(conn, dates)


def test_revenue_reconciles_on_a_simulated_product(built) -> None:
    db, _, dates = built
    result = _result(db, dates)
    assert [o.check for o in result.outcomes] == [
        "billing_invoices.revenue.raw_to_staging",
        "billing_invoices.revenue.staging_to_features",
    ]
    assert all(o.passed for o in result.outcomes), [o.message for o in result.outcomes]
    raw_paid = result.outcomes[0].observed_value["raw_paid"]
    assert raw_paid > 0  # the simulation has paid invoices: the check compared real money


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
        staged, features = result.outcomes
        assert staged.passed  # raw and staging agree
        assert not features.passed and features.blocking
        assert "in_orphan" in features.message and "user_not_in_crm" in features.message
        assert features.sample_unexpected[0]["why"] == "no feature row for this customer that day"
    finally:
        with duckdb.connect(str(db)) as conn:
            conn.execute("delete from raw.billing_invoices where invoice_id = 'in_orphan'")
