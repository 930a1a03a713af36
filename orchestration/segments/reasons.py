"""Why is this person in a segment: the rule's top-level arm that matched.

A rule `a or b or c` has three arms; a member is there because of the first arm that holds
(in the file's order). `main.segment_reasons` holds one row per member, segment and day with
that arm's text (a one-arm rule gives the rule itself), so people.csv, the report and the
sync can say "churn_risks: churn_band == 'high'" instead of just "churn_risks"."""

from __future__ import annotations

import ast
from datetime import date

import duckdb

from orchestration.segments.config import SegmentConfig
from orchestration.segments.rules import compile_rule

DDL = """create table if not exists main.segment_reasons (
    user_id VARCHAR, segment_date DATE, segment VARCHAR, reason VARCHAR)"""
# One person's reasons as one text, the same in people.csv and the sync payload:
# "churn_risks: churn_band == 'high'; smb: company_size in [...]" (aggregate over their rows).
REASONS_TEXT_SQL = "string_agg(segment || ': ' || reason, '; ' order by segment)"


def rule_arms(text: str) -> list[str]:
    """The top-level `or` operands of a rule, as written (one element when it has no `or`).
    A guard around one disjunction (`not is_churned and (a or b)`) holds for every member,
    so the arms are the disjunction's: a, b."""
    flat = " ".join(text.split())
    tree = ast.parse(flat, mode="eval").body
    if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And):
        ors = [v for v in tree.values if isinstance(v, ast.BoolOp) and isinstance(v.op, ast.Or)]
        tree = ors[0] if len(ors) == 1 else tree
    if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.Or):
        return [" ".join(ast.get_source_segment(flat, v).split()) for v in tree.values]
    return [flat]


def _reason_sql(config: SegmentConfig, index: int) -> tuple[str, dict[str, object]]:
    """CASE over the segment's arms: the first that holds names the reason."""
    segment = config.segments[index]
    arms = rule_arms(segment.rule.text)
    params: dict[str, object] = {f"why_{index}_{n}": arm for n, arm in enumerate(arms)}
    if len(arms) == 1:
        return f"$why_{index}_0", params
    cases = []
    for n, arm in enumerate(arms):
        compiled = compile_rule(arm, config.columns, param_prefix=f"arm_{index}_{n}_")
        params.update(compiled.params)
        cases.append(f"when {compiled.sql} then $why_{index}_{n}")
    return f"case {' '.join(cases)} end", params


def write_reasons(
    conn: duckdb.DuckDBPyConnection, config: SegmentConfig, relation: str, dates: list[date]
) -> int:
    """Replace `dates`' reasons for every member of every segment; returns rows written.

    The members' rows are joined with the input once (only the columns the rules read), not
    once per segment: each join reads the day's features and scores again."""
    conn.execute(DDL)
    conn.execute(
        "delete from main.segment_reasons where segment_date in (select unnest($dates::DATE[]))",
        {"dates": dates},
    )
    params: dict[str, object] = {"dates": dates}
    selects = []
    for index, segment in enumerate(config.segments):
        reason, extra = _reason_sql(config, index)
        params.update(extra)
        params[f"seg_{index}"] = segment.name
        selects.append(
            f"select user_id, segment_date, $seg_{index} as segment, {reason} as reason "
            f"from members where list_contains(segments, $seg_{index})"
        )
    if not selects:
        return 0
    own = ("user_id", "segment_date", "segments")
    read = sorted({c for s in config.segments for c in s.rule.columns} - set(own))
    columns = "".join(f', f."{c}"' for c in read)
    conn.execute(
        "insert into main.segment_reasons with members as materialized ("
        f"select m.user_id, m.segment_date, m.segments{columns} from main.user_segments m "
        f"join {relation} f on f.user_id = m.user_id and f.snapshot_date = m.segment_date "
        "where m.segment_date in (select unnest($dates::DATE[]))) " + " union all ".join(selects),
        params,
    )
    return conn.execute(
        "select count(*) from main.segment_reasons where segment_date in "
        "(select unnest($dates::DATE[]))",
        {"dates": dates},
    ).fetchone()[0]
