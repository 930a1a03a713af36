"""dbt's parse kept on disk (orchestration/dbt_parse_cache.py): a new process reuses the parse
of an unchanged project instead of parsing again, and an edited model is parsed again (a stale
parse would run yesterday's SQL)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dbt_fixtures import DBT_PROJECT

from orchestration import dbt_parse
from orchestration.dbt_parse import parse_into, parsed_manifest
from orchestration.run_window import dbt_vars_arg
from orchestration.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.slow

MODEL = "int_user_activity_daily"
EDIT = "-- edited after the cached parse"
REUSE = """
import json, sys, time
from pathlib import Path
start = time.perf_counter()
from orchestration import dbt_parse
manifest = dbt_parse.parsed_manifest(Path(sys.argv[1]), "duckdb", json.loads(sys.argv[2]))
print(json.dumps({"parses": len(dbt_parse.PARSES), "nodes": sorted(manifest.nodes),
                  "seconds": time.perf_counter() - start}))
"""


def _node(manifest, name: str):
    (node,) = [n for n in manifest.nodes.values() if n.name == name]
    return node


def test_new_process_reuses_parse_and_edit_is_reparsed(tmp_path: Path, monkeypatch) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setattr(dbt_parse, "_PARSED", {})  # as a new process
    vars_arg = dbt_vars_arg(Settings.from_env())
    parses = len(dbt_parse.PARSES)
    parse_into(project, "duckdb", vars_arg, project / "target")  # as `segflow prepare`
    assert len(dbt_parse.PARSES) == parses + 1
    assert (project / "target" / "manifest.json").exists()
    first = parsed_manifest(project, "duckdb", vars_arg)

    reuse = subprocess.run(
        [sys.executable, "-c", REUSE, str(project), json.dumps(vars_arg)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    second = json.loads(reuse.stdout.strip().splitlines()[-1])
    print(f"second process: parsed manifest in {second['seconds']:.2f}s")
    assert second["parses"] == 0  # read from the disk cache, not parsed
    assert second["nodes"] == sorted(first.nodes)

    sql = project / "models" / "intermediate" / f"{MODEL}.sql"
    sql.write_text(sql.read_text() + f"\n{EDIT}\n")
    monkeypatch.setattr(dbt_parse, "_PARSED", {})  # the next process
    manifest = parsed_manifest(project, "duckdb", vars_arg)
    assert len(dbt_parse.PARSES) == parses + 2  # the edit was parsed, not served from cache
    assert EDIT in _node(manifest, MODEL).raw_code
    assert EDIT not in _node(first, MODEL).raw_code


def test_another_warehouse_is_another_entry(tmp_path: Path, monkeypatch) -> None:
    """Every node records the warehouse file's database: a parse for one file never serves
    another."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    vars_arg = dbt_vars_arg(Settings.from_env())
    for name in ("one", "two"):
        monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(tmp_path / f"{name}.duckdb"))
        monkeypatch.setattr(dbt_parse, "_PARSED", {})
        manifest = parsed_manifest(project, "duckdb", vars_arg)
        assert {n.database for n in manifest.nodes.values() if n.resource_type == "model"} == {name}
    assert len(list((project / "target" / "parse-cache").iterdir())) == 2


def _without_times(manifest) -> dict:
    """A manifest's nodes, sources and macros as dicts, without what every parse stamps anew."""
    out = {}
    for part in ("nodes", "sources", "macros"):
        items = getattr(manifest, part).items()
        out[part] = {k: {**v.to_dict(), "created_at": None} for k, v in items}
    return out


def test_moved_warehouse_reuses_parse(tmp_path: Path, monkeypatch) -> None:
    """A copied or moved SEGFLOW_HOME (same file name, another folder) reuses the parse: dbt
    records the file's name (the database), never its folder, so the cached parse equals a
    new parse at the new path but for timestamps."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    vars_arg = dbt_vars_arg(Settings.from_env())
    parses = len(dbt_parse.PARSES)
    manifests = []
    for home in ("home-a", "home-b"):
        monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(tmp_path / home / "warehouse.duckdb"))
        monkeypatch.setattr(dbt_parse, "_PARSED", {})  # as a new process
        manifests.append(parsed_manifest(project, "duckdb", vars_arg))
    assert len(dbt_parse.PARSES) == parses + 1  # home-b was served from home-a's parse
    shutil.rmtree(project / "target" / "parse-cache")
    monkeypatch.setattr(dbt_parse, "_PARSED", {})
    fresh = parsed_manifest(project, "duckdb", vars_arg)  # home-b parsed for itself
    assert len(dbt_parse.PARSES) == parses + 2
    assert _without_times(manifests[1]) == _without_times(fresh)


def test_project_reading_target_path_is_parsed_per_folder(tmp_path: Path, monkeypatch) -> None:
    """A project file that reads the profile's path can record the folder in the manifest:
    then each warehouse folder gets its own parse (a reused one would carry the old path)."""
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs"))
    model = project / "models" / "marts" / "warehouse_path.sql"
    model.write_text("{{ config(meta={'warehouse': target.path}) }}\nselect 1 as x\n")
    vars_arg = dbt_vars_arg(Settings.from_env())
    for home in ("home-a", "home-b"):
        path = str(tmp_path / home / "warehouse.duckdb")
        monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", path)
        monkeypatch.setattr(dbt_parse, "_PARSED", {})
        manifest = parsed_manifest(project, "duckdb", vars_arg)
        assert _node(manifest, "warehouse_path").config.meta["warehouse"] == path
