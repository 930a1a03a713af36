"""A dated load discovers only what concerns its days: the same files and skipped files as a
full walk filtered to those days (files in other days' dt= folders are left out early)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from orchestration.sources.discover import discover, list_files


def _landing(root: Path) -> Path:
    for rel in (
        "events/dt=2026-12-01/a.jsonl",
        "events/dt=2026-12-01/_SUCCESS",  # hidden: reported without a day, on every load
        "events/dt=2026-12-01/notes.txt",  # unsupported: skipped with its folder's day
        "events/dt=2026-12-02/b.jsonl",
        "events/dt=2026-12-02/README.md",  # ignored by default: reported without a day
        "events/dt=2026-13-01/c.jsonl",  # invalid dt= folder: skipped without a day
        "events/undated.jsonl",
        "other/dt=2026-12-01/x.jsonl",  # claimed by no source
        "crm_contacts/dt=2026-12-01/c.csv",
    ):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"message_id": "m"}\n')
    return root


def _key(files, skipped):
    return (
        [(f.relative, f.partition_date, f.source) for f in files],
        sorted((s.relative, s.reason, s.table, s.partition_date, s.ignored) for s in skipped),
    )


def test_dated_discovery_equals_the_filtered_full_walk(tmp_path: Path) -> None:
    root = _landing(tmp_path)
    everything = discover(root)
    for table in ("events", "crm_contacts"):
        for days in ([date(2026, 12, 2)], [date(2026, 12, 1)], [date(2026, 12, 3)]):
            files, skipped = list_files(root, table, days)
            wanted = set(days)

            def relevant(day, wanted=wanted) -> bool:
                return day is None or day in wanted

            expected_files = [
                f
                for f in everything[0]
                if (f.source == table or f.relative.startswith(table + "/"))
                and relevant(f.partition_date)
            ]
            expected_skipped = [
                s for s in everything[1] if s.table in (None, table) and relevant(s.partition_date)
            ]
            assert _key(files, skipped) == _key(expected_files, expected_skipped), (table, days)
    files, skipped = list_files(root, "events", [date(2026, 12, 2)])
    assert sorted(f.relative for f in files) == [
        "events/dt=2026-12-02/b.jsonl",
        "events/undated.jsonl",
    ]
    reported = {s.relative for s in skipped}
    assert "events/dt=2026-12-01/_SUCCESS" in reported
    assert "events/dt=2026-13-01/c.jsonl" in reported
    assert "events/dt=2026-12-01/notes.txt" not in reported
