"""The end-of-run summary prints one line per destination, from the metadata the real
`destination_sync` asset writes in a real Dagster run (outbox sent, Intercom unmatched,
LaunchDarkly refused), not only the last destination's line."""

from __future__ import annotations

import io
import uuid
from datetime import date

import dagster as dg
import duckdb
from support.sync_inputs import synthetic_inputs, write_inputs

from orchestration.activation.fake_intercom import FakeIntercom
from orchestration.defs.activation import destination_sync
from orchestration.defs.partitions import daily_partitions
from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource
from orchestration.launcher import Progress
from orchestration.report.run_summary import warehouse_lines
from orchestration.settings import Settings


def test_one_summary_line_per_destination(tmp_path, monkeypatch) -> None:
    shipped = Settings.from_env().segments_file.read_text().splitlines()
    segments_file = tmp_path / "segments.yml"  # no segment opts in to LaunchDarkly: refused
    segments_file.write_text("\n".join(x for x in shipped if "launchdarkly:" not in x) + "\n")
    day = daily_partitions.get_first_partition_key()
    db = tmp_path / "w.duckdb"
    with duckdb.connect(str(db)) as conn:
        write_inputs(conn, **synthetic_inputs(8, date.fromisoformat(day), seed=3))
    with FakeIntercom(token="ic") as intercom:
        for name, value in {
            "SEGFLOW_HOME": str(tmp_path),
            "SEGFLOW_DUCKDB_PATH": str(db),
            "SEGFLOW_SEGMENTS_FILE": str(segments_file),
            "SEGFLOW_DESTINATIONS": "outbox,intercom,launchdarkly",
            "SEGFLOW_SYNC_MAX_CHANGE_SHARE": "1.0",
            "INTERCOM_BASE_URL": intercom.url,
            "INTERCOM_ACCESS_TOKEN": "ic",
            "SEGFLOW_INTERCOM_CREATE_CONTACTS": "0",  # nobody exists there: all unmatched
            "LAUNCHDARKLY_ACCESS_TOKEN": "ld",
        }.items():
            monkeypatch.setenv(name, value)
        job = dg.Definitions(
            assets=[destination_sync],
            jobs=[dg.define_asset_job("sync_only", partitions_def=daily_partitions)],
            resources={
                "warehouse": WarehouseResource(duckdb_path=str(db)),
                "segflow": SegflowSettingsResource(),
            },
        ).resolve_job_def("sync_only")
        instance = dg.DagsterInstance.ephemeral()
        run_id = str(uuid.uuid4())
        progress = Progress(instance, run_id, io.StringIO())
        result = job.execute_in_process(instance=instance, run_id=run_id, partition_key=day)
        progress.poll()
    assert result.success
    with duckdb.connect(str(db)) as conn:
        people = conn.execute(
            "select count(*) from user_segments where segment_date = ?", [day]
        ).fetchone()[0]
        lines = warehouse_lines(conn, tmp_path / "outbox", progress.sync_summaries)
    sync = [line for line in lines if line.startswith("sync to ")]
    assert [line.split()[2] for line in sync] == ["outbox", "intercom", "launchdarkly"], lines
    outbox, intercom_line, launchdarkly = sync
    assert f": ok; people synced {people:,} (failed 0), events synced" in outbox
    assert any(line.startswith("outbox file: ") and line.endswith(".jsonl") for line in lines)
    events = int(intercom_line.split("(failed ")[2].split(")")[0])
    assert f": partial; people synced 0 (failed {people:,})" in intercom_line and events > 0
    assert intercom_line.endswith(f"; {people + events:,} unmatched items (no person there)")
    assert launchdarkly.split(": ", 1)[1].startswith("refused; people synced 0 (failed 0)")
    why = lines[lines.index(launchdarkly) + 1]
    assert why.startswith("  why: ") and str(segments_file) in why
