"""dbt's parse kept on disk between processes (orchestration/dbt_parse.py keeps it in memory).

A new `segflow run` used to parse the project again: 6-7 s with dbt's partial parsing, 13 s
without, while the project had not changed. A cache entry, under `target/parse-cache/<key>/`,
holds the parse as msgpack (what dbt_parse decodes for every invocation) and the parse's
artifacts (manifest.json, which Dagster's definitions read). The key is a hash of what the
manifest depends on: the project folder, target, vars, the warehouse file's name (dbt_parse's
key; not its folder, see `warehouse_part`), the dbt version, every environment variable the project files read with env_var() outside
profiles.yml, and the content of every file dbt reads (models, macros, tests, seeds, yml,
dbt_project.yml, profiles.yml, installed packages): an edited model gives another key, so a
stale parse is never used. Entries are written to a scratch folder and renamed into place
(readers never see half an entry); the newest KEEP entries stay.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

PACKED = "manifest.msgpack"
KEEP = 12
# Not read by dbt's parse: its own output, logs and the anonymous user id.
SKIPPED_TOP = {"target", "logs", ".user.yml"}
ENV_VAR = re.compile(rb"""env_var\(\s*['"]([^'"]+)['"]""")
# The warehouse file (profiles.yml's `path`); dbt_parse's key holds it as "NAME=value".
WAREHOUSE_ENV = "SEGFLOW_DUCKDB_PATH"
# A project file reading the profile's path (`target.path`, `target['path']`, `target.get(...)`)
# may record the folder in the manifest: then the whole path stays in the key.
TARGET_PATH = re.compile(rb"\btarget\s*(?:\.\s*(?:path|get)\b|\[)")


def cache_dir(project_dir: Path) -> Path:
    return Path(project_dir) / "target" / "parse-cache"


def _project_files(project_dir: Path) -> list[Path]:
    """Every file under the project dbt may read, in a stable order."""
    root = Path(project_dir)
    files = []
    for top in sorted(root.iterdir()):
        if top.name in SKIPPED_TOP:
            continue
        files += [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
    return files


def warehouse_part(part: str, reads_target_path: bool) -> str:
    """The warehouse file as the manifest depends on it: its file name. dbt-duckdb names the
    database after the file name, and every node records that name; the folder is recorded
    nowhere (a parse at /a/warehouse.duckdb equals one at /b/warehouse.duckdb but for
    timestamps), so a copied or moved SEGFLOW_HOME reuses the parse instead of parsing again
    (~5 s). A URL (md:, ducklake:...) or a project reading `target.path` keeps the whole value."""
    name, sep, value = part.partition("=")
    if name != WAREHOUSE_ENV or not sep or reads_target_path or len(urlparse(value).scheme) > 1:
        return part
    return f"{name}=.../{Path(value).name}"


def disk_key(project_dir: Path, memory_key: Sequence[str]) -> str:
    """A hash of everything the parsed manifest depends on (see the module docstring)."""
    from dbt.version import __version__ as dbt_version

    digest = hashlib.sha256()
    env_names: set[bytes] = set()
    reads_target_path = False
    for path in _project_files(project_dir):
        content = path.read_bytes()
        digest.update(str(path.relative_to(project_dir)).encode() + b"\0")
        digest.update(hashlib.sha256(content).digest())
        if path.name != "profiles.yml":  # its connection settings do not change the manifest
            env_names.update(ENV_VAR.findall(content))
            reads_target_path = reads_target_path or bool(TARGET_PATH.search(content))
    for part in (dbt_version, *memory_key):
        digest.update(warehouse_part(part, reads_target_path).encode() + b"\0")
    for name in sorted(env_names):
        digest.update(name + b"=" + os.environ.get(name.decode(), "").encode() + b"\0")
    return digest.hexdigest()[:32]


def load(project_dir: Path, key: str) -> tuple[bytes, Path] | None:
    """The cached parse and its folder, or None (absent, or pruned while being read)."""
    entry = cache_dir(project_dir) / key
    try:
        packed = (entry / PACKED).read_bytes()
        os.utime(entry)  # recently used: pruned last
    except OSError:
        return None
    return packed, entry


@contextmanager
def new_entry(project_dir: Path) -> Iterator[Path]:
    """A scratch folder for a parse, removed afterwards unless `store` moved it into place."""
    root = cache_dir(project_dir)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".parse-", dir=root))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def store(project_dir: Path, key: str, scratch: Path, packed: bytes) -> Path:
    """Move the parse in `scratch` into the cache as `key` (a concurrent writer's equal entry
    wins the race) and prune the oldest entries."""
    (scratch / PACKED).write_bytes(packed)
    entry = cache_dir(project_dir) / key
    try:
        os.rename(scratch, entry)
    except OSError:  # written meanwhile by another process with the same key
        if not (entry / PACKED).exists():
            raise
    _prune(cache_dir(project_dir), keep=entry)
    return entry


def _prune(root: Path, keep: Path) -> None:
    entries = []
    for path in root.iterdir():
        try:
            if not path.name.startswith(".") and path != keep:
                entries.append((path.stat().st_mtime, path))
        except OSError:
            continue
    for _, path in sorted(entries, reverse=True)[KEEP - 1 :]:
        shutil.rmtree(path, ignore_errors=True)


def copy_artifacts(entry: Path, out_dir: Path) -> None:
    """The parse's artifacts (not the cache's own msgpack) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in entry.iterdir():
        if path.is_file() and path.name != PACKED:
            shutil.copy(path, out_dir / path.name)
