"""dbt's project parse, once per process, and in-process builds on it (no Dagster import: the
CLI's `prepare` parses too).

`segflow run` parses the project before Dagster loads its definitions (which read the manifest
file); the parse is kept here, so the run's dbt steps (orchestration/defs/dbt_warm.py) invoke dbt
without parsing again. Parsing writes manifest.json and partial_parse.msgpack to `target_dir`.

What is kept is the parse serialized the way dbt's partial parsing stores it (msgpack), and every
invocation gets a Manifest decoded from it, exactly as a dbt CLI run that finds nothing changed
does. dbt mutates the manifest it runs on (compiled nodes keep `compiled_code` and
`extra_ctes_injected`, so a second build on the same object no longer injects ephemeral models:
`__dbt__cte__int_segment_members does not exist`), and `copy.deepcopy` of a used Manifest is
broken in dbt 1.11 (`Manifest.__reduce_ex__` passes its lookups to the wrong fields). Decoding
costs ~0.05-0.2 s; a parse costs seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.dbt_parse_cache import (
    WAREHOUSE_ENV,
    copy_artifacts,
    disk_key,
    load,
    new_entry,
    store,
)

PARTIAL_PARSE = "partial_parse.msgpack"
# The environment the parsed manifest depends on: profiles.yml's target and warehouse file
# (every node records the file's database; on disk only its name counts, see
# dbt_parse_cache.warehouse_part). Connection settings (memory limit, threads) are read from
# the profile at each invocation and do not change the manifest.
MANIFEST_ENV = ("SEGFLOW_DBT_TARGET", WAREHOUSE_ENV)

_LOCK = threading.Lock()
_PARSED: dict[tuple[str, ...], tuple[bytes, Path]] = {}
# the keys dbt parsed in this process, in order (not those read from the disk cache; tests read it)
PARSES: list[tuple[str, ...]] = []


class DbtParseError(RuntimeError):
    pass


def _manifest_key(project_dir: Path, target: str, vars_arg: Sequence[str]) -> tuple[str, ...]:
    env = tuple(f"{name}={os.environ.get(name, '')}" for name in MANIFEST_ENV)
    return (str(Path(project_dir).resolve()), target, *vars_arg, *env)


def dbt_args(
    project_dir: Path, target: str, target_dir: Path | None, vars_arg: Sequence[str]
) -> list[str]:
    """Project, profile, target and vars flags every invocation shares."""
    args = ["--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
    args += ["--target", target]
    if target_dir is not None:
        args += ["--target-path", str(target_dir)]
    return [*args, *vars_arg]


def _decode(packed: bytes) -> Any:
    """A Manifest from dbt's partial-parse msgpack, prepared as dbt prepares a loaded one."""
    from dbt.contracts.graph.manifest import Manifest
    from dbt.parser.manifest import extended_mashumuro_decoder

    manifest = Manifest.from_msgpack(packed, decoder=extended_mashumuro_decoder)
    manifest.build_parent_and_child_maps()
    manifest.build_flat_graph()
    return manifest


def parsed_manifest(
    project_dir: Path, target: str, vars_arg: Sequence[str], target_dir: Path | None = None
) -> Any:
    """A fresh dbt Manifest for (project, target, vars, warehouse): the project is parsed at
    most once per key in this process, and not at all when a process before parsed the same
    project files with the same key (orchestration/dbt_parse_cache.py); each call returns a
    new, never-run Manifest."""
    return _decode(_packed(project_dir, target, vars_arg, target_dir)[0])


def parse_into(project_dir: Path, target: str, vars_arg: Sequence[str], out_dir: Path) -> None:
    """The parse's artifacts (manifest.json, partial_parse.msgpack...) copied into `out_dir`,
    from the on-disk parse cache when the project files and key are unchanged."""
    _, entry = _packed(project_dir, target, vars_arg, None)
    copy_artifacts(entry, out_dir)


def _packed(
    project_dir: Path, target: str, vars_arg: Sequence[str], target_dir: Path | None
) -> tuple[bytes, Path]:
    """The parse as msgpack and its cache folder: from memory, else disk, else dbt parse."""
    key = _manifest_key(project_dir, target, vars_arg)
    with _LOCK:
        if key not in _PARSED:
            cache_key = disk_key(project_dir, key)
            _PARSED[key] = load(project_dir, cache_key) or _parse(
                project_dir, target, vars_arg, target_dir, cache_key
            )
        return _PARSED[key]


def _parse(
    project_dir: Path,
    target: str,
    vars_arg: Sequence[str],
    target_dir: Path | None,
    cache_key: str,
) -> tuple[bytes, Path]:
    """dbt parse in this process into a new cache folder (and its artifacts into `target_dir`
    too when given)."""
    from dbt.cli.main import dbtRunner
    from dbt.parser.manifest import extended_mashumaro_encoder

    with new_entry(project_dir) as scratch:
        previous = Path(project_dir) / "target" / PARTIAL_PARSE
        if previous.exists():  # dbt re-reads only the changed files
            shutil.copy(previous, scratch / PARTIAL_PARSE)
        args = ["parse", "--quiet", *dbt_args(project_dir, target, scratch, vars_arg)]
        result = dbtRunner().invoke(args)
        if not result.success:
            raise DbtParseError(f"dbt parse failed: {result.exception}")
        packed = result.result.to_msgpack(extended_mashumaro_encoder)
        if target_dir is not None:
            copy_artifacts(scratch, target_dir)
        entry = store(project_dir, cache_key, scratch, packed)
    PARSES.append(_manifest_key(project_dir, target, vars_arg))
    return packed, entry


@dataclass
class Invocation:
    """One in-process dbt command: its result, its events (the callback's dicts) and the
    private target folder its artifacts went to (deleted when the invocation's block ends)."""

    result: Any
    target_dir: Path
    events: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def invoke(
    command: str,
    project_dir: Path,
    target: str,
    vars_arg: Sequence[str],
    extra_args: Sequence[str] = (),
    keep_event: Callable[[str], bool] = lambda name: False,
) -> Iterator[Invocation]:
    """dbt `command` in this process on a fresh copy of the parsed project, with its artifacts
    in a private target folder under the project's target (concurrent runs never share one;
    removed afterwards). dbt's warehouse handle is released before the block's body runs."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    project_target = Path(project_dir) / "target"
    project_target.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="warm-", dir=project_target) as scratch:
        target_dir = Path(scratch)
        if (project_target / PARTIAL_PARSE).exists():  # a parse here stays partial
            shutil.copy(project_target / PARTIAL_PARSE, target_dir / PARTIAL_PARSE)
        manifest = parsed_manifest(project_dir, target, vars_arg, target_dir)
        invocation = Invocation(result=None, target_dir=target_dir)

        def collect(msg: Any) -> None:
            if keep_event(msg.info.name):
                invocation.events.append(msg_to_dict(msg))

        args = [command, *dbt_args(project_dir, target, target_dir, vars_arg), *extra_args]
        try:
            invocation.result = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(args)
        finally:
            release_warehouse()
        yield invocation


def release_warehouse() -> None:
    """Close dbt's DuckDB handle: DuckDB refuses a second in-process connection to the same
    file with other settings, and the run's Python steps open their own after dbt."""
    from dbt.adapters.factory import FACTORY

    for adapter in list(FACTORY.adapters.values()):
        adapter.cleanup_connections()
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another engine's adapter only
        return
    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
    if env is not None:
        env.close()
