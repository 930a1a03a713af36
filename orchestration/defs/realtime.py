"""Real-time wiring. The collector, the consumer and `segflow serve` are long-lived
processes (`segflow collect | consume | serve`), not Dagster runs: a run per event batch
would add seconds of run start-up to a path that must answer within two, and DuckDB allows one
writer, which the daily job holds. Dagster's part is the daily hand-over: after the segments
step, `realtime_snapshot` swaps in the read-only snapshot `serve` and the consumer read (the
daily result wins), compares the intraday answers it replaces with the daily ones, marks the
events the consumer already delivered as acknowledged before `destination_sync` runs, and
shows the consumer's lag, throughput and rule evaluations as metadata."""

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import dagster as dg

from orchestration.defs.metadata import scalar, table
from orchestration.defs.partitions import DUCKDB_POOL, daily_partitions, single_run
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from orchestration.defs.segments import segment_config
from orchestration.realtime import app
from orchestration.realtime.reconcile import (
    compare_day,
    consumer_stats,
    mark_delivered_events,
    record_run,
)
from orchestration.realtime.snapshot import build_snapshot


@dg.asset(
    group_name="segments",
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    pool=DUCKDB_POOL,
    deps=["user_segments", "user_scores"],
    description="Read-only SQLite snapshot of the latest segments and scores for `segflow "
    "serve` and the realtime consumer, swapped atomically; reconciles the intraday state.",
)
def realtime_snapshot(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    segflow: SegflowSettingsResource,
) -> dg.MaterializeResult:
    settings = segflow.settings()
    state = app.state_path(settings)
    # the stream's lag (the redis client's import, ~0.3 CPU s) is read beside the snapshot's
    # warehouse query, which runs without the GIL
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream-lag") as pool:
        stream_lag = pool.submit(_stream_lag, settings)
        with warehouse.connect() as conn:
            facts = build_snapshot(conn, segment_config(), app.snapshot_path(settings))
            day = date.fromisoformat(facts["snapshot_date"])
            result = compare_day(conn, state, day)
            acked = {d: mark_delivered_events(conn, state, d) for d in settings.destinations}
        stats = consumer_stats(state)
        lag = stream_lag.result()
    with warehouse.connect() as conn:  # one row per hand-over for the report's realtime page
        record_run(conn, day, lag if isinstance(lag, int) else None, stats, result)
    context.log.info(
        f"snapshot {facts['snapshot_date']}: {facts['users']} users; intraday compared "
        f"{result.compared}, differing {result.differing}"
    )
    metadata = {
        "snapshot_date": facts["snapshot_date"],
        "snapshot_users": facts["users"],
        "snapshot_suppressed": facts["suppressed"],
        "snapshot_path": dg.MetadataValue.path(str(app.snapshot_path(settings))),
        "intraday_users_compared": result.compared,
        "intraday_users_differing": result.differing,
        "intraday_differences": table(
            [{"field": k, "users": v} for k, v in result.differences.items()]
        ),
        "intraday_difference_examples": dg.MetadataValue.json(result.examples),
        "intraday_events_marked_acked": sum(acked.values()),
        "intraday_events_marked_acked_by_destination": dg.MetadataValue.json(acked),
        "stream_lag": lag,
    }
    metadata.update({f"consumer_{k}": scalar(v) for k, v in stats.items()})
    return dg.MaterializeResult(metadata=metadata)


def _stream_lag(settings) -> int | str:
    """Entries the consumer group has not acknowledged, or why it is unknown."""
    from orchestration.realtime.stream import GROUP  # not the consumer: its imports cost ~0.2 s

    try:
        return app.stream(settings).lag(GROUP).total
    except Exception as exc:  # no broker running: the daily job does not need one
        return f"unavailable ({type(exc).__name__})"


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[realtime_snapshot])
