"""Partitions start where the data starts: SEGFLOW_PARTITIONS_START when set, else the first
day of the source's landing folder, else the default demo window's start."""

from __future__ import annotations

from datetime import date, timedelta

from orchestration.settings import DEMO_WINDOW_DAYS, Settings


def test_partitions_start_follows_the_data(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("SEGFLOW_PARTITIONS_START", raising=False)
    monkeypatch.delenv("SEGFLOW_DEMO_DIR", raising=False)
    monkeypatch.setenv("SEGFLOW_SOURCE", "demo")
    assert Settings.from_env().partitions_start == date.today() - timedelta(days=DEMO_WINDOW_DAYS)
    for table, day in (("events", "2026-05-03"), ("crm_contacts", "2026-05-01"), ("events", "x")):
        (tmp_path / "demo" / "landing" / table / f"dt={day}").mkdir(parents=True)
    assert Settings.from_env().partitions_start == date(2026, 5, 1)
    monkeypatch.setenv("SEGFLOW_SOURCE", "files")
    monkeypatch.setenv("SEGFLOW_LANDING_DIR", str(tmp_path / "landing"))
    (tmp_path / "landing" / "events" / "dt=2026-02-10").mkdir(parents=True)
    assert Settings.from_env().partitions_start == date(2026, 2, 10)
    monkeypatch.setenv("SEGFLOW_PARTITIONS_START", "2026-01-01")
    assert Settings.from_env().partitions_start == date(2026, 1, 1)
