"""End to end at the raw level: the demo generator at a 2% defect rate -> the loader -> the
quality gates. Every injected defect (per the generator's defects manifest) is quarantined with
its reason, or loaded and repaired downstream (duplicates: one row per message_id after
de-duplication); nothing else is quarantined; no blocking check fails on what was loaded.
The mart-level half ("none reaches the marts") is asserted where dbt runs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from contracts import tracking_plan
from demo.saas import generate
from expectations import QualityConfig, check_quarantine, validate_table
from orchestration.sources.load import RAW_TABLES, load_partitions

START = date(2025, 2, 3)
DAYS = 35
LATE_DAYS = 3
NOW = datetime.combine(START + timedelta(days=DAYS + 1), datetime.min.time())


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("defects")
    summary = generate(
        base / "landing",
        base / "truth",
        users=800,
        days=DAYS,
        seed=23,
        start=START,
        defect_rate=0.02,
        late_window_days=LATE_DAYS,
    )
    dates = [START + timedelta(days=i) for i in range(DAYS)]
    conn = duckdb.connect(str(base / "warehouse.duckdb"))
    reports = {
        t: load_partitions(conn, t, dates, base / "landing", "demo", LATE_DAYS, now=NOW)
        for t in RAW_TABLES
    }
    manifest = pd.read_parquet(base / "truth" / "defects.parquet")
    yield conn, dates, reports, manifest, summary
    conn.close()


def test_manifest_covers_the_defect_kinds(loaded):
    _, _, _, manifest, summary = loaded
    kinds = set(manifest["kind"])
    assert {
        "duplicate_same_day",
        "malformed_json",
        "null_user_and_anonymous_id",
        "unknown_event",
        "late_beyond_window",
        "negative_amount",
    } <= kinds
    assert len(manifest) == sum(summary.defects.values())


def test_quarantine_holds_exactly_the_defects_meant_for_it(loaded):
    conn, _, _, manifest, _ = loaded
    meant = manifest[manifest["expected"].str.startswith("quarantine:")].assign(
        reason=lambda f: f["expected"].str.removeprefix("quarantine:")
    )
    conn.register("meant", meant[["table", "file", "line", "reason", "kind"]])
    got = conn.execute("""
        select q.table_name, q.source_file, q.source_line, q.reason_code, m.reason, m.kind
        from raw.quarantine q full outer join meant m
          on m.table = q.table_name and m.file = q.source_file and m.line = q.source_line
    """).df()
    conn.unregister("meant")
    unexpected = got[got["reason"].isna()]  # quarantined but never injected
    missed = got[got["reason_code"].isna()]  # injected but not quarantined
    wrong = got[
        got["reason"].notna() & got["reason_code"].notna() & (got["reason"] != got["reason_code"])
    ]
    assert unexpected.empty, unexpected.head(10).to_string()
    assert missed.empty, missed.head(10).to_string()
    assert wrong.empty, wrong.head(10).to_string()
    assert len(got) == len(meant) > 0


def test_loaded_defects_are_in_raw(loaded):
    conn, _, _, manifest, _ = loaded
    keep = manifest[manifest["expected"].isin(["load", "dedupe"])]
    conn.register("keep", keep[["file", "line", "message_id"]])
    found = conn.execute("""select count(*) from keep k join raw.events e
        on e._source_file = k.file and e._source_line = k.line
        and e.message_id = k.message_id""").fetchall()[0][0]
    conn.unregister("keep")
    assert found == len(keep) > 0


def test_duplicates_are_counted_in_raw_and_dedupe_to_one(loaded):
    conn, dates, reports, manifest, _ = loaded
    dups = manifest[manifest["expected"] == "dedupe"]
    rows, distinct = conn.execute(
        "select count(*), count(distinct message_id) from raw.events"
    ).fetchall()[0]
    assert rows - distinct == len(dups)  # each injected duplicate is exactly one extra row
    conn.register("dups", dups[["message_id"]].drop_duplicates())
    per_id = conn.execute("""select e.message_id, count(*) as copies,
        count(distinct (e.type, e.event, e.user_id, e.anonymous_id, e.timestamp)) as versions
        from raw.events e join dups using (message_id) group by 1""").df()
    conn.unregister("dups")
    assert len(per_id) == dups["message_id"].nunique() and (per_id["copies"] >= 2).all()
    assert (per_id["versions"] == 1).all()  # copies are identical: keeping one loses nothing
    deduped = conn.execute(
        "select count(*) from (select distinct on (message_id) * from raw.events)"
    ).fetchall()[0][0]
    assert deduped == distinct
    # the loader reports the same duplicates the manifest injected on the same day
    same_day = (manifest["kind"] == "duplicate_same_day").sum()
    assert reports["events"].duplicate_keys == same_day


def test_quality_gates_on_the_loaded_data(loaded):
    conn, dates, reports, manifest, _ = loaded
    plan = tracking_plan.load()
    config = QualityConfig().accepting(event_names=plan.known_events, plans=plan.plans)
    for table in RAW_TABLES:
        rows_read = {p.partition_date: p.rows_read for p in reports[table].partitions}
        quarantine = check_quarantine(conn, table, dates, config, rows_read=rows_read)
        assert quarantine.passed, [o.message for o in quarantine.failing]
        summary = quarantine.outcomes[0].observed_value
        assert summary["rows_read"] == reports[table].rows_read
        result = validate_table(conn, table, dates, config, now=NOW)
        assert result.blocking_failures == [], [o.message for o in result.blocking_failures]
    # one frame for the whole range, so next-day re-sends are within-frame duplicates too
    events = validate_table(conn, "events", dates, replace(config, chunk_days=DAYS), now=NOW)
    dup = events.outcome("events.message_id.duplicates")
    n_dups = (manifest["expected"] == "dedupe").sum()
    assert (
        dup.unexpected_count
        >= 2 * manifest.loc[manifest["expected"] == "dedupe", "message_id"].nunique()
    )
    assert dup.unexpected_count <= 2 * n_dups
    # late events inside the window are loaded and pass; the window check holds on every row
    assert events.outcome("events.timestamp.within_late_window").passed
