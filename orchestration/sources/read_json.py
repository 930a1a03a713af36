"""JSON readers: JSON lines kept as zero-copy Arrow slices (parsed once, later, by the row
rules), and JSON documents (an array, or an API list response such as Stripe's
`{"object": "list", "data": [...]}`) told apart by parsing, not by the first line. Pagination
markers (`has_more: true`) and duplicated keys are reported."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from orchestration.sources.discover import FileInfo
from orchestration.sources.stage import (
    EXTRA_KEY_SAMPLE_LINES,
    LINES_SCHEMA,
    STAGE_COLUMNS,
    ReadResult,
    extra_keys,
    insert_frame,
    is_utf8,
)
from orchestration.sources.tables import SourceError, TableSpec


def stage_jsonl(
    conn, stage: str, spec: TableSpec, info: FileInfo, lines: list[pa.Table], data: bytes
) -> list[str]:
    """JSON lines: split on newlines with numpy into a zero-copy Arrow array of the lines (with
    their numbers), appended to `lines`; they are parsed once, later, by the validation query
    (which also quarantines malformed lines). Invalid UTF-8 -> Python path into the stage table.
    Lines keep their trailing newline (JSON whitespace) to avoid a copy; blank lines are skipped."""
    if not is_utf8(data):
        _stage_jsonl_python(conn, stage, info, data)
        return _json_extra_keys(conn, stage, spec, info)
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    ends = _line_ends(data)
    if not len(ends) or ends[-1] != len(data):
        ends = np.append(ends, len(data))
    starts = np.concatenate([[bom], ends[:-1]]).astype(np.int64)
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    offsets[0] = bom
    n = len(ends)
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
    short = np.flatnonzero(ends - starts <= 2)
    blank = [i for i in short if not data[starts[i] : ends[i]].strip()]
    keep = np.ones(n, bool)
    keep[blank] = False
    day = (
        pa.nulls(n, pa.date32())
        if info.partition_date is None
        else pa.array(
            np.full(n, info.partition_date.toordinal() - _EPOCH_ORDINAL, np.int32), pa.int32()
        ).cast(pa.date32())
    )
    file = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, np.int32)), pa.array([info.relative])
    )
    table = pa.Table.from_arrays(
        [file, pa.array(np.arange(1, n + 1)), day, text], schema=LINES_SCHEMA
    )
    if not keep.all():
        table = table.filter(pa.array(keep))
    lines.append(table)
    return sorted(extra_keys(spec, _sample_keys(table.column("payload"))))


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CHUNK = 1 << 22


def _line_ends(data: bytes) -> np.ndarray:
    """Offsets just past each newline byte, compared in 4 MiB chunks into one reused mask (a
    mask the size of the file is a fresh mapping each time: 0.05 CPU s of page faults per
    50 MB file, five times the comparison itself)."""
    view = np.frombuffer(data, np.uint8)
    mask = np.empty(min(len(view), _CHUNK), bool)
    found = [np.empty(0, np.int64)]
    for start in range(0, len(view), _CHUNK):
        out = mask[: min(_CHUNK, len(view) - start)]
        np.equal(view[start : start + _CHUNK], 10, out=out)
        found.append(np.flatnonzero(out) + (start + 1))
    return np.concatenate(found)


def _sample_keys(text: pa.ChunkedArray) -> list[str]:
    """Keys of the objects among the first EXTRA_KEY_SAMPLE_LINES lines, in first-seen order
    (parsed as one JSON array when every line parses: one call instead of a thousand)."""
    lines = text.slice(0, EXTRA_KEY_SAMPLE_LINES).to_pylist()
    try:
        records = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        records = [_parsed(line) for line in lines]
    keys: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            keys.update(dict.fromkeys(record))
    return list(keys)


def _parsed(line: str) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _stage_jsonl_python(conn, stage: str, info: FileInfo, data: bytes) -> None:
    """Slow path for files with invalid UTF-8: decode line by line, quarantine the bad lines."""
    rows = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        try:
            text, reason, detail = raw.decode("utf-8"), None, None
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", errors="replace")
            reason = "bad_encoding"
            detail = (
                f"byte 0x{raw[exc.start]:02x} at position {exc.start} of the line is not "
                f"valid UTF-8 (expected UTF-8 text)"
            )
        rows.append((info.relative, number, info.partition_date, text, reason, detail))
    insert_frame(conn, stage, pd.DataFrame(rows, columns=list(STAGE_COLUMNS)))


def _json_extra_keys(conn, stage: str, spec: TableSpec, info: FileInfo) -> list[str]:
    """Keys outside the contract, looked for in the first EXTRA_KEY_SAMPLE_LINES lines of the
    file (a full scan would parse every line once more)."""
    keys = conn.execute(
        f"""select distinct unnest(json_keys(payload)) from
            (select payload from {stage} where source_file = $file and pre_reason is null
             order by source_line limit {EXTRA_KEY_SAMPLE_LINES})
            where json_valid(payload) and json_type(payload) = 'OBJECT'""",
        {"file": info.relative},
    ).fetchall()
    return sorted(k for (k,) in keys if k not in spec.known_keys)


def _parse_document(data: bytes) -> object | None:
    """The file as one JSON value, or None when it is not exactly one (JSON lines, or broken).
    Decided by parsing, not by the first line: `{"object":"list","data":[...]}` on one line
    (json.dump, jq -c) is a document. A JSON-lines file fails fast, right after its first
    record ("Extra data")."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return None


RECORD_KEYS = ("data", "results", "records", "items")  # where API list responses keep rows


def records_key(document: object, source) -> str | None:
    """The key of a JSON object document that holds its records: `records_path`, else the one
    of RECORD_KEYS holding a list (an API list response such as Stripe's `data`)."""
    if not isinstance(document, dict):
        return None
    if source is not None and source.records_path:
        return source.records_path if source.records_path in document else None
    found = [k for k in RECORD_KEYS if isinstance(document.get(k), list)]
    return found[0] if len(found) == 1 else None


def is_json_document(data: bytes, source) -> bool:
    """A JSON array file, or one object holding the records (see `records_key`)."""
    head = data[:64].lstrip(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"["):
        return True
    if not head.startswith(b"{"):
        return False
    document = _parse_document(data)
    if records_key(document, source) is not None:
        return True
    declared = source is not None and source.records_path
    return bool(declared and document is None and b"\n" not in data.strip())


# Markers of a paginated API response that holds one page only (Stripe/Slack `has_more`,
# HubSpot `paging.next`, Zendesk `next_page`, Google-style `nextPageToken`).
def pagination_marker(document: dict) -> str | None:
    if document.get("has_more") is True:
        return "has_more: true"
    paging = document.get("paging")
    if isinstance(paging, dict) and paging.get("next"):
        return "paging.next is set"
    for key in ("next_page", "nextPageToken", "next_page_token", "next"):
        if document.get(key):
            return f"{key} is set"
    return None


def stage_json_array(
    conn,
    stage: str,
    spec: TableSpec,
    info: FileInfo,
    data: bytes,
    source=None,
    result: ReadResult | None = None,
) -> list[str]:
    """A JSON document: an array of records, or an object holding them (an API list response);
    each element one stage row numbered from 1, a non-object element quarantined."""
    items = _load_document(info, data, result)
    if isinstance(items, dict):
        items = _records_of(info, items, source, result)
    rows = [
        (
            info.relative,
            number,
            info.partition_date,
            json.dumps(item, ensure_ascii=False),
            None,
            None,
        )
        if isinstance(item, dict)
        else (
            info.relative,
            number,
            info.partition_date,
            json.dumps(item),
            "malformed_json",
            f"element {number} is {type(item).__name__}, expected an object",
        )
        for number, item in enumerate(items, start=1)
    ]
    insert_frame(conn, stage, pd.DataFrame(rows, columns=list(STAGE_COLUMNS)))
    return _json_extra_keys(conn, stage, spec, info)


def _load_document(info: FileInfo, data: bytes, result: ReadResult | None):
    """The parsed document; repeated keys in an object are reported (the last value kept)."""
    duplicated: list[str] = []
    try:
        items = json.loads(
            data.decode("utf-8-sig"), object_pairs_hook=lambda p: _no_dup(p, duplicated)
        )
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(
            f"{info.relative}: not a valid JSON array ({exc}); expected "
            "[{...}, ...] or JSON lines",
            file=info.relative,
            line=getattr(exc, "lineno", None),
        ) from exc
    if duplicated and result is not None:
        keys = ", ".join(sorted(set(duplicated))[:5])
        result.warnings.append(
            f"{info.relative}: {len(duplicated)} object(s) repeat a key ({keys}); the last "
            "value was kept"
        )
    return items


def _records_of(info: FileInfo, document: dict, source, result: ReadResult | None) -> list:
    """The list of records in an API response object (`data`, ... or `records_path:`); a
    pagination marker (`has_more: true`) marks the export incomplete."""
    marker = pagination_marker(document)
    if marker and result is not None:
        result.incomplete[info.relative] = (
            f"{marker}: the export holds one page of a paginated API response; fetch "
            "every page (e.g. Stripe's starting_after) and land them all"
        )
    key = records_key(document, source) or (source.records_path if source else None)
    if key and not (source is not None and source.records_path) and result is not None:
        result.warnings.append(
            f"{info.relative}: records read from the document's `{key}` list (set "
            "`records_path:` in sources.yml to choose another key)"
        )
    items = document.get(key) if key else None
    if not isinstance(items, list):
        raise SourceError(
            f"{info.relative}: records_path {key!r} is not a list of records in this JSON "
            f"document (its keys: {', '.join(list(document)[:10])})"
            if key
            else f"{info.relative}: a JSON object without a list of records (expected one "
            f"of {', '.join(RECORD_KEYS)}, or set `records_path:`)",
            file=info.relative,
        )
    return items


def _no_dup(pairs: list[tuple[str, object]], duplicated: list[str]) -> dict:
    """object_pairs_hook: note keys that appear twice in one object (json keeps the last)."""
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        duplicated += [k for k, _ in pairs if k in seen or seen.add(k)]
    return obj
