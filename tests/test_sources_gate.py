"""The load gate has one verdict (issue 21): rows quarantined before their date was known count
against the run that read their file, and `segflow sources check` (the dry run) agrees with the
real Dagster run on every fixture: same verdict, same counts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from orchestration.sources.check import check_sources, render

pytestmark = pytest.mark.slow

VENDORS = Path(__file__).parent / "fixtures" / "vendors"
RANGE = {
    "dagster/asset_partition_range_start": "2025-03-03",
    "dagster/asset_partition_range_end": "2025-03-04",
}
HEADER = "user_id,email,signup_at,plan,country,updated_at\n"


def _contacts_latin1(landing: Path, rows: int = 200, bad_every: int = 10) -> None:
    """An undated CRM export (no dt= folder) where every 10th row holds Latin-1 bytes."""
    lines = [HEADER.encode()]
    for i in range(rows):
        name = "Jos\xe9".encode("latin-1") if i % bad_every == 0 else b"Jose"
        lines.append(
            b"u%d,%s%d@example.com,2025-03-01T00:00:00Z,free,PT,2025-03-03T10:00:00Z\n"
            % (i, name, i)
        )
    path = landing / "crm_contacts" / "contacts.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(lines))


def _unknown_events(landing: Path) -> None:
    """A day where half the track events are not in the tracking plan."""
    path = landing / "events" / "dt=2025-03-03" / "e.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(
        "".join(
            json.dumps(
                {
                    "messageId": f"m{i}",
                    "type": "track",
                    "event": "[Amplitude] Page Viewed" if i % 2 else "Signed In",
                    "userId": "u1",
                    "timestamp": "2025-03-03T10:00:00Z",
                }
            )
            + "\n"
            for i in range(40)
        )
    )


def _run(tmp_path: Path, landing: Path, monkeypatch) -> dg.ExecuteInProcessResult:
    from orchestration.defs.ingest import raw_assets
    from orchestration.defs.resources import SegflowSettingsResource, WarehouseResource

    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEGFLOW_SOURCE", "files")
    monkeypatch.setenv("SEGFLOW_LANDING_DIR", str(landing))
    monkeypatch.delenv("SEGFLOW_SOURCES_FILE", raising=False)
    return dg.materialize(
        raw_assets,
        resources={
            "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "w.duckdb")),
            "segflow": SegflowSettingsResource(),
        },
        tags=RANGE,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def _run_counts(result: dg.ExecuteInProcessResult) -> dict[str, tuple[int, int, int]]:
    counts = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta = {k: v.value for k, v in mat.metadata.items()}
        counts[mat.asset_key.path[-1]] = (
            meta["rows_read"],
            meta["rows_loaded"],
            meta["rows_quarantined"],
        )
    return counts


def _gates(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.asset_key.path[-1]: e.passed
        for e in result.get_asset_check_evaluations()
        if e.check_name == "quarantine_gate"
    }


FIXTURES = [p.name for p in sorted(VENDORS.iterdir()) if (p / "landing").is_dir()] + [
    "latin1_contacts",
    "unknown_events",
]


def _landing(tmp_path: Path, name: str) -> Path:
    landing = tmp_path / "landing"
    if name == "latin1_contacts":
        _contacts_latin1(landing)
    elif name == "unknown_events":
        _unknown_events(landing)
    else:
        shutil.copytree(VENDORS / name / "landing", landing)
    return landing


@pytest.mark.parametrize("name", FIXTURES)
def test_dry_run_and_run_agree(tmp_path: Path, monkeypatch, name: str) -> None:
    landing = _landing(tmp_path, name)
    result = _run(tmp_path, landing, monkeypatch)
    dry = check_sources(landing)
    run_counts = {t: c for t, c in _run_counts(result).items() if c[0]}
    dry_counts = {
        t: (r.rows_read, r.rows_loaded, r.rows_quarantined)
        for t, r in dry.reports.items()
        if r.rows_read
    }
    assert dry_counts == run_counts and run_counts
    gates = _gates(result)
    assert dry.ok == all(gates.values()), (render(dry), gates)
    for table, passed in gates.items():
        assert dry.verdicts[table].passed == passed, (table, render(dry))
    expect_ok = name not in ("latin1_contacts", "unknown_events")
    assert dry.ok is expect_ok


def test_partitionless_quarantine_fails_the_gate_naming_file_and_reason(
    tmp_path: Path, monkeypatch
) -> None:
    landing = _landing(tmp_path, "latin1_contacts")
    result = _run(tmp_path, landing, monkeypatch)
    gate = next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "quarantine_gate" and e.asset_key.path[-1] == "crm_contacts"
    )
    assert not gate.passed and not result.success
    message = str(gate.metadata["message"].value)
    assert "20 of 200 rows read (10.0%" in message
    assert "crm_contacts/contacts.csv: bad_encoding=20" in message
    dry = check_sources(landing)
    assert not dry.ok
    text = render(dry)
    assert "BLOCKED" in text and "crm_contacts/contacts.csv: bad_encoding=20" in text
    assert "bad_encoding: set `encoding:`" in text


def test_dry_run_names_unknown_events_with_a_fix(tmp_path: Path) -> None:
    landing = _landing(tmp_path, "unknown_events")
    text = render(check_sources(landing))
    assert "1 event name(s) not in the tracking plan: '[Amplitude] Page Viewed' (20 rows)" in text
    assert "BLOCKED" in text and "quarantined share above" in text


def test_dry_run_reports_bad_custom_attribute_values_as_the_run_does(
    tmp_path: Path, monkeypatch
) -> None:
    """Declared attributes whose values do not parse: the run records them in raw.quarantine
    (`bad_attribute_value`) under a WARN check; the dry run says the same, with the same
    counts, and (like the run) does not block on them."""
    landing = tmp_path / "landing"
    (landing / "crm_contacts" / "dt=2025-03-03").mkdir(parents=True)
    (landing / "sources.yml").write_text(
        "attributes:\n  - {name: date_of_birth, type: date}\n  - {name: employees, type: number}\n"
        "sources:\n  crm_contacts: {files: ['crm_contacts/**']}\n"
    )
    rows = [
        ("u1", '{"date_of_birth": "1990-02-03", "employees": "12"}'),
        ("u2", '{"date_of_birth": "31/02/1990", "employees": "12,5x"}'),
        ("u3", '{"date_of_birth": "1985-07-01"}'),
    ]
    (landing / "crm_contacts" / "dt=2025-03-03" / "c.jsonl").write_text(
        "".join(
            json.dumps(
                {"user_id": u, "updated_at": "2025-03-03T10:00:00Z", "attributes": json.loads(a)}
            )
            + "\n"
            for u, a in rows
        )
    )
    result = _run(tmp_path, landing, monkeypatch)
    check = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "custom_attribute_values"
    )
    dry = check_sources(landing)
    assert not check.passed and check.metadata["bad_attribute_values"].value == 2
    assert dry.attribute_values is not None and dry.attribute_values.bad_values == 2
    assert dry.attribute_values.message() == check.metadata["message"].value
    text = render(dry)
    assert "custom attributes: WARN" in text and "date_of_birth: 1 bad of 3" in text
    assert text.count("bad_attribute_value: contact u2:") == 2
    assert dry.ok and all(_gates(result).values())
