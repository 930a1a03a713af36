"""Custom typed CRM attributes end to end on the real dbt CLI and MLflow: declared in a
sources.yml (`attributes:`), carried in raw.crm_contacts.attributes, typed by
int_user_custom_attributes, joined point in time onto fct_user_features, then used by a
segment rule and as a model feature."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import duckdb
import mlflow
import pandas as pd
import pytest
from dbt_fixtures import load_raw, run_dbt, simulate  # tests/ is on sys.path (rootdir conftest)
from threadpoolctl import threadpool_limits

from contracts import tracking_plan
from contracts.attributes import BAD_VALUE_REASON, DIM_USERS_OWN_COLUMNS, QUARANTINE_TABLE
from contracts.marts import USER_SCORES_DDL, feature_columns
from contracts.models import LabelDefinition
from contracts.raw import CRM_CONTACTS
from ml.tracking import train_model
from orchestration.model_inputs import model_features
from orchestration.segments.assign import assign_segments
from orchestration.segments.config import DEFAULT_SEGMENTS_PATH, load_config
from orchestration.segments.schema import declared_columns, warehouse_columns
from orchestration.settings import Settings
from orchestration.sources.attribute_values import record_bad_attribute_values
from orchestration.sources.mappings import declared_attributes

pytestmark = pytest.mark.slow  # builds a warehouse with dbt and trains a model

START, DAYS, USERS = date(2025, 1, 6), 84, 160
SOURCES_YML = """\
version: 1
attributes:
  - {name: date_of_birth, type: date}
  - {name: channel, type: category}
  - {name: employees, type: number}
sources:
  crm_contacts: {files: ["crm_contacts/**"]}
"""
OVER_40 = """
  - name: over_40
    description: Forty or older on the segment date (custom CRM attribute).
    rule: years_since_date_of_birth >= 40
    priority: 1
"""


def _employees(user: str) -> int:
    return sum(map(ord, user)) % 500 + 1


def _age(born: date, day: date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _with_attributes(data, day: date) -> tuple[dict[str, date | None], tuple[str, str]]:
    """Give each CRM row an `attributes` object; returns each user's date of birth and the
    users who turn 40 on `day` and on the day after. Edge
    cases: birthdays on and the day after `day` (40 years back), a leap-day birth, a user
    without attributes, and one whose date and number do not parse (null, and quarantined)."""
    rng = random.Random(11)
    signup: dict[str, object] = {}
    for row in data.tables["crm_contacts"]:
        signup.setdefault(row["user_id"], row["signup_at"])
    users = sorted(signup, key=lambda u: (signup[u], u))  # the edge cases are known on `day`
    born: dict[str, date | None] = {
        u: date(1950, 1, 1) + timedelta(days=rng.randrange(55 * 365)) for u in users
    }
    born[users[0]] = day.replace(year=day.year - 40)  # 40 today: selected
    born[users[1]] = day.replace(year=day.year - 40) + timedelta(days=1)  # 39 today: not
    born[users[2]] = date(1984, 2, 29)
    no_attributes, bad_date = users[3], users[4]
    channel = {u: rng.choice(["partner", "ads", "referral"]) for u in users}
    for row in data.tables["crm_contacts"]:
        user = row["user_id"]
        if user == no_attributes:
            continue
        dob = "31/02/1990" if user == bad_date else born[user].isoformat()
        employees = "12,5x" if user == bad_date else _employees(user)
        attrs = {"date_of_birth": dob, "channel": channel[user], "employees": employees}
        row["attributes"] = json.dumps(attrs)
    born[no_attributes] = born[bad_date] = None
    return born, (users[0], users[1])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attributes")
    sources = tmp / "sources.yml"
    sources.write_text(SOURCES_YML)
    patch = pytest.MonkeyPatch()
    patch.setenv("SEGFLOW_SOURCES_FILE", str(sources))
    patch.setenv("SEGFLOW_CHURN_HORIZON_DAYS", "7")  # labels cover more of the short history
    data = simulate(users=USERS, days=DAYS, start=START)
    day = START + timedelta(days=DAYS - 30)
    born, boundary = _with_attributes(data, day)
    db = tmp / "warehouse.duckdb"
    load_raw(db, data)
    conn = duckdb.connect(str(db))
    try:  # what the raw/crm_contacts asset does after loading
        report = record_bad_attribute_values(conn, declared_attributes(Settings.from_env()))
    finally:
        conn.close()
    assert report.bad_values > 0
    run_dbt(
        ["build", "--select", "+fct_user_features", "+ml_churn_training", "+dim_users"],
        db,
        tmp / "t",
    )
    yield db, born, day, boundary
    patch.undo()


def test_sources_yml_declares_the_attributes_dbt_and_the_schemas_see(warehouse):
    attributes = declared_attributes(Settings.from_env())
    assert [(a.name, a.type) for a in attributes] == [
        ("date_of_birth", "date"),
        ("channel", "category"),
        ("employees", "number"),
    ]
    declared = declared_columns(attributes=attributes)
    assert declared["years_since_date_of_birth"] == "INTEGER"
    assert declared["channel"] == "VARCHAR" and declared["employees"] == "DOUBLE"
    assert "years_since_date_of_birth" in model_features("churn", attributes=attributes)


def test_date_of_birth_becomes_age_and_reaches_a_segment_rule(warehouse, tmp_path):
    db, born, day, (forty, thirty_nine) = warehouse
    conn = duckdb.connect(str(db))
    try:
        rows = conn.execute(
            "select user_id, years_since_date_of_birth, channel, employees "
            "from main.fct_user_features where snapshot_date = ?",
            [day],
        ).df()
        expected = rows["user_id"].map(lambda u: None if born[u] is None else _age(born[u], day))
        got = rows["years_since_date_of_birth"]
        assert (got.isna() == expected.isna()).all()
        assert (got.dropna().astype(int) == expected.dropna().astype(int)).all()
        assert rows["channel"].notna().sum() == len(rows) - 1  # only the user without any
        assert set(rows["channel"].dropna()) <= {"partner", "ads", "referral"}
        known = rows.dropna(subset=["employees"])
        assert len(known) == len(rows) - 2  # no attributes; "12,5x"
        assert (known["employees"] == known["user_id"].map(_employees)).all()

        conn.execute(USER_SCORES_DDL)
        paths = (tmp_path / "segments.yml", tmp_path / "flows.yml", tmp_path / "triggers.yml")
        paths[0].write_text(DEFAULT_SEGMENTS_PATH.read_text() + OVER_40)
        paths[1].write_text((DEFAULT_SEGMENTS_PATH.parent / "flows.yml").read_text())
        paths[2].write_text("triggers: []\n")
        config = load_config(*paths, columns=warehouse_columns(conn))
        assign_segments(conn, config, [day])
        members = conn.execute(
            "select user_id from main.user_segments "
            "where segment_date = ? and list_contains(segments, 'over_40')",
            [day],
        ).df()
    finally:
        conn.close()
    by_hand = {u for u in rows["user_id"] if born[u] is not None and _age(born[u], day) >= 40}
    assert set(members["user_id"]) == by_hand
    assert forty in by_hand and thirty_nine not in by_hand  # the birthday boundary
    assert 10 < len(by_hand) < len(rows) - 10


def test_attributes_are_model_features_logged_in_mlflow(warehouse, tmp_path):
    db = warehouse[0]
    conn = duckdb.connect(str(db), read_only=True)
    try:
        train = conn.execute("select * from main.ml_churn_training").df()
    finally:
        conn.close()
    attributes = declared_attributes(Settings.from_env())
    features = model_features("churn", tracking_plan.load(), attributes)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    label = LabelDefinition("inactivity", 7, 28, "no activity in the next 7 days")
    with threadpool_limits(limits=1):
        result = train_model(
            "churn", train, uri, tmp_path / "artifacts", features=features, label=label
        )
    assert {"years_since_date_of_birth", "channel", "employees"} <= set(result.feature_columns)
    params = mlflow.MlflowClient(uri).get_run(result.run_id).data.params
    assert "years_since_date_of_birth" in params["numeric_features"].split(",")
    assert "employees" in params["numeric_features"].split(",")
    assert "channel" in params["categorical_features"].split(",")
    assert pd.Series(result.feature_importance).index.notna().all()


def test_unparseable_values_are_quarantined_per_crm_version_and_the_contact_loads(warehouse):
    db, born, day, _ = warehouse
    conn = duckdb.connect(str(db), read_only=True)
    try:
        versions = conn.execute(
            "select user_id, _source_file, _source_line from raw.crm_contacts "
            "where json_extract_string(attributes, '$.employees') = '12,5x'"
        ).fetchall()
        records = conn.execute(
            "select payload::json->>'user_id', source_file, source_line, "
            "payload::json->>'attribute', payload::json->>'value', reason_code "
            "from raw.quarantine where table_name = ?",
            [QUARANTINE_TABLE],
        ).fetchall()
        features = conn.execute(
            "select years_since_date_of_birth, employees, channel from main.fct_user_features "
            "where user_id = ? and snapshot_date = ?",
            [versions[0][0], day],
        ).fetchall()
    finally:
        conn.close()
    (bad_user,) = {u for u, _, _ in versions}
    assert born[bad_user] is None
    expected = {
        (u, f, line, attribute, value, BAD_VALUE_REASON)
        for u, f, line in versions
        for attribute, value in (("date_of_birth", "31/02/1990"), ("employees", "12,5x"))
    }
    assert set(records) == expected and len(records) == 2 * len(versions)
    # the contact itself loaded: its features row exists, the bad attributes are null
    assert len(features) == 1 and features[0][:2] == (None, None) and features[0][2]


def test_dim_users_carries_the_attributes_of_the_latest_crm_version(warehouse):
    db, born, _, _ = warehouse
    conn = duckdb.connect(str(db), read_only=True)
    try:
        users = conn.execute(
            "select user_id, date_of_birth, channel, employees from main.dim_users"
        ).df()
        latest = conn.execute(
            "select user_id, json_extract_string(attributes, '$.channel') as channel "
            "from raw.crm_contacts qualify row_number() over "
            "(partition by user_id order by updated_at desc, _source_line desc) = 1"
        ).df()
        columns = [r[0] for r in conn.execute("describe main.dim_users").fetchall()]
    finally:
        conn.close()
    assert len(users) == len(born)
    got = dict(zip(users["user_id"], users["date_of_birth"], strict=True))
    assert {u: (None if pd.isna(v) else pd.Timestamp(v).date()) for u, v in got.items()} == born
    channels = dict(zip(latest["user_id"], latest["channel"], strict=True))
    assert (users["channel"].fillna("-") == users["user_id"].map(channels).fillna("-")).all()
    known = users.dropna(subset=["employees"])
    assert (known["employees"] == known["user_id"].map(_employees)).all()
    assert len(known) == len(users) - 2
    # dim_users' own columns are the names an attribute may not take (sources.yml check)
    attributes = {"date_of_birth", "channel", "employees"}
    allowed = set(CRM_CONTACTS.columns) | set(feature_columns()) | set(DIM_USERS_OWN_COLUMNS)
    assert set(columns) - attributes <= allowed
