"""`segflow segments diff`: what a changed segments.yml / flows.yml would do on today's
warehouse before it syncs. Both configurations are evaluated on the latest feature snapshot
exactly as the daily assignment does (rules, exclusions, priorities, flows); per segment it
gives the size before and after, who would enter and exit (counts and a sample), which overlaps
change, and the sync volume (people whose synced attributes change, entered/exited events).

The table goes to the terminal, the Markdown to a file a CI job can post on a pull request."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

SAMPLE = 5
SYNCED = ("segments", "primary_segment", "onboarding_flow", "experiment_variant", "next_block")


@dataclass
class SegmentChange:
    segment: str
    before: int
    after: int
    entered: int
    exited: int
    entered_sample: list[str] = field(default_factory=list)
    exited_sample: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.entered or self.exited)


@dataclass
class ConfigDiff:
    day: date
    users: int
    segments: list[SegmentChange]
    overlaps: list[tuple[str, str, int, int]]  # segment a, segment b, users before, after
    people_changed: int  # people whose synced attributes change (one identify each)
    events: int  # segment entered / exited events the sync would send

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.segments) or self.people_changed > 0

    def max_change_share(self) -> float:
        return self.people_changed / self.users if self.users else 0.0


def evaluate(conn: Any, config: Any, day: date | None = None) -> tuple[date, pd.DataFrame]:
    """One row per user on `day` (default: the latest snapshot) with the synced attributes."""
    from orchestration.segments.assign import _evaluate, _resolve
    from orchestration.segments.tables import input_relation

    relation, _ = input_relation(conn)
    if day is None:
        day = conn.execute(f"select max(snapshot_date) from {relation}").fetchone()[0]
        if day is None:
            raise ValueError("main.fct_user_features has no rows: run the pipeline first")
        day = pd.Timestamp(day).date()
    frame = _evaluate(conn, config, relation, [day])
    table = _resolve(config, frame).to_pandas()
    table["segments"] = table["segments"].map(lambda s: tuple(sorted(s)) if s is not None else ())
    return day, table.set_index("user_id")


def diff_configs(conn: Any, base: Any, changed: Any, day: date | None = None) -> ConfigDiff:
    day, before = evaluate(conn, base, day)
    _, after = evaluate(conn, changed, day)
    names = sorted(set(base.segment_names) | set(changed.segment_names))
    b_members, a_members = _members(before), _members(after)
    changes = []
    for name in names:
        old, new = b_members.get(name, set()), a_members.get(name, set())
        entered, exited = sorted(new - old), sorted(old - new)
        changes.append(
            SegmentChange(
                name,
                len(old),
                len(new),
                len(entered),
                len(exited),
                entered[:SAMPLE],
                exited[:SAMPLE],
            )
        )
    overlaps = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            was = len(b_members.get(a, set()) & b_members.get(b, set()))
            now = len(a_members.get(a, set()) & a_members.get(b, set()))
            if was != now:
                overlaps.append((a, b, was, now))
    columns = [c for c in SYNCED if c in before.columns and c in after.columns]
    joined = before[columns].join(after[columns], lsuffix="_b", rsuffix="_a", how="outer")
    moved = pd.Series(False, index=joined.index)
    for c in columns:
        moved |= joined[f"{c}_b"].astype(str) != joined[f"{c}_a"].astype(str)
    return ConfigDiff(
        day,
        len(joined),
        changes,
        overlaps,
        int(moved.sum()),
        sum(c.entered + c.exited for c in changes),
    )


def _members(table: pd.DataFrame) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for user, segments in table["segments"].items():
        for name in segments:
            out.setdefault(name, set()).add(str(user))
    return out


def render_table(diff: ConfigDiff) -> str:
    rows = [f"{'segment':<24} {'before':>7} {'after':>7} {'change':>7} {'enter':>6} {'exit':>6}"]
    for s in diff.segments:
        mark = "" if s.changed else "  (unchanged)"
        rows.append(
            f"{s.segment:<24} {s.before:>7,} {s.after:>7,} {s.after - s.before:>+7,} "
            f"{s.entered:>6,} {s.exited:>6,}{mark}"
        )
        if s.entered_sample:
            rows.append(f"{'':<4}enter e.g. {', '.join(s.entered_sample)}")
        if s.exited_sample:
            rows.append(f"{'':<4}exit e.g. {', '.join(s.exited_sample)}")
    for a, b, was, now in diff.overlaps:
        rows.append(f"overlap {a} & {b}: {was:,} -> {now:,}")
    rows.append(
        f"sync volume: {diff.people_changed:,} of {diff.users:,} people change "
        f"({diff.max_change_share():.1%}), {diff.events:,} entered/exited events (day {diff.day})"
    )
    return "\n".join(rows)


def render_markdown(diff: ConfigDiff, title: str = "Segment change preview") -> str:
    lines = [
        f"### {title}",
        "",
        f"Evaluated on the warehouse's latest snapshot ({diff.day}, {diff.users:,} people).",
        "",
        "| segment | before | after | change | enter | exit | sample entering | sample exiting |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for s in diff.segments:
        lines.append(
            f"| {s.segment} | {s.before:,} | {s.after:,} | {s.after - s.before:+,} | "
            f"{s.entered:,} | {s.exited:,} | {', '.join(s.entered_sample)} | "
            f"{', '.join(s.exited_sample)} |"
        )
    if diff.overlaps:
        lines += ["", "| overlap | before | after |", "|---|---:|---:|"]
        lines += [f"| {a} & {b} | {was:,} | {now:,} |" for a, b, was, now in diff.overlaps]
    lines += [
        "",
        f"**Sync volume:** {diff.people_changed:,} people would be updated "
        f"({diff.max_change_share():.1%} of {diff.users:,}), {diff.events:,} entered/exited events.",
    ]
    return "\n".join(lines) + "\n"


def files_at_ref(ref: str, paths: list[Path], repo: Path) -> list[Path]:
    """Copies of `paths` as they are at git `ref` (the base of a pull request), in a temp dir."""
    out_dir = Path(tempfile.mkdtemp(prefix="segflow-diff-"))
    out = []
    for path in paths:
        relative = path.resolve().relative_to(repo.resolve())
        shown = subprocess.run(
            ["git", "-C", str(repo), "show", f"{ref}:{relative.as_posix()}"],
            capture_output=True,
            text=True,
        )
        if shown.returncode != 0:
            first = (shown.stderr.strip().splitlines() or ["git show failed"])[0]
            raise ValueError(f"{relative.as_posix()} at git ref {ref!r}: {first}")
        target = out_dir / path.name
        target.write_text(shown.stdout)
        out.append(target)
    return out
