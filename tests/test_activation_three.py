"""SEGFLOW_DESTINATIONS=customerio,launchdarkly,intercom against the three fakes on 127.0.0.1:
a first run, a second run with changed segments and a third unchanged run, each checked
against what the inputs say every destination must hold (read back from the fakes)."""

from __future__ import annotations

import json
from datetime import date

import duckdb
import pytest
from support.sync_inputs import synthetic_inputs, write_inputs

from orchestration.activation.destinations import RetryPolicy
from orchestration.activation.fake_customerio import FakeConfig, FakeCustomerIO
from orchestration.activation.fake_intercom import FakeIntercom
from orchestration.activation.fake_launchdarkly import FakeLaunchDarkly
from orchestration.activation.run import sync_all
from orchestration.activation.sync import SyncOptions
from orchestration.settings import Settings

DAY1, DAY2, DAY3 = date(2025, 8, 4), date(2025, 8, 5), date(2025, 8, 6)
FAST = {"retry": RetryPolicy(max_retries=3, base_delay=0.001), "timeout": (2.0, 2.0)}
OPTIONS = SyncOptions(max_change_share=1.0)


def day_inputs(day: date, seed: int) -> dict:
    frames = synthetic_inputs(30, day, seed=seed)
    frames["user_triggers"]["context"] = json.dumps({"days_left": 3})
    return frames


def memberships(frames: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for row in frames["user_segments"].itertuples():
        for segment in row.segments:
            out.setdefault(segment, set()).add(row.user_id)
    return out


def expected_events(frames: dict) -> set[tuple[str, str, str]]:
    events = {
        (r.user_id, "segment_entered", r.segment) for r in frames["segment_membership"].itertuples()
    }
    events |= {(r.user_id, r.trigger, "") for r in frames["user_triggers"].itertuples()}
    return events


def read_back(cio: FakeCustomerIO, ld: FakeLaunchDarkly, ic: FakeIntercom) -> dict:
    cio_members: dict[str, set[str]] = {}
    for person, attrs in cio.people.items():
        for name in attrs:
            if name.startswith("segment_"):
                cio_members.setdefault(name[8:], set()).add(person)
    ic_members: dict[str, set[str]] = {}
    for person, contact in ic.by_external_id().items():
        for tag in contact["tags"]:
            ic_members.setdefault(tag[len("segflow-") :], set()).add(person)
    ld_members = {key[len("segflow-") :]: ld.members(key) for (_, key) in ld.segments}
    return {
        "customerio": cio_members,
        "intercom": ic_members,
        "launchdarkly": {k: v for k, v in ld_members.items() if v},
        "cio_events": {
            (e["person_id"], e["name"], e["data"].get("segment", "")) for e in cio.events.values()
        },
        "ic_events": {
            (e["user_id"], e["event_name"], e["metadata"].get("segment", "")) for e in ic.events
        },
    }


@pytest.fixture
def settings(monkeypatch, tmp_path) -> Settings:
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("SEGFLOW_DESTINATIONS", "customerio,launchdarkly,intercom")
    monkeypatch.setenv("SEGFLOW_INTERCOM_CREATE_CONTACTS", "1")
    monkeypatch.setenv("CUSTOMERIO_SITE_ID", "site")
    monkeypatch.setenv("CUSTOMERIO_API_KEY", "key")
    monkeypatch.setenv("LAUNCHDARKLY_ACCESS_TOKEN", "ld-token")
    monkeypatch.setenv("INTERCOM_ACCESS_TOKEN", "ic-token")
    return Settings.from_env()


def test_settings_destination_list_is_validated(monkeypatch):
    monkeypatch.setenv("SEGFLOW_DESTINATIONS", "customerio,mailchimp")
    with pytest.raises(ValueError, match="SEGFLOW_DESTINATIONS"):
        Settings.from_env()
    monkeypatch.delenv("SEGFLOW_DESTINATIONS")
    monkeypatch.setenv("SEGFLOW_DESTINATION", "csv")
    assert Settings.from_env().destinations == ("csv",)  # the default stays the single one


def test_three_destinations_three_runs(settings, tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    with (
        FakeCustomerIO(FakeConfig(site_id="site", api_key="key")) as cio,
        FakeLaunchDarkly(token="ld-token") as ld,
        FakeIntercom(token="ic-token") as ic,
    ):
        overrides = {
            "customerio": {"base_url": cio.url, "rate_limit": 0, **FAST},
            # segments=None: every synthetic segment (segments.yml opt-in: *_launchdarkly_optin)
            "launchdarkly": {"base_url": ld.url, "rate_limit": 0, "segments": None, **FAST},
            "intercom": {"base_url": ic.url, "rate_limit": 0, **FAST},
        }

        def run() -> list:
            reports, _ = sync_all(conn, settings, options=OPTIONS, overrides=overrides)
            assert [r.destination for r in reports] == ["customerio", "launchdarkly", "intercom"]
            assert all(r.status == "ok" for r in reports), [(r.status, r.message) for r in reports]
            return reports

        day1 = day_inputs(DAY1, seed=1)
        write_inputs(conn, **day1)
        run()
        got = read_back(cio, ld, ic)
        for name in ("customerio", "launchdarkly", "intercom"):
            assert got[name] == memberships(day1), name
        assert got["cio_events"] == got["ic_events"] == expected_events(day1)

        day2 = day_inputs(DAY2, seed=2)
        write_inputs(conn, **day2)
        patches_before = len(ld.patches)
        second = run()
        got = read_back(cio, ld, ic)
        for name in ("customerio", "launchdarkly", "intercom"):
            assert got[name] == memberships(day2), name
        assert (
            got["cio_events"] == got["ic_events"] == expected_events(day1) | expected_events(day2)
        )
        want_ops = {
            (seg, op, user)
            for seg in set(memberships(day1)) | set(memberships(day2))
            for op, users in (
                (
                    "addIncludedTargets",
                    memberships(day2).get(seg, set()) - memberships(day1).get(seg, set()),
                ),
                (
                    "removeIncludedTargets",
                    memberships(day1).get(seg, set()) - memberships(day2).get(seg, set()),
                ),
            )
            for user in users
        }
        ops = [
            (p["segment"][len("segflow-") :], i["kind"], v)
            for p in ld.patches[patches_before:]
            for i in p["instructions"]
            for v in i["values"]
        ]
        assert len(ops) == len(set(ops)) and set(ops) == want_ops
        assert second[0].people_sent == second[2].people_sent  # same people changed for both

        write_inputs(
            conn,
            **{
                **day2,
                "user_segments": day2["user_segments"].assign(segment_date=DAY3),
                "user_scores": day2["user_scores"].assign(score_date=DAY3),
                "segment_membership": None,
                "user_triggers": None,
            },
        )
        counts = (cio.request_count, ld.request_count, ic.request_count)
        third = run()
        assert [r.requests for r in third] == [0, 0, 0]
        assert (cio.request_count, ld.request_count, ic.request_count) == counts

        # a privacy request in the landing folder is applied by the next sync_all, everywhere
        gone = sorted(memberships(day2)["trial"])[0]
        settings.source_dir.mkdir(parents=True, exist_ok=True)
        (settings.source_dir / "privacy_requests.csv").write_text(
            f"user_id,action\n{gone},delete\n"
        )
        reports, audit = sync_all(conn, settings, options=OPTIONS, overrides=overrides)
        assert {r["target"] for r in audit if r["outcome"] == "removed"} >= {
            "destination:customerio",
            "destination:launchdarkly",
            "destination:intercom",
            "warehouse:main.user_segments",
        }
        assert gone not in cio.people and gone not in ic.by_external_id()
        assert all(
            gone not in members for members in read_back(cio, ld, ic)["launchdarkly"].values()
        )
        assert [r.people_sent for r in reports] == [0, 0, 0]  # nobody else changed, nothing re-sent
        again, audit_again = sync_all(conn, settings, options=OPTIONS, overrides=overrides)
        assert audit_again == [] and [r.requests for r in again] == [0, 0, 0]
    conn.close()
