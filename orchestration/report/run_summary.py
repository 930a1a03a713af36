"""The end of a `segflow run`, in dbt's style: what passed, warned, failed or was skipped (steps
and checks, each warning with its one-line message), then what the run left for people to open
(report, outbox file) and act on (segment sizes, synced counts, missing models).

Plain Python: the launcher turns Dagster events into `StepOutcome` / `CheckOutcome` and reads
the warehouse through `warehouse_lines`; nothing here imports dagster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASS, WARN, ERROR, SKIP = "PASS", "WARN", "ERROR", "SKIP"
# Metadata keys that carry a check's message, most specific first (each check names its own).
MESSAGE_KEYS = ("message", "reason", "warnings", "drifting_features", "found")
SYNC_SUMMARY_KEY = "destination_summaries"  # destination_sync metadata: SyncReport.summary()s


@dataclass
class StepOutcome:
    step: str
    status: str  # PASS | SKIP | ERROR
    detail: str = ""  # why it was skipped / what made it fail


@dataclass
class CheckOutcome:
    asset: str
    check: str
    severity: str  # ERROR (blocking) | WARN
    passed: bool
    message: str = ""

    @property
    def status(self) -> str:
        if self.passed:
            return PASS
        return ERROR if self.severity == ERROR else WARN


def _plain(value: Any) -> Any:
    """Metadata values arrive wrapped (MetadataValue.md, .json ...); take the payload."""
    return getattr(value, "value", getattr(value, "data", value))


def check_message(metadata: dict[str, Any]) -> str:
    """One line that says what a check found, from whichever key the check uses for it."""
    detail = _plain(metadata.get("blocking_detail"))
    if isinstance(detail, list) and detail:
        first = detail[0]
        return _one_line(
            f"{first.get('rule')}: expected {first.get('expected')}; found {first.get('found')}"
        )
    failing = _plain(metadata.get("failing_expectations"))
    if isinstance(failing, str) and "|" in failing:
        rows = [r for r in failing.splitlines()[2:] if r.strip()]
        if rows and "all passed" not in rows[0]:
            cells = [c.strip() for c in rows[0].strip("|").split("|")]
            first = " ".join(cells[:1] + cells[-1:])
            return _one_line(f"{len(rows)} expectation(s) failed, first: {first}")
    for key in MESSAGE_KEYS:
        value = _plain(metadata.get(key))
        if isinstance(value, str) and value not in ("", "none", "n/a"):  # not counts
            text = _one_line(value.replace("- ", "", 1))
            if key == "drifting_features":
                psi = _plain(metadata.get("max_psi"))
                return f"drifting features: {text} (max PSI {psi})"
            return text
    return ""


def _one_line(text: str, width: int = 240) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def error_cause(error: Any) -> str:
    """The innermost cause of a step failure (the breaker's own message, not the executor's
    "Error occurred while executing op" wrapper). `error` is Dagster's SerializableErrorInfo."""
    innermost = error  # follow `raise ... from` (Dagster wraps the step's error as the cause);
    while getattr(innermost, "cause", None) is not None:  # not `context`: an error raised
        innermost = innermost.cause  # while handling another is the one that failed the step
    message = getattr(innermost, "message", "") or ""
    cls_name = getattr(innermost, "cls_name", "") or ""
    message = message.strip()
    if cls_name and message.startswith(cls_name + ":"):
        message = message[len(cls_name) + 1 :].strip()
    if "override_breaker" in message:
        message += " (from the terminal: segflow run --override-breaker)"
    return _one_line(message, 400)


def summary_lines(steps: list[StepOutcome], checks: list[CheckOutcome]) -> list[str]:
    """dbt's closing block: counts per status for steps and checks, then each non-passing one."""
    lines = []
    for label, items in (("steps", steps), ("checks", checks)):
        counts = {s: sum(1 for i in items if i.status == s) for s in (PASS, WARN, ERROR, SKIP)}
        counts_text = " ".join(f"{s}={n}" for s, n in counts.items())
        lines.append(f"{label:<7} {counts_text} TOTAL={len(items)}")
    for c in checks:
        if c.status in (WARN, ERROR):
            lines.append(f"  {c.status:<5} {c.asset} / {c.check}: {c.message or 'no message'}")
    for s in steps:
        if s.status in (SKIP, ERROR):
            lines.append(f"  {s.status:<5} {s.step}: {s.detail or '-'}")
    return lines


def warehouse_lines(
    conn: Any,
    outbox_dir: Path | None = None,
    sync_summaries: list[dict] | None = None,
    settings: Any = None,
) -> list[str]:
    """Segment sizes on the latest day, the sync (a line per destination of this run's
    `destination_sync` when given, else the latest sync in the warehouse) and a line per
    missing model (with the history its label horizon in `settings` needs; default: the
    environment's settings)."""
    tables = {
        f"{s}.{t}"
        for s, t in conn.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
    }
    lines = []
    if "main.user_segments" in tables:
        lines += _segment_lines(conn)
    if sync_summaries:
        lines += sync_lines(sync_summaries)
    elif "main.sync_runs" in tables:
        lines += _sync_lines(conn, outbox_dir)
    if "main.user_scores" in tables:
        lines += _model_lines(conn, settings or _settings())
    return lines


def _segment_lines(conn: Any) -> list[str]:
    rows = conn.execute(
        "select s.segment, count(*) from main.user_segments, unnest(segments) as s(segment) "
        "where segment_date = (select max(segment_date) from main.user_segments) "
        "group by all order by 2 desc, 1"
    ).fetchall()
    if not rows:
        return ["segments: no member on the latest day"]
    return ["segments (latest day): " + ", ".join(f"{name} {n:,}" for name, n in rows)]


def _sync_lines(conn: Any, outbox_dir: Path | None) -> list[str]:
    """The latest sync in the warehouse (when this run's sync step left no summaries)."""
    cursor = conn.execute(
        "select run_id, destination, as_of, status, people_succeeded, people_failed, "
        "events_succeeded, events_failed, items_failed_locally as failed_locally, message "
        "from main.sync_runs order by started_at desc limit 1"
    )
    row = cursor.fetchone()
    if row is None:
        return ["sync: no sync run yet"]
    summary = dict(zip([d[0] for d in cursor.description], row, strict=True))
    if summary["destination"] == "outbox" and outbox_dir is not None:
        files = sorted(Path(outbox_dir).glob(f"*{summary['run_id']}.jsonl"))
        summary["outbox_file"] = str(files[-1]) if files else None
    return sync_lines([summary])


def sync_lines(summaries: list[dict]) -> list[str]:
    """One line per destination: people and events synced / failed, unmatched, failed before
    sending, suppressed; why a destination sent nothing (refused, breaker, auth); the outbox
    file. `summaries` are `SyncReport.summary()` dicts (destination_sync metadata)."""
    lines = []
    for s in summaries:
        line = (
            f"sync to {s['destination']} as of {s.get('as_of')}: {s['status']}; "
            f"people synced {s['people_succeeded']:,} (failed {s['people_failed']:,}), "
            f"events synced {s['events_succeeded']:,} (failed {s['events_failed']:,})"
        )
        extras = [
            f"{s[key]:,} {label}"
            for key, label in (
                ("unmatched", "unmatched items (no person there)"),
                ("failed_locally", "items failed before sending"),
                ("suppressed", "people suppressed"),
                ("people_scores_only", "people with new scores only (not counted by the breaker)"),
            )
            if s.get(key)
        ]
        lines.append(line + ("; " + ", ".join(extras) if extras else ""))
        if s["status"] not in ("ok", "partial") and s.get("message"):
            lines.append(f"  why: {_one_line(str(s['message']), 400)}")
        if s["destination"] == "outbox" and "outbox_file" in s:
            outbox = s["outbox_file"]
            lines.append(f"outbox file: {outbox}" if outbox else "outbox file: none written")
    return lines


def _settings() -> Any:
    from orchestration.settings import Settings

    return Settings.from_env()


def _model_lines(conn: Any, settings: Any) -> list[str]:
    """A line per model kind whose scores are empty today (no champion yet), with the history
    it needs (its label window) against the days of features the warehouse holds."""
    from orchestration.report.model_facts import model_facts

    columns = {
        r[0]
        for r in conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'main' and table_name = 'user_scores'"
        ).fetchall()
    }
    facts = [f for f in model_facts(settings).values() if f.score_column in columns]
    if not facts:
        return []
    counts = conn.execute(
        "select count(*), "
        + ", ".join(f'count("{f.score_column}")' for f in facts)
        + " from main.user_scores where score_date = (select max(score_date) from main.user_scores)"
    ).fetchone()
    if counts[0] == 0:
        return []
    have = history_days(conn)
    return [
        f"no {f.kind} model yet: {f.score_column} and the segments built on it are empty; "
        f"{no_model_text(f, have)}"
        for f, n in zip(facts, counts[1:], strict=True)
        if not n
    ]


def history_days(conn: Any) -> int:
    """Days of feature snapshots in the warehouse (what a training set can draw on)."""
    try:
        return int(
            conn.execute(
                "select count(distinct snapshot_date) from main.fct_user_features"
            ).fetchone()[0]
        )
    except Exception:  # noqa: BLE001 - no feature table yet
        return 0


def no_model_text(fact: Any, have: int) -> str:
    """What the Models page and the run summary say when a kind has no model: the history the
    training-set rule needs (contracts.models.min_history_days) against the days loaded."""
    from contracts.models import MIN_TRAINING_SNAPSHOTS

    setting = f", {fact.horizon_setting}" if fact.horizon_setting else ""
    if have >= fact.min_history_days:  # history is not what is missing: the step says what is
        return (
            f"has the {fact.min_history_days} days of history it needs (have {have}); "
            f"the {fact.kind}_model step's skip reason says what is missing"
        )
    return (
        f"needs {fact.min_history_days} days of history (have {have}): "
        f"{MIN_TRAINING_SNAPSHOTS} weekly training snapshots, the newest with its "
        f"{fact.horizon_days}-day label window{setting} observed"
    )
