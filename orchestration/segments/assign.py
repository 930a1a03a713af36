"""Daily segment assignment: rules -> exclusions -> primary segment -> flow -> experiment
variant -> next content block, written to `user_segments` (delete+insert per day), then the
membership history and the triggers for the same days."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from contracts.models import KINDS
from orchestration.segments.beside import beside
from orchestration.segments.config import SegmentConfig
from orchestration.segments.coverage import write_coverage
from orchestration.segments.membership import rebuild_membership
from orchestration.segments.reasons import write_reasons
from orchestration.segments.stats import assign_variants
from orchestration.segments.tables import check_against_warehouse, ensure_tables, input_relation
from orchestration.segments.triggers import fire_triggers
from orchestration.settings import Settings

_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("segment_date", pa.date32()),
        ("segments", pa.list_(pa.string())),
        ("primary_segment", pa.string()),
        ("onboarding_flow", pa.string()),
        ("experiment", pa.string()),
        ("experiment_variant", pa.string()),
        ("next_block", pa.string()),
    ]
)


@dataclass
class SegmentRunReport:
    """What a run wrote, for logs and Dagster metadata."""

    dates: list[date]
    users: dict[date, int]
    sizes: pd.DataFrame  # segment_date, segment, users (every configured segment)
    changes: pd.DataFrame  # + previous_users, change, change_share vs the day before
    flows: pd.DataFrame  # segment_date, onboarding_flow, experiment_variant, users
    triggers: pd.DataFrame  # fired_at, trigger, firings
    preview: pd.DataFrame  # first rows of the latest day
    stints_rebuilt: int
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # segment -> why it was not (fully) evaluated: a score its rule needs has no model yet.
    # The missing score's comparisons are false on those days, so its members are only those
    # matched by the rest of the rule: "unknown", not "nobody qualifies".
    not_evaluated: dict[str, str] = field(default_factory=dict)
    # segment -> people its rule could not decide on the latest affected day (coverage.py)
    partly_evaluated: dict[str, str] = field(default_factory=dict)


def assign_segments(
    conn: duckdb.DuckDBPyConnection, config: SegmentConfig, dates: list[date]
) -> SegmentRunReport:
    """Assign segments for `dates` (idempotent: each day is replaced), update
    `segment_membership` from the earliest of them onward and fire the triggers."""
    dates = sorted(set(dates))
    if not dates:
        raise ValueError("assign_segments needs at least one date")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    ensure_tables(conn)
    check_against_warehouse(conn, config)
    relation, warnings = input_relation(conn, (dates[0], dates[-1]))
    not_evaluated = missing_score_segments(conn, config, relation, dates)
    warnings += [f"segment {name!r} not evaluated: {why}" for name, why in not_evaluated.items()]
    frame = _evaluate(conn, config, relation, dates)
    table = _resolve(config, frame)
    timings["evaluate"] = time.perf_counter() - started

    mark = time.perf_counter()
    conn.execute("begin transaction")
    try:
        conn.execute(
            "delete from main.user_segments where segment_date in (select unnest($dates::DATE[]))",
            {"dates": dates},
        )
        conn.register("_new_segments", table)
        conn.execute("insert into main.user_segments select * from _new_segments")
        conn.unregister("_new_segments")
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    timings["write_user_segments"] = time.perf_counter() - mark

    # the triggers read user_segments (committed above) and write only user_triggers: they
    # run on a second cursor while reasons, coverage and membership are written here
    settings = Settings.from_env()
    on_spark = settings.engine == "spark" and _is_warehouse(conn, settings)
    with beside(conn, fire_triggers, config, dates, here=on_spark) as triggers:
        mark = time.perf_counter()
        write_reasons(conn, config, relation, dates)
        timings["reasons"] = time.perf_counter() - mark
        mark = time.perf_counter()
        undecided = write_coverage(conn, config, relation, dates)
        partly = _undecided(undecided[~undecided["segment"].isin(not_evaluated)])
        warnings += [f"segment {name!r} partly evaluated: {why}" for name, why in partly.items()]
        timings["coverage"] = time.perf_counter() - mark
        mark = time.perf_counter()
        stints = rebuild_membership(conn, dates[0])
        timings["membership"] = time.perf_counter() - mark
        firings, timings["triggers"] = triggers.result()

    users = dict.fromkeys(dates, 0)
    for day, count in conn.execute(
        "select segment_date, count(*) from main.user_segments where segment_date in "
        "(select unnest($dates::DATE[])) group by 1",
        {"dates": dates},
    ).fetchall():
        users[day] = count
    warnings += [f"{day}: no rows in fct_user_features" for day, n in users.items() if n == 0]
    changes = segment_sizes(conn, config.segment_names, dates)
    flows = conn.execute(
        "select segment_date, onboarding_flow, experiment_variant, count(*) as users "
        "from main.user_segments where segment_date in (select unnest($dates::DATE[])) "
        "group by all order by all",
        {"dates": dates},
    ).df()
    trigger_counts = (
        firings.groupby(["fired_at", "trigger"]).size().rename("firings").reset_index()
        if len(firings)
        else pd.DataFrame(columns=["fired_at", "trigger", "firings"])
    )
    preview = conn.execute(
        "select * from main.user_segments where segment_date = $d order by user_id limit 20",
        {"d": dates[-1]},
    ).df()
    timings["total"] = time.perf_counter() - started
    return SegmentRunReport(
        dates,
        users,
        changes[["segment_date", "segment", "users"]],
        changes,
        flows,
        trigger_counts,
        preview,
        stints,
        warnings,
        timings,
        not_evaluated,
        partly,
    )


def _undecided(undecided: pd.DataFrame) -> dict[str, str]:
    """Per segment its rule could not decide for everyone: what, on its latest such day."""
    out = {}
    for segment, rows in undecided.groupby("segment", sort=True):
        last = rows.iloc[-1]
        nulls = ", ".join(last["null_columns"]) or "a column"
        out[segment] = (
            f"{int(last['undetermined']):,} of {int(last['population']):,} users undecided on "
            f"{last['segment_date']} ({nulls} is null); they count as non-members "
            f"({len(rows)} days affected)"
        )
    return out


# Score columns that are null for everyone on a day when their model has no champion.
MODEL_SCORE_COLUMNS = {column: kind for kind, spec in KINDS.items() for column in spec.score_fields}


def missing_score_segments(
    conn: duckdb.DuckDBPyConnection, config: SegmentConfig, relation: str, dates: list[date]
) -> dict[str, str]:
    """Segments whose rule reads a score column that is null for every user on some of
    `dates` (its model has no champion yet, or scoring did not run): {segment: reason}."""
    used = sorted({c for s in config.segments for c in s.rule.columns if c in MODEL_SCORE_COLUMNS})
    if not used:
        return {}
    counts = ", ".join(f'count("{c}") as "{c}"' for c in used)
    per_day = conn.execute(
        f"select snapshot_date, {counts} from {relation} "
        "where snapshot_date in (select unnest($dates::DATE[])) group by 1",
        {"dates": dates},
    ).df()
    missing: dict[str, list[str]] = {}
    for column in used:
        empty_days = per_day.loc[per_day[column] == 0, "snapshot_date"]
        if len(empty_days):
            days = sorted(pd.Timestamp(d).date().isoformat() for d in empty_days)
            missing[column] = days
    out = {}
    for segment in config.segments:
        lacking = [c for c in segment.rule.columns if c in missing]
        if lacking:
            models = sorted({MODEL_SCORE_COLUMNS[c] for c in lacking})
            days = sorted({d for c in lacking for d in missing[c]})
            span = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]} ({len(days)} days)"
            out[segment.name] = (
                f"needs {', '.join(lacking)} but no {'/'.join(models)} score "
                f"exists on {span} (no champion model yet)"
            )
    return out


def _evaluate(
    conn: duckdb.DuckDBPyConnection, config: SegmentConfig, relation: str, dates: list[date]
) -> pd.DataFrame:
    params: dict[str, object] = {"dates": dates}
    selects = []
    for index, segment in enumerate(config.segments):
        selects.append(f"{segment.rule.sql} as seg_{index}")
        params.update(segment.rule.params)
    milestones = sorted({b.milestone for b in config.blocks.values()})
    selects += [f'coalesce("reached_{m}", false) as "reached_{m}"' for m in milestones]
    head = f"select user_id, snapshot_date as segment_date, {', '.join(selects)} from {relation}"
    settings = Settings.from_env()
    if settings.engine == "spark" and _is_warehouse(conn, settings):
        from orchestration.spark import segments as spark_segments

        del params["dates"]
        statement = f"{head} as r order by segment_date, user_id"
        return spark_segments.evaluate(conn, settings, statement, params, dates)
    return conn.execute(
        f"{head} where snapshot_date in (select unnest($dates::DATE[])) "
        "order by segment_date, user_id",
        params,
    ).df()


def _is_warehouse(conn: duckdb.DuckDBPyConnection, settings: Settings) -> bool:
    """Whether `conn` is segflow's warehouse file (the Spark engine's seam), not another."""
    path = conn.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    return bool(path and path[0]) and Path(path[0]).resolve() == settings.duckdb_path


def _resolve(config: SegmentConfig, frame: pd.DataFrame) -> pa.Table:
    names = list(config.segment_names)
    column = {name: i for i, name in enumerate(names)}
    member = frame[[f"seg_{i}" for i in range(len(names))]].to_numpy(dtype=bool).copy()
    for name in config.resolution_order:  # excluders are final before they exclude
        for target in config.removals[name]:
            member[:, column[target]] &= ~member[:, column[name]]

    alphabetical = sorted(range(len(names)), key=lambda i: names[i])
    ordered = member[:, alphabetical]
    offsets = np.concatenate([[0], np.cumsum(ordered.sum(axis=1))]).astype(np.int32)
    values = np.array([names[i] for i in alphabetical], dtype=object)[np.nonzero(ordered)[1]]
    segments = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.string()))

    by_rank = sorted(range(len(names)), key=lambda i: (-config.segments[i].priority, i))
    ranked = member[:, by_rank]
    has_any = ranked.any(axis=1)
    primary = np.where(
        has_any, np.array([names[i] for i in by_rank], dtype=object)[ranked.argmax(axis=1)], None
    )
    flow = np.array(
        [
            config.segment_flows.get(p, config.default_flow) if p else config.default_flow
            for p in primary
        ],
        dtype=object,
    )

    experiment = np.full(len(frame), None, dtype=object)
    variant = np.full(len(frame), None, dtype=object)
    next_block = np.full(len(frame), None, dtype=object)
    user_ids = frame["user_id"].to_numpy()
    for flow_name, spec in config.flows.items():
        rows = np.flatnonzero(flow == flow_name)
        if not len(rows):
            continue
        if spec.experiment is None:
            next_block[rows] = _next_block(config, frame, rows, spec.blocks)
            continue
        unique_users = pd.unique(user_ids[rows])
        chosen = dict(
            zip(unique_users, assign_variants(spec.experiment, unique_users), strict=True)
        )
        experiment[rows] = spec.experiment.name
        variant[rows] = [chosen[u] for u in user_ids[rows]]
        for arm in spec.experiment.variants:
            arm_rows = rows[variant[rows] == arm.name]
            if arm.blocks is not None and len(arm_rows):
                next_block[arm_rows] = _next_block(config, frame, arm_rows, arm.blocks)
    return pa.Table.from_arrays(
        [
            pa.array(user_ids, type=pa.string()),
            pa.array(pd.to_datetime(frame["segment_date"]).dt.date, type=pa.date32()),
            segments,
            pa.array(primary, type=pa.string()),
            pa.array(flow, type=pa.string()),
            pa.array(experiment, type=pa.string()),
            pa.array(variant, type=pa.string()),
            pa.array(next_block, type=pa.string()),
        ],
        schema=_SCHEMA,
    )


def _next_block(
    config: SegmentConfig, frame: pd.DataFrame, rows: np.ndarray, blocks: tuple[str, ...]
) -> np.ndarray:
    """First block whose milestone the user has not reached; None when all are reached."""
    result = np.full(len(rows), None, dtype=object)
    for block in reversed(blocks):
        reached = frame[f"reached_{config.blocks[block].milestone}"].to_numpy(dtype=bool)[rows]
        result = np.where(~reached, block, result)
    return result


def segment_sizes(
    conn: duckdb.DuckDBPyConnection, segment_names: tuple[str, ...] | list[str], dates: list[date]
) -> pd.DataFrame:
    """Size of every segment on each date and the change against the previous day (from
    `user_segments`, so a single-day run still compares with yesterday)."""
    wanted = sorted(set(dates) | {d - timedelta(days=1) for d in dates})
    counts = conn.execute(
        "select segment_date, segment, count(*) as users from (select segment_date, "
        "unnest(segments) as segment from main.user_segments where segment_date in "
        "(select unnest($dates::DATE[]))) group by all",
        {"dates": wanted},
    ).df()
    present = conn.execute(
        "select distinct segment_date from main.user_segments where "
        "segment_date in (select unnest($dates::DATE[]))",
        {"dates": wanted},
    ).df()["segment_date"]
    present_days = {pd.Timestamp(d).date() for d in present}
    found = {
        (pd.Timestamp(r.segment_date).date(), r.segment): int(r.users) for r in counts.itertuples()
    }
    names = sorted(set(segment_names) | {s for _, s in found})
    rows = []
    for day in sorted(set(dates)):
        previous = day - timedelta(days=1)
        for name in names:
            users = found.get((day, name), 0)
            before = found.get((previous, name), 0) if previous in present_days else None
            change = None if before is None else users - before
            share = (
                None
                if before is None
                else (abs(change) / before if before else (float("inf") if users else 0.0))
            )
            rows.append(
                {
                    "segment_date": day,
                    "segment": name,
                    "users": users,
                    "previous_users": before,
                    "change": change,
                    "change_share": share,
                }
            )
    return pd.DataFrame(
        rows,
        columns=["segment_date", "segment", "users", "previous_users", "change", "change_share"],
    )


def segment_size_changes(
    conn: duckdb.DuckDBPyConnection, day: date, max_change_share: float, min_previous_size: int = 1
) -> list[str]:
    """Warnings for segments whose size moved by more than `max_change_share` (0.5 = 50%)
    from the previous day; segments smaller than `min_previous_size` yesterday are ignored
    unless they grew past it. Empty when there is no previous day to compare with."""
    ensure_tables(conn)
    sizes = segment_sizes(conn, [], [day])
    warnings = []
    for row in sizes.itertuples():
        if row.previous_users is None or pd.isna(row.previous_users):
            continue
        before, now = int(row.previous_users), int(row.users)
        if before < min_previous_size and now < min_previous_size:
            continue
        if before == 0 or abs(now - before) / before > max_change_share:
            share = "new" if before == 0 else f"{(now - before) / before:+.0%}"
            warnings.append(
                f"segment {row.segment!r} changed from {before} to {now} users "
                f"({share}) on {day}, more than the allowed {max_change_share:.0%}"
            )
    return warnings
