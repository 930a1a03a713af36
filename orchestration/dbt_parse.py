"""dbt's project parse, once per process (no Dagster import: the CLI's `prepare` uses it too).

`segflow run` parses the project before Dagster loads its definitions (which read the manifest
file); the parsed manifest object stays here, so the run's dbt steps (orchestration/defs/
dbt_warm.py) invoke dbt on it without parsing again. Parsing writes manifest.json and
partial_parse.msgpack to `target_dir`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_PARSED: dict[tuple[str, ...], Any] = {}


class DbtParseError(RuntimeError):
    pass


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
    """dbt's Manifest for (project, target, vars), parsed in this process at most once."""
    from dbt.cli.main import dbtRunner

    key = (str(project_dir), target, *vars_arg)
    with _LOCK:
        if key not in _PARSED:
            args = ["parse", "--quiet", *dbt_args(project_dir, target, target_dir, vars_arg)]
            result = dbtRunner().invoke(args)
            if not result.success:
                raise DbtParseError(f"dbt parse failed: {result.exception}")
            _PARSED[key] = result.result
        return _PARSED[key]
