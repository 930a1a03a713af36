"""Behavioural triggers: a firing is the day a condition has held for exactly `for_days`
consecutive days (for_days=1: false -> true), so each occurrence fires once. Runs that began
on the first day of data are left-censored (we did not see the transition) and never fire.
Re-running a day replaces that day's firings."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd

from orchestration.segments.config import SegmentConfig, Trigger
from orchestration.segments.tables import ensure_tables, input_relation

TRIGGER_COLUMNS = ["user_id", "trigger", "fired_at", "context"]


def fire_triggers(
    conn: duckdb.DuckDBPyConnection, config: SegmentConfig, dates: list[date]
) -> pd.DataFrame:
    """Evaluate every trigger for `dates`, replace those days in `user_triggers`, return
    the firings written."""
    ensure_tables(conn)
    dates = sorted(set(dates))
    firings = []
    for kind in ("rule", "segment"):
        triggers = [t for t in config.triggers if (t.rule is not None) == (kind == "rule")]
        if not triggers:
            continue
        low = dates[0] - timedelta(days=max(t.for_days for t in triggers))
        relation, _ = input_relation(conn, (low, dates[-1]))
        frame, data_start = _conditions(conn, relation, triggers, low, dates[-1])
        firings += [_fire(frame, i, t, dates, data_start) for i, t in enumerate(triggers)]
    result = (
        pd.concat(firings, ignore_index=True) if firings else pd.DataFrame(columns=TRIGGER_COLUMNS)
    )
    result = result.sort_values(["fired_at", "trigger", "user_id"], ignore_index=True)
    conn.execute("begin transaction")
    try:
        conn.execute(
            "delete from main.user_triggers where fired_at in (select unnest($dates::DATE[]))",
            {"dates": dates},
        )
        if len(result):
            conn.register("_new_triggers", result)
            conn.execute(
                'insert into main.user_triggers select user_id, "trigger", '
                "fired_at::DATE, context from _new_triggers"
            )
            conn.unregister("_new_triggers")
        conn.execute("commit")
    except Exception:
        conn.execute("rollback")
        raise
    return result


def _conditions(
    conn: duckdb.DuckDBPyConnection, relation: str, triggers: list[Trigger], low: date, high: date
) -> tuple[pd.DataFrame, date | None]:
    """One row per user per day in [low, high] with a `cond_<i>` column per trigger and the
    columns the rules use (for the context); plus the first day of data."""
    if not triggers:
        return pd.DataFrame(), None
    params: dict[str, object] = {"low": low, "high": high}
    if triggers[0].rule is not None:
        selects = []
        for index, trigger in enumerate(triggers):
            selects.append(f"{trigger.rule.sql} as cond_{index}")
            params.update(trigger.rule.params)
        context = sorted({c for t in triggers for c in t.rule.columns})
        selects += [f'"{c}"' for c in context]
        sql = (
            f"select user_id, snapshot_date as day, {', '.join(selects)} from {relation} "
            "where snapshot_date between $low and $high order by user_id, day"
        )
        start_sql = "select min(snapshot_date) from main.fct_user_features"
    else:
        selects = []
        for index, trigger in enumerate(triggers):
            params[f"segment_{index}"] = trigger.entered_segment
            selects.append(f"list_contains(segments, $segment_{index}) as cond_{index}")
        sql = (
            f"select user_id, segment_date as day, {', '.join(selects)} "
            "from main.user_segments where segment_date between $low and $high "
            "order by user_id, day"
        )
        start_sql = "select min(segment_date) from main.user_segments"
    frame = conn.execute(sql, params).df()  # ordered by DuckDB: faster than pandas on strings
    frame["day"] = pd.to_datetime(frame["day"])
    return frame, conn.execute(start_sql).fetchone()[0]


def _fire(
    frame: pd.DataFrame, index: int, trigger: Trigger, dates: list[date], data_start: date
) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(columns=TRIGGER_COLUMNS)
    cond = frame[f"cond_{index}"].to_numpy(dtype=bool)
    users = frame["user_id"].to_numpy()
    days = frame["day"].to_numpy()
    continues = np.zeros(len(frame), dtype=bool)
    continues[1:] = (
        (users[1:] == users[:-1]) & cond[:-1] & (days[1:] - days[:-1] == np.timedelta64(1, "D"))
    )
    starts = cond & ~continues
    run_start = pd.Series(np.where(starts, days, np.datetime64("NaT"))).ffill().to_numpy()
    with np.errstate(invalid="ignore"):  # NaT before a user's first true day: never fires
        run_length = (days - run_start) // np.timedelta64(1, "D") + 1
    wanted = np.isin(days.astype("datetime64[D]"), np.array(dates, dtype="datetime64[D]"))
    fire = (
        cond
        & (run_length == trigger.for_days)
        & wanted
        & (run_start != np.datetime64(data_start, "ns"))
    )
    fired = frame.loc[fire]
    since = pd.Series(run_start[fire]).dt.date.to_numpy()
    context_columns = list(trigger.rule.columns) if trigger.rule else []
    contexts = []
    records = fired[context_columns].to_dict("records") if context_columns else [{}] * len(fired)
    for record, started in zip(records, since, strict=True):
        values = {k: _json_value(v) for k, v in record.items()}
        if trigger.for_days > 1:
            values["condition_since"] = started.isoformat()
        if trigger.entered_segment:
            values["segment"] = trigger.entered_segment
        contexts.append(json.dumps(values, sort_keys=True))
    return pd.DataFrame(
        {
            "user_id": fired["user_id"].to_numpy(),
            "trigger": trigger.name,
            "fired_at": fired["day"].dt.date.to_numpy(),
            "context": contexts,
        }
    )


def _json_value(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
