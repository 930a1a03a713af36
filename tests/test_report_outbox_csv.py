"""The outbox keeps the exact API bodies and, per sync, a people.csv and events.csv a
marketer can open: one row per person with full segments, flow, scores, bands and, in the band that
matters, the reasons in words with their direction; one row per event."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime

import duckdb
from support.sync_inputs import synthetic_inputs, write_inputs

from orchestration.activation.destinations.outbox import OutboxDestination, write_readable
from orchestration.activation.reason_text import plain_code, plain_reasons
from orchestration.activation.sync import sync

AS_OF = date(2026, 3, 10)


def _rows(path: str) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_people_and_events_csv_per_sync(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    inputs = synthetic_inputs(60, AS_OF, seed=3)
    write_inputs(conn, **inputs)
    outbox = OutboxDestination(tmp_path / "outbox")
    report = sync(conn, outbox, as_of=AS_OF, now=datetime(2026, 3, 11, 2))
    jsonl = report.destination_facts["outbox_file"]
    out = write_readable(conn, jsonl, AS_OF)

    with open(jsonl) as fh:  # the exact API bodies are still there
        bodies = [json.loads(line) for line in fh]
    people_sent = {
        i["identifiers"]["id"] for b in bodies for i in b["batch"] if i["action"] == "identify"
    }
    events_sent = [i for b in bodies for i in b["batch"] if i["action"] == "event"]

    people = _rows(out["people_csv"])
    assert out["people_csv"].endswith(".people.csv") and len(people) == len(people_sent) == 60
    first = next(r for r in people if r["person_id"] == "user_000000")
    seg = inputs["user_segments"].set_index("user_id").loc["user_000000"]
    score = inputs["user_scores"].set_index("user_id").loc["user_000000"]
    assert first["segments"] == ", ".join(sorted(seg["segments"]))
    assert first["onboarding_flow"] == seg["onboarding_flow"]
    assert first["churn_band"] == score["churn_band"]
    assert abs(float(first["churn_probability"]) - score["churn_probability"]) < 1e-3
    # reasons only in the band that matters (high), in words with their direction
    by_id = {r["person_id"]: r for r in people}
    scores = inputs["user_scores"].set_index("user_id")
    for kind, words in (("churn", "raises churn risk: low activity, no teammates, support tickets"),
                        ("ltv", "raises expected value: plan, seats")):  # fmt: skip
        high = scores[f"{kind}_band"] == "high"
        assert high.any() and (~high).any()
        for pid, is_high in high.items():
            assert by_id[pid][f"{kind}_reasons"] == (words if is_high else ""), (kind, pid)
    assert first["change"] == "updated" and "segments" in first["attributes_sent"]

    events = _rows(out["events_csv"])
    assert len(events) == len(events_sent) == out["event_rows"]
    if events:
        assert events[0]["timestamp_utc"].startswith("2026-")
        assert json.loads(events[0]["attributes"]) == events_sent[0]["attributes"]

    # next sync: only the changed person, and the cleared attributes are named
    frame = inputs["user_segments"].copy()
    first_user = frame["user_id"] == "user_000000"
    frame["segments"] = [
        ["win_back"] if f else s for f, s in zip(first_user, frame["segments"], strict=True)
    ]
    frame.loc[first_user, "primary_segment"] = "win_back"
    write_inputs(conn, user_segments=frame)
    second = sync(conn, OutboxDestination(tmp_path / "outbox"), as_of=AS_OF)
    assert second.people_changed == 1, (second.status, second.message)
    rows = _rows(write_readable(conn, second.destination_facts["outbox_file"], AS_OF)["people_csv"])
    assert [r["person_id"] for r in rows] == ["user_000000"]
    assert rows[0]["segments"] == "win_back" and rows[0]["primary_segment"] == "win_back"
    assert "(removed)" in rows[0]["attributes_sent"]
    conn.close()


def test_reasons_in_words_only_in_the_action_band():
    assert plain_reasons("churn", "inactive_14d,few_features_used", "high") == (
        "raises churn risk: inactive 14+ days, few features used"
    )
    assert plain_reasons("churn", "inactive_14d", "medium") == ""
    assert plain_reasons("churn", "", "high") == "" and plain_reasons("ltv", None, "high") == ""
    assert plain_code("activity_down_50pct") == "activity down by half or more"
    assert plain_code("sessions_7d_low") == "sessions 7d low"


def test_people_csv_says_which_rule_arm_put_a_person_in_each_segment(tmp_path):
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    inputs = synthetic_inputs(5, AS_OF, seed=3)
    write_inputs(conn, **inputs)
    conn.execute(
        "create table main.segment_reasons as select * from (values "
        "('user_000001', ?::date, 'churn_risks', 'churn_band == ''high'''), "
        "('user_000001', ?::date, 'new_users', 'days_since_signup < 7'), "
        "('user_000001', ?::date - 1, 'churn_risks', 'activity_trend <= -0.5')) "
        "as t(user_id, segment_date, segment, reason)",
        [AS_OF, AS_OF, AS_OF],
    )
    report = sync(conn, OutboxDestination(tmp_path / "outbox"), as_of=AS_OF)
    rows = {r["person_id"]: r for r in _rows(write_readable(conn, report.destination_facts["outbox_file"], AS_OF)["people_csv"])}  # fmt: skip
    assert rows["user_000001"]["segment_reasons"] == (
        "churn_risks: churn_band == 'high'; new_users: days_since_signup < 7"
    )
    assert rows["user_000002"]["segment_reasons"] == ""
    conn.close()


def _expected_cell(value) -> str:
    """people.csv's cell of one input value, written out independently of the code."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(sorted(value))
    return str(value)


def test_every_people_csv_cell_matches_its_input_row(tmp_path):
    """Row for row and cell for cell (people.csv is built column by column, so a shifted row,
    a mis-formatted number or a dropped column must show): floats to 4 significant digits,
    NaN and null empty, a person gone from user_segments cleared with empty state cells."""
    conn = duckdb.connect(str(tmp_path / "w.duckdb"))
    inputs = synthetic_inputs(40, AS_OF, seed=11)
    inputs["user_scores"].loc[3, "ltv_pred"] = float("nan")
    inputs["user_scores"].loc[4, "churn_probability"] = 1.23456789e-05
    write_inputs(conn, **inputs)
    sync(conn, OutboxDestination(tmp_path / "outbox"), as_of=AS_OF)
    inputs["user_segments"] = inputs["user_segments"].iloc[1:]  # user_000000 leaves
    inputs["user_segments"].loc[7, "segments"] = ["win_back", "a_first"]
    write_inputs(conn, **inputs)
    report = sync(conn, OutboxDestination(tmp_path / "outbox"), as_of=AS_OF)
    rows = _rows(write_readable(conn, report.destination_facts["outbox_file"], AS_OF)["people_csv"])
    assert [r["person_id"] for r in rows] == ["user_000000", "user_000007"]
    cleared, changed = rows
    assert cleared["change"] == "cleared" and "segments=(removed)" in cleared["attributes_sent"]
    assert all(cleared[c] == "" for c in list(cleared)[3:]), cleared

    conn2 = duckdb.connect(str(tmp_path / "w2.duckdb"))
    write_inputs(conn2, **synthetic_inputs(40, AS_OF, seed=11) | {
        "user_scores": inputs["user_scores"], "user_segments": inputs["user_segments"]})  # fmt: skip
    first = sync(conn2, OutboxDestination(tmp_path / "outbox2"), as_of=AS_OF)
    rows = _rows(write_readable(conn2, first.destination_facts["outbox_file"], AS_OF)["people_csv"])
    segments = inputs["user_segments"].set_index("user_id")
    scores = inputs["user_scores"].set_index("user_id")
    assert [r["person_id"] for r in rows] == sorted(segments.index)
    for row in rows:
        seg, score = segments.loc[row["person_id"]], scores.loc[row["person_id"]]
        expected = {c: _expected_cell(seg[c]) for c in seg.index if c in row}
        expected |= {c: _expected_cell(score[c]) for c in score.index if c in row}
        for kind in ("churn", "ltv"):
            expected[f"{kind}_reasons"] = plain_reasons(
                kind, score[f"{kind}_reasons"], score[f"{kind}_band"]
            )
        assert {c: row[c] for c in expected} == expected, row["person_id"]
        assert row["change"] == "updated" and row["segment_reasons"] == ""
    assert {r["churn_probability"] for r in rows} >= {"1.235e-05"}
    assert "" in {r["ltv_pred"] for r in rows}
    conn.close()
    conn2.close()
