"""How a GX validation result becomes a `CheckOutcome` a person can read without opening GX:
which partitions, which column, what was expected and what was found (with located samples),
and how the outcomes of a long backfill's chunks merge into one per check."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from expectations.config import QualityConfig
from expectations.outcome import CheckOutcome, json_safe
from expectations.rules import Rule
from expectations.tables import TableSpec


def merge_chunk_outcomes(
    per_chunk: list[list[CheckOutcome]],
    spec: TableSpec,
    dates: list[date],
    config: QualityConfig,
) -> list[CheckOutcome]:
    """One outcome per check over all chunks: counts add up, a check fails if any chunk
    fails, samples and messages come from the failing chunks."""
    if len(per_chunk) == 1:
        return per_chunk[0]
    by_check: dict[str, list[CheckOutcome]] = {}
    for chunk in per_chunk:
        for outcome in chunk:
            by_check.setdefault(outcome.check, []).append(outcome)
    merged = []
    for parts in by_check.values():
        first = parts[0]
        failed = [p for p in parts if not p.passed]
        counts = [p.unexpected_count for p in parts if p.unexpected_count is not None]
        elements = sum(p.element_count or 0 for p in parts)
        unexpected = sum(counts) if counts else None
        percent = (
            (100.0 * unexpected / elements)
            if unexpected is not None and elements
            else (0.0 if unexpected == 0 else None)
        )
        shown = failed or parts
        sample = [s for p in shown for s in p.sample_unexpected][: config.sample_size]
        if failed:
            more = f" (+{len(failed) - 3} more failing chunks)" if len(failed) > 3 else ""
            message = " | ".join(p.message for p in failed[:3]) + more
        else:
            subject = f"column '{first.column}'" if first.column else "table"
            message = f"ok {_where(spec, dates)} {subject}: {first.expected}"
        merged.append(
            replace(
                first,
                passed=not failed,
                message=message,
                unexpected_count=unexpected,
                unexpected_percent=percent,
                element_count=elements or None,
                sample_unexpected=sample,
                observed_value=(failed[0] if failed else first).observed_value,
                partitions=[d.isoformat() for d in dates],
            )
        )
    return merged


def _exception_text(info: Any) -> str | None:
    if not info:
        return None
    entries = info.values() if "raised_exception" not in info else [info]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def rule_outcome(rule: Rule, result: Any, spec: TableSpec, dates: list[date]) -> CheckOutcome:
    where = _where(spec, dates)
    base = dict(
        check=rule.name,
        table=spec.name,
        column=rule.column,
        expectation=rule.expectation.expectation_type,
        severity=rule.severity,
        expected=rule.expected,
        partitions=[d.isoformat() for d in dates],
    )
    if result is None:
        return CheckOutcome(
            **base, passed=False, message=f"{where}: check {rule.name} produced no GX result"
        )
    error = _exception_text(result.exception_info)
    if error:
        return CheckOutcome(
            **base,
            passed=False,
            message=f"{where} {_col(rule)}: GX could not evaluate '{rule.expected}': {error}",
        )
    details = result.result or {}
    located = bool(details.get("unexpected_index_column_names"))
    samples = (
        details.get("partial_unexpected_index_list")
        if located
        else details.get("partial_unexpected_list")
    ) or []
    sample = json_safe(list(samples))
    observed = json_safe(details.get("observed_value"))
    count = details.get("unexpected_count")
    percent = details.get("unexpected_percent")
    passed = bool(result.success)
    message = _message(rule, where, passed, count, percent, sample, observed, details)
    return CheckOutcome(
        **base,
        passed=passed,
        message=message,
        unexpected_count=int(count) if count is not None else None,
        element_count=int(details["element_count"]) if "element_count" in details else None,
        unexpected_percent=json_safe(float(percent)) if percent is not None else None,
        sample_unexpected=sample,
        observed_value=observed,
    )


def _where(spec: TableSpec, dates: list[date]) -> str:
    shown = ", ".join(d.isoformat() for d in dates[:3])
    if len(dates) > 3:
        shown += f", ... ({len(dates)} partitions)"
    return f"{spec.name} [{shown}]"


def _col(rule: Rule) -> str:
    return f"column '{rule.column}'" if rule.column else "table"


def _message(
    rule: Rule,
    where: str,
    passed: bool,
    count: Any,
    percent: Any,
    sample: list[Any],
    observed: Any,
    details: dict[str, Any],
) -> str:
    status = "ok" if passed else "FAILED" if rule.severity == "error" else "WARNING"
    if rule.frame == "schema" and rule.column is None:
        missing = (details.get("details") or {}).get("mismatched", {}).get("missing") or []
        found = ", ".join(observed or [])
        if missing:
            return (
                f"{status} {where}: missing column(s) {', '.join(missing)}; expected "
                f"{rule.expected}; found {found}"
            )
        return f"{status} {where}: all contract columns present"
    if rule.frame == "schema":
        found = (
            sample[0].get(rule.column)
            if sample and isinstance(sample[0], dict)
            else (sample[0] if sample else None)
        )
        return f"{status} {where} {_col(rule)}: expected {rule.expected}" + (
            "" if passed else f", found {found}"
        )
    if count is None:  # aggregate expectation (mean, ...)
        return f"{status} {where} {_col(rule)}: expected {rule.expected}; observed {observed}"
    if not count:
        return f"{status} {where} {_col(rule)}: {rule.expected}"
    shown = "; ".join(_describe(s) for s in sample[:3])
    return (
        f"{status} {where} {_col(rule)}: {count} row(s) ({float(percent or 0):.2f}%) "
        f"break '{rule.expected}', e.g. {shown}"
    )


def _describe(sample: Any) -> str:
    if not isinstance(sample, dict):
        return repr(sample)
    loc = sample.get("_source_file")
    line = sample.get("_source_line")
    values = {
        k: v
        for k, v in sample.items()
        if k not in ("_source_file", "_source_line", "_partition_date")
    }
    where = f" at {loc}:{line}" if loc else ""
    part = sample.get("_partition_date")
    return f"{values}{where}" + (f" (partition {str(part)[:10]})" if part else "")
