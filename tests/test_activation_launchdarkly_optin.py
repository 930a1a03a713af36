"""Which segments go to LaunchDarkly is chosen per segment in segments.yml
(`launchdarkly: true`); the destination built from settings mirrors exactly those."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support.sync_inputs import write_inputs

from orchestration.activation.destinations import LaunchDarklyDestination, RetryPolicy
from orchestration.activation.fake_launchdarkly import FakeLaunchDarkly
from orchestration.activation.sync import SyncOptions, sync
from orchestration.segments.config import SegmentConfigError, load_config
from orchestration.settings import Settings

DAY = date(2025, 4, 1)
TOKEN = "api-ld-optin-1"
SHIPPED = Settings.from_env().segments_file


def segments_file(tmp_path: Path, opted: set[str], bad: str | None = None) -> Path:
    """The shipped segments.yml with `launchdarkly:` set on exactly `opted` (or one bad value)."""
    lines = []
    for line in SHIPPED.read_text().splitlines():
        if line.strip().startswith("launchdarkly:"):
            continue
        lines.append(line)
        if line.startswith("  - name: "):
            name = line.split(":", 1)[1].strip()
            if name == bad:
                lines.append("    launchdarkly: 'yes'")
            elif name in opted:
                lines.append("    launchdarkly: true")
    path = tmp_path / "segments.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def build(fake: FakeLaunchDarkly, path: Path) -> LaunchDarklyDestination:
    settings = dataclasses.replace(
        Settings.from_env(),
        segments_file=path,
        launchdarkly_base_url=fake.url,
        launchdarkly_rate_limit=0,
    )
    return LaunchDarklyDestination.from_settings(
        settings, access_token=TOKEN, retry=RetryPolicy(max_retries=2, base_delay=0.001)
    )


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    users = {"u1": ["power_users", "smb"], "u2": ["smb"], "u3": ["new_users", "smb"]}
    rows = [{"user_id": u, "segment_date": DAY, "segments": s} for u, s in users.items()]
    write_inputs(connection, user_segments=pd.DataFrame(rows))
    yield connection
    connection.close()


def test_shipped_file_opts_in_the_flag_segments():
    assert load_config(SHIPPED).launchdarkly_segments == ("churn_risks", "new_users", "power_users")


def test_bad_flag_names_file_and_segment(tmp_path):
    path = segments_file(tmp_path, set(), bad="smb")
    with pytest.raises(SegmentConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "segment 'smb'" in str(err.value)
    assert "launchdarkly must be true or false" in str(err.value)


def test_only_opted_in_segments_are_mirrored(conn, tmp_path):
    with FakeLaunchDarkly(token=TOKEN) as fake:
        destination = build(fake, segments_file(tmp_path, {"power_users"}))
        report = sync(conn, destination, options=SyncOptions(max_change_share=1.0))
        assert report.status == "ok"
        assert [key for (_, key) in fake.segments] == ["segflow-power_users"]
        assert fake.members("segflow-power_users") == {"u1"}


def test_no_opt_in_is_refused_naming_the_file(conn, tmp_path):
    path = segments_file(tmp_path, set())
    with FakeLaunchDarkly(token=TOKEN) as fake:
        report = sync(conn, build(fake, path), options=SyncOptions(max_change_share=1.0))
        assert report.status == "refused" and fake.request_count == 0
        assert str(path) in report.message and "launchdarkly: true" in report.message
