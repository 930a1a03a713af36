"""Landing-folder sensor, end to end: files dropped into a temporary landing folder start one
run for the affected days (cursor on name + size + mtime), files still being written wait,
and the run the sensor asks for loads exactly those days into DuckDB."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from demo.saas import generate
from orchestration.defs.sensors import plan_landing_run, scan_landing, segflow_landing_sensor

pytestmark = pytest.mark.slow  # builds a warehouse end to end; `make test-fast` skips it

START = date(2026, 3, 2)
DAYS = [START + timedelta(days=i) for i in range(4)]


def _drop(src: Path, landing: Path, day: date, age_s: float, suffix: str = "") -> list[Path]:
    """Copy one day's files of every table into the landing folder with mtime `age_s` ago."""
    out = []
    for table_dir in sorted(src.iterdir()):
        for f in sorted((table_dir / f"dt={day}").glob("*")):
            dest = landing / table_dir.name / f"dt={day}" / (f.name + suffix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
            stamp = time.time() - age_s
            os.utime(dest, (stamp, stamp))
            out.append(dest)
    return out


def _raw_job():
    from orchestration.defs.ingest import raw_assets
    from orchestration.defs.partitions import daily_partitions
    from orchestration.defs.resources import defs as resource_defs

    job = dg.define_asset_job(
        "segflow_daily_job",
        selection=dg.AssetSelection.assets(*raw_assets),
        partitions_def=daily_partitions,
    )
    defs = dg.Definitions(assets=raw_assets, resources=resource_defs().resources, jobs=[job])
    return defs.resolve_job_def("segflow_daily_job")


def _tick(instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return segflow_landing_sensor(context)


def _loaded_days(db: Path) -> dict[date, int]:
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            "select _partition_date, count(*) from raw.events group by 1 order by 1"
        ).fetchall()
    return {d: n for d, n in rows}


@pytest.fixture
def landing_env(tmp_path, monkeypatch):
    generated = tmp_path / "generated"
    generate(generated, tmp_path / "truth", users=40, days=len(DAYS), seed=5, start=START)
    landing = tmp_path / "landing"
    landing.mkdir()
    db = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("SEGFLOW_SOURCE", "files")
    monkeypatch.setenv("SEGFLOW_LANDING_DIR", str(landing))
    monkeypatch.setenv("SEGFLOW_DUCKDB_PATH", str(db))
    monkeypatch.setenv("SEGFLOW_LANDING_SETTLE_SECONDS", "30")
    return generated, landing, db


def test_files_dropped_start_one_run_for_their_days(landing_env):
    generated, landing, db = landing_env
    instance = dg.DagsterInstance.ephemeral()
    job = _raw_job()

    # nothing landed yet
    first = _tick(instance, None)
    assert not first.run_requests

    # three complete days (one file per table and day) + day 4 still being written (fresh mtime) and a .part file
    dropped = [p for d in DAYS[:3] for p in _drop(generated, landing, d, age_s=120)]
    writing = _drop(generated, landing, DAYS[3], age_s=0)
    partial = _drop(generated, landing, DAYS[3], age_s=120, suffix=".part")
    assert len(dropped) >= 3 and writing and partial

    result = _tick(instance, first.cursor)
    assert len(result.run_requests) == 1  # many files coalesced into one run
    request = result.run_requests[0]
    assert request.tags["dagster/asset_partition_range_start"] == str(DAYS[0])
    assert request.tags["dagster/asset_partition_range_end"] == str(DAYS[2])
    assert "dagster/partition" not in request.tags
    cursor = json.loads(result.cursor)
    assert set(cursor) == {p.relative_to(landing).as_posix() for p in dropped}
    assert all(not k.endswith(".part") for k in cursor)
    assert segflow_landing_sensor.job_name == "segflow_daily_job"

    run = job.execute_in_process(instance=instance, tags=request.tags)
    assert run.success
    loaded = _loaded_days(db)
    assert sorted(loaded) == DAYS[:3] and all(n > 0 for n in loaded.values())

    # same files, next tick: nothing to do (day 4 is still "being written")
    again = _tick(instance, result.cursor)
    assert not again.run_requests
    assert "still being written" in again.skip_reason.skip_message

    # day 4 finishes (the writer renames its .part file; the fresh copy settles) and day 2
    # is re-delivered with different content: one run for days 2..4
    for p in partial:
        p.unlink()
    for p in writing:
        stamp = time.time() - 120
        os.utime(p, (stamp, stamp))
    changed = landing / "events" / f"dt={DAYS[1]}"
    target = next(changed.glob("*"))
    with target.open("ab") as fh:
        fh.write(target.read_bytes().splitlines(keepends=True)[0])
    stamp = time.time() - 120
    os.utime(target, (stamp, stamp))

    third = _tick(instance, again.cursor)
    assert len(third.run_requests) == 1
    tags = third.run_requests[0].tags
    assert (
        tags["dagster/asset_partition_range_start"],
        tags["dagster/asset_partition_range_end"],
    ) == (
        str(DAYS[1]),
        str(DAYS[3]),
    )
    assert third.run_requests[0].run_key != request.run_key
    assert job.execute_in_process(instance=instance, tags=tags).success
    assert sorted(_loaded_days(db)) == DAYS


def test_sensor_skips_without_files_source(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGFLOW_SOURCE", "demo")
    result = _tick(dg.DagsterInstance.ephemeral(), None)
    assert "nothing to watch" in result.skip_message


def test_plan_is_pure_and_waits_for_settled_files(tmp_path):
    d = tmp_path / "events" / "dt=2026-03-02"
    d.mkdir(parents=True)
    (d / "a.jsonl").write_text("{}\n")
    (d / ".hidden.jsonl").write_text("{}\n")
    (d / "b.csv.tmp").write_text("x\n")
    files = scan_landing(tmp_path)
    assert [f.rel for f in files] == ["events/dt=2026-03-02/a.jsonl"]
    now = files[0].mtime_ns / 1e9
    days, cursor, pending = plan_landing_run(files, {}, settle_seconds=60, now=now + 10)
    assert days == [] and cursor == {} and pending == ["events/dt=2026-03-02/a.jsonl"]
    days, cursor, pending = plan_landing_run(files, {}, settle_seconds=60, now=now + 61)
    assert days == [date(2026, 3, 2)] and pending == []
    assert plan_landing_run(files, cursor, 60, now + 61)[0] == []
