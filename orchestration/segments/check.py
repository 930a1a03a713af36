"""`segflow segments check`: a segment file that parses is not yet a segment that works.

Beyond the rule compiler's checks (columns, types), every string literal a rule compares a
column with is checked against the values that column actually takes: the tracking plan
(plans), accepted values in the dbt YAML, score bands, and a scan of today's warehouse. A
typo (`ltv_band == 'hi'`, `plan == 'Trial'`) would validate and then empty the segment at the
next sync; here it fails with "did you mean 'high'?". SQL habits (`&&`, `=`, `AND`) get the
rule language's spelling instead of a bare "invalid syntax"."""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCAN_LIMIT = 200  # a column with more distinct values is free text: not checked by scan
HABITS = (
    (re.compile(r"&&"), "`&&` is written `and`"),
    (re.compile(r"\|\|"), "`||` is written `or`"),
    (re.compile(r"(?<![=!<>])=(?!=)"), "`=` compares as `==`"),
    (re.compile(r"<>"), "`<>` is written `!=`"),
    (re.compile(r"\bAND\b"), "`AND` is written `and`"),
    (re.compile(r"\bOR\b"), "`OR` is written `or`"),
    (re.compile(r"\bNOT\b"), "`NOT` is written `not`"),
    (re.compile(r"\bIS\s+NULL\b", re.I), "`IS NULL` is written `is None`"),
    (re.compile(r"!(?!=)"), "`!` is written `not`"),
)


@dataclass
class Finding:
    where: str  # e.g. "segments.yml: segment 'high_value'"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class KnownValues:
    """Per column, the values it takes and where each set of values comes from."""

    values: dict[str, set[str]] = field(default_factory=dict)
    sources: dict[str, set[str]] = field(default_factory=dict)

    def add(self, column: str, values: Iterable[Any], source: str) -> None:
        clean = {str(v) for v in values if v is not None}
        if clean:
            self.values.setdefault(column, set()).update(clean)
            self.sources.setdefault(column, set()).add(source)


def sql_habits(rule: str) -> list[str]:
    """Suggestions for SQL or C spellings in a rule (strings removed first)."""
    code = re.sub(r"'[^']*'|\"[^\"]*\"", "''", rule)
    return [hint for pattern, hint in HABITS if pattern.search(code)]


def literal_comparisons(rule: str) -> list[tuple[str, str]]:
    """(column, string literal) pairs a rule compares with ==, !=, in or not in."""
    try:
        tree = ast.parse(rule, mode="eval")
    except SyntaxError:
        return []
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for left, right in zip(operands, operands[1:], strict=False):
            for name, other in ((left, right), (right, left)):
                if isinstance(name, ast.Name):
                    pairs += [(name.id, text) for text in _strings(other)]
    return pairs


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [
            e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return []


def literal_findings(where: str, rule: str, known: KnownValues) -> list[Finding]:
    out = []
    for column, value in literal_comparisons(rule):
        values = known.values.get(column)
        if not values or value in values:
            continue
        by_case = {v.lower(): v for v in values}
        guess = by_case.get(value.lower()) or next(
            iter(difflib.get_close_matches(value, sorted(values), n=1, cutoff=0.4)), None
        )
        if guess is None:  # a short typo ("hi") is closest to its prefix-sharing value
            guess = next((v for v in sorted(values) if v.startswith(value[:1])), None)
        shown = ", ".join(repr(v) for v in sorted(values)[:12])
        hint = f" did you mean {guess!r}?" if guess else ""
        sources = ", ".join(sorted(known.sources.get(column, ())))
        out.append(
            Finding(
                where,
                f"{column} never takes {value!r} (it takes {shown}; from {sources});{hint}",
            )
        )
    return out


def rule_texts(segments_path: Path, flows_path: Path, triggers_path: Path) -> list[tuple[str, str]]:
    """(where, rule) for every rule in the three files, read as plain YAML (so a rule the
    compiler rejects still gets its hints)."""
    out = []
    for path, top, key in (
        (segments_path, "segments", "rule"),
        (triggers_path, "triggers", "rule"),
    ):
        if not Path(path).exists():
            continue
        data = yaml.safe_load(Path(path).read_text()) or {}
        items = data.get(top) or {}
        entries = items.items() if isinstance(items, dict) else enumerate(items)
        for name, spec in entries:
            if isinstance(spec, dict) and isinstance(spec.get(key), str):
                label = spec.get("name", name)
                out.append((f"{Path(path).name}: {top[:-1]} {label!r}", spec[key]))
    del flows_path  # flows hold no free rules (blocks name milestones, checked by the loader)
    return out


def known_values(columns: Mapping[str, str], conn: Any = None) -> KnownValues:
    """Values from the tracking plan, the dbt YAML's accepted values, score bands and (when a
    warehouse connection is given) a scan of today's features and scores."""
    from contracts import tracking_plan
    from orchestration.settings import DBT_PROJECT_DIR

    known = KnownValues()
    plan = tracking_plan.load()
    for column in columns:
        if column == "plan" or column.endswith("_plan"):
            known.add(column, plan.plans, "the tracking plan")
    for column, values in dbt_accepted_values(DBT_PROJECT_DIR / "models", plan).items():
        if column in columns:
            known.add(column, values, "dbt accepted_values")
    from ml.train import BAND_LABELS

    for column in columns:
        if column.endswith("_band"):
            known.add(column, BAND_LABELS, "score bands")
    if conn is not None:
        for column, values in warehouse_values(conn, columns).items():
            known.add(column, values, "today's warehouse")
    return known


def dbt_accepted_values(models_dir: Path, plan: Any) -> dict[str, set[str]]:
    """column -> accepted values declared in any model YAML (literal lists, or the tracking
    plan's lists referenced as `var('tracking_plan')['<name>']`)."""
    out: dict[str, set[str]] = {}
    for path in sorted(Path(models_dir).rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models") or []:
            for column in model.get("columns") or []:
                for test in column.get("data_tests") or column.get("tests") or []:
                    spec = test.get("accepted_values") if isinstance(test, dict) else None
                    if spec is None:
                        continue
                    values = (spec.get("arguments") or spec).get("values")
                    if isinstance(values, str):
                        match = re.search(r"tracking_plan'\]\['(\w+)'\]", values)
                        values = getattr(plan, match.group(1), None) if match else None
                    if isinstance(values, list | tuple):
                        out.setdefault(column["name"], set()).update(map(str, values))
    return out


def warehouse_values(conn: Any, columns: Mapping[str, str]) -> dict[str, set[str]]:
    """Distinct values of each string column on the latest snapshot (columns with more than
    SCAN_LIMIT values are free text and left out)."""
    from orchestration.segments.tables import input_relation

    try:
        relation, _ = input_relation(conn)
    except Exception:  # noqa: BLE001 - no feature table yet: nothing to scan
        return {}
    strings = [c for c, kind in columns.items() if kind == "string"]
    out = {}
    for column in strings:
        try:
            rows = conn.execute(
                f'select distinct "{column}" from {relation} where snapshot_date = '
                f"(select max(snapshot_date) from main.fct_user_features) limit {SCAN_LIMIT + 1}"
            ).fetchall()
        except Exception:  # noqa: BLE001 - a declared column the warehouse lacks
            continue
        if len(rows) <= SCAN_LIMIT:
            out[column] = {r[0] for r in rows if r[0] is not None}
    return out


def check_files(
    segments_path: Path,
    flows_path: Path,
    triggers_path: Path,
    conn: Any = None,
    declared: dict[str, str] | None = None,
) -> tuple[Any, list[Finding]]:
    """Load and compile the files (against the warehouse's columns when connected, else the
    `declared` ones: the contract's plus the deployment's custom attributes), then check
    literals and habits. Returns (config or None, findings); any finding fails the check."""
    from orchestration.segments.config import SegmentConfigError, load_config
    from orchestration.segments.schema import COLUMNS, kind_of, warehouse_columns

    columns = warehouse_columns(conn) if conn is not None else dict(declared or COLUMNS)
    findings: list[Finding] = []
    texts = rule_texts(segments_path, flows_path, triggers_path)
    config = None
    try:
        config = load_config(segments_path, flows_path, triggers_path, columns)
    except SegmentConfigError as exc:
        findings.append(Finding("invalid", str(exc)))
        for where, rule in texts:
            findings += [Finding(where, f"{rule!r}: {hint}") for hint in sql_habits(rule)]
        return None, findings
    kinds = {c: kind_of(t) for c, t in columns.items()}
    known = known_values(kinds, conn)
    for where, rule in texts:
        findings += literal_findings(where, rule, known)
    return config, findings
