"""The consumer's state file across an upgrade: lines a crash left in the old per-event
`drain` table are written to the landing files by the new code, none lost or doubled."""

from __future__ import annotations

import sqlite3

from orchestration.realtime import outputs, state


def test_unwritten_lines_of_an_old_state_file_survive_the_upgrade(tmp_path):
    path = tmp_path / "state.sqlite"
    with sqlite3.connect(path) as old:
        old.execute(
            "create table drain (stream_id text primary key, dt text, line text, batch text, "
            "flushed integer default 0)"
        )
        old.executemany(
            "insert into drain values (?, ?, ?, ?, ?)",
            [
                ("1-0", "2026-12-04", None, "1-0", 1),  # written before the upgrade
                ("2-1", "2026-12-05", '{"n":3}', "2-0", 0),
                ("2-0", "2026-12-05", '{"n":2}', "2-0", 0),
                ("2-2", "2026-12-04", '{"n":1}', "2-0", 0),
            ],
        )
    db = state.connect(path)
    assert db.execute("select name from sqlite_master where name = 'drain'").fetchone() is None
    for (batch,) in db.execute("select distinct batch from pending_file").fetchall():
        outputs.flush_landing(db, tmp_path / "landing", batch)
    events = tmp_path / "landing" / "events"
    assert (events / "dt=2026-12-05" / "rt-2-0.jsonl").read_text() == '{"n":2}\n{"n":3}\n'
    assert (events / "dt=2026-12-04" / "rt-2-0.jsonl").read_text() == '{"n":1}\n'
    assert not (events / "dt=2026-12-04" / "rt-1-0.jsonl").exists()
    assert db.execute("select count(*) from pending_file").fetchone() == (0,)
    state.connect(path).close()  # connecting again is a no-op
