"""Declared source mappings (`sources.yml`): which landing files feed which raw table, and how
their columns, timestamps, values and ids become the raw contract.

```yaml
version: 1
time_zone: UTC                 # default zone of timestamps written without one
ignore: ["exports/old/**"]     # never read, never reported as skipped
attributes:                    # custom CRM attributes, read from raw.crm_contacts.attributes
  - {name: date_of_birth, type: date}          # date | number | category
sources:
  events: {preset: segment_s3, files: ["segment-logs/**"]}     # one line per table
  crm_contacts:
    preset: hubspot_contacts_csv
    time_zone: America/New_York                  # any preset field can be overridden
    identity: {match_by: email}
```

A source's key is its name; `table` defaults to the name when the name is a raw table.
Column rules (contract column -> source), see `ColumnRule`:
- `"Record ID"` a top-level key / CSV header (CSV and parquet headers match in snake_case),
  `"$.properties.time"` a JSON path; a list is tried in order (first non-empty wins);
- a mapping with `from` (str or list) plus any of `format` (timestamps: `iso`, `epoch_s`,
  `epoch_ms`, `epoch_us` or a strptime pattern; a list is tried in order), `fallback` (paths
  used when `from` is empty, counted in the load's metadata; an invoice's `paid_at` falls back
  only on paid/refunded rows), `case`
  (`upper`/`lower`), `map` (value -> value), `default`, `divide_by`, `minor_units` (Stripe-style
  amounts: /100 except zero-decimal currencies), `size_bucket` (a head count -> 1-10 .. 1000+),
  `const` (a fixed value), `file_name` (glob on the file path -> value), `merge` (JSON objects
  merged), `rest` (every other key as one JSON object) and `prefix` (keys with a prefix, stripped).

Validation happens when the code location loads (`orchestration/defs/ingest.py`) and in
`segflow sources check`; an error names the file, the source and the key.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from contracts.attributes import CustomAttribute
from contracts.raw import RAW as TABLES
from orchestration.sources.attributes import parse_attributes
from orchestration.sources.mapping_rules import (
    ColumnRule,
    Identity,
    MappingError,
    config_error,
    parse_identity,
    parse_rule,
    str_list,
)
from orchestration.sources.presets import PRESETS

SOURCES_FILE_ENV = "SEGFLOW_SOURCES_FILE"
SOURCES_FILE_NAME = "sources.yml"
DEFAULT_IGNORE = ("sources.yml", "sources.yaml", "README*", "*.md")
FORMATS = ("auto", "jsonl", "json", "csv", "parquet")
# ids that are numbers in one export and text in another: 42, 42.0 and "42" are one id
DEFAULT_ID_COLUMNS = {
    "events": ("user_id", "anonymous_id"),
    "crm_contacts": ("user_id",),
    "billing_invoices": ("invoice_id", "user_id"),
}
# Segment mobile `screen` calls are activity like `page` (the raw contract has track/identify/page)
DEFAULT_VALUE_MAPS = {"events": {"type": {"screen": "page"}}}
# ISO currency codes are upper case in the contract (Stripe writes `usd`); statuses lower case
DEFAULT_CASE = {"billing_invoices": {"currency": "upper", "status": "lower"}}

_SOURCE_KEYS = {
    "table",
    "preset",
    "files",
    "format",
    "records_path",
    "csv",
    "columns",
    "time_zone",
    "normalize_ids",
    "identity",
    "on_skip",
    "encoding",
    "description",
    "partition_folder",
    "unread",
}


@dataclass(frozen=True)
class SourceMapping:
    name: str
    table: str
    preset: str | None = None
    files: tuple[str, ...] = ()
    format: str = "auto"
    records_path: str | None = None
    csv_footer: str = "none"  # none | auto (report exports' footer lines)
    csv_delimiter: str = ","
    columns: dict[str, ColumnRule] = field(default_factory=dict)  # empty: contract aliases
    time_zone: str = "UTC"
    normalize_ids: tuple[str, ...] = ()
    identity: Identity = field(default_factory=Identity)
    on_skip: str = "fail"  # fail | ignore
    encoding: str | None = None  # text files' encoding (None: UTF-8; a UTF-16 BOM decides)
    partition_folder: str = "dt"  # dt (dt=YYYY-MM-DD) | epoch_ms (also a folder like 1740960000000)
    # files the source claims but does not read: (glob, reason, blocks the run)
    unread: tuple[tuple[str, str, bool], ...] = ()

    @property
    def default_columns(self) -> bool:
        return not self.columns


@dataclass(frozen=True)
class SourcesConfig:
    path: Path | None
    sources: tuple[SourceMapping, ...]
    ignore: tuple[str, ...] = DEFAULT_IGNORE
    attributes: tuple[CustomAttribute, ...] = ()  # custom CRM attributes (contracts.attributes)

    def for_table(self, table: str) -> list[SourceMapping]:
        return [s for s in self.sources if s.table == table]


def default_source(table: str) -> SourceMapping:
    """The mapping used without a sources.yml: `<table>/**`, contract names (snake or camel)."""
    return SourceMapping(
        name=table, table=table, files=(f"{table}/**",), normalize_ids=DEFAULT_ID_COLUMNS[table]
    )


def default_config() -> SourcesConfig:
    return SourcesConfig(None, tuple(default_source(t) for t in TABLES))


def sources_file(landing_dir: Path) -> Path:
    """`$SEGFLOW_SOURCES_FILE`, else `<landing>/sources.yml`."""
    value = os.environ.get(SOURCES_FILE_ENV, "").strip()
    return Path(value) if value else Path(landing_dir) / SOURCES_FILE_NAME


def load_config(landing_dir: Path | None = None, path: Path | None = None) -> SourcesConfig:
    """The declared mappings (validated), or the defaults when there is no sources.yml."""
    if path is None:
        if landing_dir is None:
            return default_config()
        path = sources_file(landing_dir)
        if not path.exists():
            return default_config()
    path = Path(path)
    if not path.exists():
        raise MappingError(
            f"{path}: sources file not found (set {SOURCES_FILE_ENV} or put "
            f"{SOURCES_FILE_NAME} in the landing folder)"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML ({exc})") from exc
    return parse_config(raw, path)


def declared_attributes(settings: Any) -> tuple[CustomAttribute, ...]:
    """The custom CRM attributes the deployment's sources.yml declares (none without one): the
    one list `dbt_vars`, the GX suite, the segment schema and the model inputs read."""
    return load_config(settings.source_dir).attributes


def parse_config(raw: Any, path: Path | str = "sources.yml") -> SourcesConfig:
    where = str(path)
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: expected a mapping with a `sources:` key")
    unknown = set(raw) - {"version", "time_zone", "ignore", "sources", "attributes"}
    if unknown:
        raise MappingError(
            f"{where}: unknown top-level key(s) {sorted(unknown)}; expected "
            "version, time_zone, ignore, sources, attributes"
        )
    attributes = parse_attributes(raw.get("attributes"), where)
    zone = raw.get("time_zone", "UTC")
    _check_zone(zone, where, "(top level)", "time_zone")
    ignore = str_list(raw.get("ignore", []), where, "(top level)", "ignore")
    sources_raw = raw.get("sources")
    if not isinstance(sources_raw, dict) or not sources_raw:
        raise MappingError(
            f"{where}: `sources:` must map source names to their mapping, e.g. "
            "`sources: {events: {preset: segment_s3}}`"
        )
    sources = [_parse_source(name, body, where, zone) for name, body in sources_raw.items()]
    covered = {s.table for s in sources}
    # tables without a declared source keep the default layout <table>/**
    sources += [default_source(t) for t in TABLES if t not in covered]
    return SourcesConfig(Path(path), tuple(sources), DEFAULT_IGNORE + tuple(ignore), attributes)


def _check_zone(zone: Any, where: str, source: str, key: str) -> None:
    if not isinstance(zone, str):
        raise config_error(where, source, key, f"expected an IANA time zone name, found {zone!r}")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise config_error(
            where,
            source,
            key,
            f"unknown time zone {zone!r} (expected an IANA name such as UTC or America/New_York)",
        ) from exc


def _parse_source(name: Any, body: Any, where: str, zone: str) -> SourceMapping:
    """One source of sources.yml: its preset merged under its own keys, every key checked."""
    name = str(name)
    preset, merged = _merge_preset(name, body, where)
    table = merged.get("table", name if name in TABLES else None)
    if table not in TABLES:
        raise config_error(
            where,
            name,
            "table",
            f"{table!r} is not a raw table; expected one of {', '.join(TABLES)}",
        )
    fmt = merged.get("format", "auto")
    if fmt not in FORMATS:
        raise config_error(where, name, "format", f"{fmt!r}; expected one of {', '.join(FORMATS)}")
    footer, delimiter = _parse_csv(merged.get("csv", {}) or {}, where, name)
    tz = merged.get("time_zone", zone)
    _check_zone(tz, where, name, "time_zone")
    records_path = merged.get("records_path")
    if records_path is not None and not isinstance(records_path, str):
        raise config_error(where, name, "records_path", "expected a key such as `data`")
    return SourceMapping(
        name=name,
        table=table,
        preset=preset,
        files=tuple(str_list(merged.get("files", [f"{table}/**"]), where, name, "files")),
        format=fmt,
        records_path=records_path,
        csv_footer=footer,
        csv_delimiter=delimiter,
        columns=_parse_columns(merged.get("columns", {}) or {}, table, where, name),
        time_zone=tz,
        normalize_ids=_parse_normalize_ids(merged.get("normalize_ids", True), table, where, name),
        identity=parse_identity(merged.get("identity"), where, name, table),
        on_skip=_choice(merged, "on_skip", ("fail", "ignore"), where, name),
        partition_folder=_choice(merged, "partition_folder", ("dt", "epoch_ms"), where, name),
        encoding=_parse_encoding(merged.get("encoding"), where, name),
        unread=_parse_unread(merged.get("unread"), where, name),
    )


def _merge_preset(name: str, body: Any, where: str) -> tuple[str | None, dict[str, Any]]:
    """(preset name, the preset's keys overridden by the source's own; `columns` per column)."""
    if isinstance(body, str):  # `events: segment_s3`
        body = {"preset": body}
    if not isinstance(body, dict):
        raise config_error(where, name, "(mapping)", f"expected a mapping, found {body!r}")
    unknown = set(body) - _SOURCE_KEYS
    if unknown:
        raise config_error(
            where,
            name,
            sorted(unknown)[0],
            f"unknown key; expected one of {', '.join(sorted(_SOURCE_KEYS))}",
        )
    merged: dict[str, Any] = {}
    preset = body.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise config_error(
                where,
                name,
                "preset",
                f"unknown preset {preset!r}; expected one of {', '.join(sorted(PRESETS))}",
            )
        merged = dict(PRESETS[preset])
        merged["columns"] = dict(PRESETS[preset].get("columns", {}))
    for key, value in body.items():
        if key == "columns" and isinstance(value, dict):
            merged["columns"] = {**merged.get("columns", {}), **value}  # override per column
        else:
            merged[key] = value
    return preset, merged


def _parse_csv(opts: Any, where: str, name: str) -> tuple[str, str]:
    """`csv: {footer: none|auto, delimiter: ','}` -> (footer, delimiter)."""
    if not isinstance(opts, dict) or set(opts) - {"footer", "delimiter"}:
        raise config_error(where, name, "csv", "expected {footer: none|auto, delimiter: ','}")
    footer = opts.get("footer", "none")
    if footer not in ("none", "auto"):
        raise config_error(where, name, "csv.footer", f"{footer!r}; expected none or auto")
    delimiter = opts.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise config_error(where, name, "csv.delimiter", f"{delimiter!r}; expected one character")
    return footer, delimiter


def _parse_columns(raw: Any, table: str, where: str, name: str) -> dict[str, ColumnRule]:
    if not isinstance(raw, dict):
        raise config_error(where, name, "columns", "expected a mapping contract column -> source")
    spec = TABLES[table]
    columns = {}
    for col, rule in raw.items():
        if col not in spec.columns:
            raise config_error(
                where,
                name,
                f"columns.{col}",
                f"not a column of raw.{table}; expected one of {', '.join(spec.columns)}",
            )
        columns[col] = parse_rule(rule, where, name, f"columns.{col}")
    return columns


def _parse_normalize_ids(ids: Any, table: str, where: str, name: str) -> tuple[str, ...]:
    """`normalize_ids: true` (the table's id columns), false, or a list of columns."""
    if ids is True:
        return DEFAULT_ID_COLUMNS[table]
    if ids is False or ids is None:
        return ()
    normalize = tuple(str_list(ids, where, name, "normalize_ids"))
    bad = [c for c in normalize if c not in TABLES[table].columns]
    if bad:
        raise config_error(where, name, "normalize_ids", f"{bad} are not columns of raw.{table}")
    return normalize


def _choice(merged: dict, key: str, allowed: tuple[str, ...], where: str, name: str) -> str:
    """A key with a fixed set of values; the first one is the default."""
    value = merged.get(key, allowed[0])
    if value not in allowed:
        raise config_error(where, name, key, f"{value!r}; expected {' or '.join(allowed)}")
    return value


def _parse_encoding(encoding: Any, where: str, name: str) -> str | None:
    if encoding is None:
        return None
    try:
        codecs.lookup(str(encoding))
    except LookupError:
        raise config_error(
            where,
            name,
            "encoding",
            f"{encoding!r} is not a known encoding (e.g. latin-1, cp1252, utf-16)",
        ) from None
    return str(encoding)


def _parse_unread(raw: Any, where: str, source: str) -> tuple[tuple[str, str, bool], ...]:
    """`unread: {<glob>: <reason>}` (reported, not failing) or `{<glob>: {reason: ...,
    block: true}}` (the run stops until the file is claimed by another source or ignored)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise config_error(where, source, "unread", "expected a mapping glob -> reason")
    out = []
    for glob, value in raw.items():
        if isinstance(value, str):
            value = {"reason": value}
        if (
            not isinstance(value, dict)
            or set(value) - {"reason", "block"}
            or not isinstance(value.get("reason"), str)
            or not isinstance(value.get("block", False), bool)
        ):
            raise config_error(
                where, source, f"unread.{glob}", "expected a reason, or {reason: ..., block: true}"
            )
        out.append((str(glob), value["reason"], value.get("block", False)))
    return tuple(out)
