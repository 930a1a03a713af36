"""The tracking plan is the only place milestone and event names live: rename a milestone and
add an event in a copy of dbt_project.yml, and the feature table, the GX suite, the segment
schema and the dbt docs all follow without another edit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml
from dbt_fixtures import DBT_PROJECT, load_raw, run_dbt, simulate

from contracts import marts, tracking_plan
from expectations import validate_table
from expectations.tables import FCT_USER_FEATURES, features_spec
from orchestration.segments import schema

pytestmark = pytest.mark.slow

NEW_EVENT = "Board Created"  # a core feature the default plan does not know
RENAMED = ("first_project", "first_workspace")


@pytest.fixture(scope="module")
def edited(tmp_path_factory) -> tuple[Path, tracking_plan.TrackingPlan, Path]:
    """A copy of the dbt project with the edited plan, built on a small simulated product."""
    tmp = tmp_path_factory.mktemp("plan")
    project = tmp / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    config = yaml.safe_load((project / "dbt_project.yml").read_text())
    plan_vars = config["vars"]["tracking_plan"]
    for milestone in plan_vars["milestones"]:
        if milestone["name"] == RENAMED[0]:
            milestone["name"] = RENAMED[1]
            milestone["events"].append(NEW_EVENT)
    plan_vars["core_features"].append(NEW_EVENT)
    (project / "dbt_project.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    plan = tracking_plan.load(project / "dbt_project.yml")
    db = tmp / "w.duckdb"
    data = simulate(users=60, days=21)
    load_raw(db, data)
    run_dbt(["build", "--select", "+fct_user_features"], db, tmp / "target", project_dir=project)
    run_dbt(
        ["docs", "generate", "--select", "fct_user_features"],
        db,
        tmp / "target",
        project_dir=project,
    )
    return db, plan, tmp / "target"


def test_the_plan_is_read_from_the_edited_file(edited) -> None:
    _, plan, _ = edited
    assert RENAMED[1] in plan.milestone_names and RENAMED[0] not in plan.milestone_names
    assert NEW_EVENT in plan.core_features and NEW_EVENT in plan.known_events


def test_new_columns_in_table_suite_schema_and_docs(edited) -> None:
    db, plan, target = edited
    new = {f"reached_{RENAMED[1]}", *tracking_plan.event_feature_columns([NEW_EVENT])}
    gone = f"reached_{RENAMED[0]}"
    with duckdb.connect(str(db), read_only=True) as conn:
        built = [r[0] for r in conn.execute("describe main.fct_user_features").fetchall()]
        # the contract's list is exactly dbt's, in dbt's order
        assert built == list(marts.feature_columns(plan))
        spec = features_spec(plan)
        last = "select distinct snapshot_date from main.fct_user_features order by 1 desc limit 2"
        dates = [r[0] for r in conn.execute(last).fetchall()]
        edited_suite = validate_table(conn, "fct_user_features", dates, spec=spec)
        default_suite = validate_table(conn, "fct_user_features", dates)
    assert new <= set(built) and gone not in built
    assert new <= set(spec.columns) and gone not in spec.columns
    assert edited_suite.blocking_failures == [], [o.message for o in edited_suite.failing]
    checked = {o.check for o in edited_suite.outcomes}
    assert f"fct_user_features.reached_{RENAMED[1]}.not_null" in checked
    assert "fct_user_features.evt_board_created_7d.range" in checked
    # the project's own suite, built for the other plan, would have blocked this table
    assert gone in FCT_USER_FEATURES.columns
    assert default_suite.blocking_failures
    declared = schema.declared_columns(plan)
    assert new <= set(declared) and gone not in declared
    with duckdb.connect(str(db), read_only=True) as conn:
        assert new <= set(schema.warehouse_columns(conn))
    catalog = json.loads((target / "catalog.json").read_text())
    node = next(n for k, n in catalog["nodes"].items() if k.endswith(".fct_user_features"))
    assert new <= set(node["columns"]) and gone not in node["columns"]
