"""`<outbox file>.people.csv`: one row per person a sync sent, with their full current state
(segments, flow, scores, bands, reasons in words) and which attributes this sync changed.

Built column by column: the state comes from one DuckDB query over the people sent (their ids
as an Arrow table, rows in person order) and each column is turned into cells in one pass
(~56k people a day at 100k customers: a dict and a formatting call per cell cost ~2 CPU s).
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from contracts.models import score_fields

from ...segments.reasons import REASONS_TEXT_SQL
from ..payload import LATEST_SCORES_SQL
from ..reason_text import banded_kinds, plain_reasons

PEOPLE_COLUMNS = [
    "person_id",
    "change",
    "attributes_sent",
    "segments",
    "segment_reasons",
    "primary_segment",
    "onboarding_flow",
    "next_block",
    "experiment",
    "experiment_variant",
    *score_fields(),
]
SEGMENT_COLUMNS = [
    "primary_segment",
    "onboarding_flow",
    "next_block",
    "experiment",
    "experiment_variant",
]


def write_people(path: Path, people: dict[str, dict], conn: Any, as_of: date) -> None:
    """people.csv rows in person order: `people` maps each person sent to the attributes
    sent; their state on `as_of` is read from the warehouse (empty cells when absent)."""
    ids = sorted(people)
    columns: dict[str, list[str]] = {"person_id": ids}
    columns["change"], columns["attributes_sent"] = _sent_columns(ids, people)
    state = _state_columns(conn, ids, as_of)
    blank = [""] * len(ids)
    for name in PEOPLE_COLUMNS[3:]:
        columns[name] = cells(state[name]) if name in state else blank
    for kind, (band, reasons) in banded_kinds().items():
        columns[reasons] = _reason_words(kind, state.get(reasons), state.get(band), len(ids))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(PEOPLE_COLUMNS)
        writer.writerows(zip(*(columns[c] for c in PEOPLE_COLUMNS), strict=True))


def _sent_columns(ids: list[str], people: dict[str, dict]) -> tuple[list[str], list[str]]:
    """("cleared" or "updated", "attr; other=(removed)") per person, from what was sent."""
    change, sent_names = [], []
    for pid in ids:
        sent = {k: v for k, v in people[pid].items() if k != "segflow_synced_at"}
        change.append("cleared" if sent and all(v == "" for v in sent.values()) else "updated")
        sent_names.append(
            "; ".join(f"{k}=(removed)" if v == "" else k for k, v in sorted(sent.items()))
        )
    return change, sent_names


def _reason_words(kind: str, codes: list | None, bands: list | None, n: int) -> list[str]:
    """plain_reasons per person, once per distinct (codes, band) pair."""
    if codes is None or bands is None:
        codes, bands = codes or [None] * n, bands or [None] * n
    words: dict[tuple, str] = {}
    out = []
    for key in zip(codes, bands, strict=True):
        text = words.get(key)
        if text is None:
            text = words[key] = plain_reasons(kind, *key)
        out.append(text)
    return out


def _state_columns(conn: Any, ids: list[str], as_of: date) -> dict[str, list]:
    """Column name -> values in `ids` order (None where the person has no row on `as_of`);
    {} when there is no user_segments table."""
    if not ids:
        return {}
    tables = {
        r[0]
        for r in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'main'"
        ).fetchall()
    }
    if "user_segments" not in tables:
        return {}
    selects = ["list_sort(us.segments) as segments", *(f"us.{c}" for c in SEGMENT_COLUMNS)]
    joins = []
    if "user_scores" in tables:
        selects += [f"sc.{c}" for c in score_fields()]
        joins.append(f"left join ({LATEST_SCORES_SQL}) sc on sc.user_id = us.user_id")
    if "segment_reasons" in tables:  # which rule arm put each person in each segment
        selects.append("rs.segment_reasons")
        joins.append(
            f"left join (select user_id, {REASONS_TEXT_SQL} as segment_reasons "
            "from main.segment_reasons where segment_date = $as_of "
            "and user_id in (select person_id from _people_sent) group by user_id) rs "
            "on rs.user_id = us.user_id"
        )
    sql = f"""
        select p.position, {", ".join(selects)}
        from _people_sent p
        left join main.user_segments us on us.user_id = p.person_id and us.segment_date = $as_of
        {" ".join(joins)}
        qualify row_number() over (partition by p.position) = 1
        order by p.position"""
    people = pa.table({"person_id": pa.array(ids, pa.string()), "position": range(len(ids))})
    conn.register("_people_sent", people)
    try:
        table = conn.sql(sql, params={"as_of": as_of}).to_arrow_table()
    finally:
        conn.unregister("_people_sent")
    return {name: table.column(name).to_pylist() for name in table.column_names[1:]}


def cells(values: list) -> list[str]:
    """`cell` of every value, with one-pass paths for all-text and all-float columns."""
    kinds = {type(v) for v in values}
    if kinds <= {str, type(None)}:
        return ["" if v is None else v for v in values]
    if kinds <= {float, type(None)}:
        return ["" if v is None or v != v else f"{v:.4g}" for v in values]
    return [cell(v) for v in values]


def cell(value: Any) -> str:
    """One value as people.csv shows it: lists joined by ", ", floats to 4 significant
    digits, nothing for null or NaN."""
    if value is None:
        return ""
    if type(value) is str:
        return value
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"
    return str(value)
