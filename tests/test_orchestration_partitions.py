"""`run_window`: the one way the wiring works out which days a run is about."""

from datetime import date

import dagster as dg

from orchestration.defs.partitions import (
    RunWindow,
    daily_partitions,
    run_window,
    single_run,
    window_from_tags,
)

SEEN: list = []


@dg.asset(partitions_def=daily_partitions, backfill_policy=single_run)
def partitioned_table(context: dg.AssetExecutionContext) -> None:
    SEEN.append(run_window(context))


@dg.asset_check(asset=partitioned_table)
def partitioned_table_check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    SEEN.append(run_window(context))
    return dg.AssetCheckResult(passed=True)


def test_window_from_tags() -> None:
    assert window_from_tags({"dagster/partition": "2026-08-02"}) == RunWindow(
        date(2026, 8, 2), date(2026, 8, 2)
    )
    window = window_from_tags(
        {
            "dagster/asset_partition_range_start": "2026-08-01",
            "dagster/asset_partition_range_end": "2026-08-03",
        }
    )
    assert window.days == [date(2026, 8, 1), date(2026, 8, 2), date(2026, 8, 3)]
    assert window.label == "2026-08-01..2026-08-03"
    assert window_from_tags({}) is None


def test_asset_and_its_check_see_the_same_range() -> None:
    SEEN.clear()
    result = dg.materialize(
        [partitioned_table, partitioned_table_check],
        tags={
            "dagster/asset_partition_range_start": "2026-08-01",
            "dagster/asset_partition_range_end": "2026-08-04",
        },
    )
    assert result.success
    expected = RunWindow(date(2026, 8, 1), date(2026, 8, 4))
    assert [expected, expected] == SEEN
    SEEN.clear()
    assert dg.materialize([partitioned_table], partition_key="2026-08-02").success
    assert [RunWindow(date(2026, 8, 2), date(2026, 8, 2))] == SEEN
