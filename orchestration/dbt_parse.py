"""dbt's project parse, once per process (no Dagster import: the CLI's `prepare` uses it too).

`segflow run` parses the project before Dagster loads its definitions (which read the manifest
file); the parsed manifest object stays here, so the run's dbt steps (orchestration/defs/
dbt_warm.py) invoke dbt on it without parsing again. Parsing writes manifest.json and
partial_parse.msgpack to `target_dir`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_PARSED: dict[tuple[str, ...], Any] = {}


class DbtParseError(RuntimeError):
    pass


def _profile_env() -> tuple[str, ...]:
    """The environment dbt_project/profiles.yml reads (SEGFLOW_* and DBT_* variables)."""
    return tuple(
        f"{name}={value}"
        for name, value in sorted(os.environ.items())
        if name.startswith(("SEGFLOW_", "DBT_"))
    )


def dbt_args(
    project_dir: Path, target: str, target_dir: Path | None, vars_arg: Sequence[str]
) -> list[str]:
    """Project, profile, target and vars flags every invocation shares."""
    args = ["--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
    args += ["--target", target]
    if target_dir is not None:
        args += ["--target-path", str(target_dir)]
    return [*args, *vars_arg]


def parsed_manifest(
    project_dir: Path, target: str, vars_arg: Sequence[str], target_dir: Path | None = None
) -> Any:
    """dbt's Manifest for (project, target, vars, profile environment), parsed in this process
    at most once. The profile's environment is part of the key: the manifest records the
    database the profile names (the DuckDB file's stem), so a process that points dbt at
    another warehouse (a test worker running the next module) must parse again."""
    from dbt.cli.main import dbtRunner

    key = (str(project_dir), target, *vars_arg, *_profile_env())
    with _LOCK:
        if key not in _PARSED:
            args = ["parse", "--quiet", *dbt_args(project_dir, target, target_dir, vars_arg)]
            result = dbtRunner().invoke(args)
            if not result.success:
                raise DbtParseError(f"dbt parse failed: {result.exception}")
            _PARSED[key] = result.result
        return _PARSED[key]
