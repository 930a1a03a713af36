"""The `segflow segments check|diff` commands: arguments, output and exit codes (the logic is
in check.py and diff.py). Exit codes: 0 ok, 1 the files are invalid or a literal is a typo,
3 the diff passes --max-change-share (a gate for CI)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXIT_INVALID = 1
EXIT_OVER_GATE = 3


def add_arguments(sub: Any, check_func: Any, diff_func: Any) -> None:
    segments = sub.add_parser("segments", help="check and preview segment changes before they sync")
    commands = segments.add_subparsers(dest="segments_command", required=True)
    check = commands.add_parser(
        "check", help="validate segments/flows/triggers, literals against real values"
    )
    _files(check)
    check.set_defaults(func=check_func)
    diff = commands.add_parser(
        "diff", help="what a changed segments.yml / flows.yml would do on today's warehouse"
    )
    _files(diff)
    diff.add_argument(
        "--against",
        metavar="REF",
        help="git ref whose segment files are the base (default: the configured files)",
    )
    diff.add_argument(
        "--markdown", help="write the summary here (default: $SEGFLOW_HOME/segments_diff.md)"
    )
    diff.add_argument(
        "--max-change-share",
        type=float,
        help="exit 3 when more than this share of people would change (a CI gate)",
    )
    diff.set_defaults(func=diff_func)


def _files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segments", help="segments.yml (default: $SEGFLOW_SEGMENTS_FILE)")
    parser.add_argument("--flows", help="flows.yml (default: $SEGFLOW_FLOWS_FILE)")
    parser.add_argument("--triggers", help="triggers.yml (default: $SEGFLOW_TRIGGERS_FILE)")


def _paths(args: argparse.Namespace, settings: Any) -> tuple[Path, Path, Path]:
    return (
        Path(args.segments) if args.segments else settings.segments_file,
        Path(args.flows) if args.flows else settings.flows_file,
        Path(args.triggers) if args.triggers else settings.triggers_file,
    )


def check(args: argparse.Namespace, settings: Any) -> int:
    from orchestration import warehouse
    from orchestration.segments.check import check_files
    from orchestration.segments.schema import declared_schema

    paths = _paths(args, settings)
    if settings.duckdb_path.exists():
        with warehouse.connect(settings.duckdb_path, read_only=True) as conn:
            config, findings = check_files(*paths, conn=conn)
        against = f"the warehouse {settings.duckdb_path}"
    else:
        config, findings = check_files(*paths, declared=declared_schema(settings))
        against = "the declared columns (no warehouse yet: values not scanned)"
    for finding in findings:
        print(f"error: {finding}")
    if findings:
        print(f"segments check failed: {len(findings)} problem(s), checked against {against}")
        return EXIT_INVALID
    print(
        f"ok: {len(config.segments)} segments, {len(config.flows)} flows, "
        f"{len(config.triggers)} triggers; rules and values checked against {against}"
    )
    return 0


def diff(args: argparse.Namespace, settings: Any) -> int:
    from orchestration import warehouse
    from orchestration.segments.check import check_files
    from orchestration.segments.diff import (
        diff_configs,
        files_at_ref,
        render_markdown,
        render_table,
    )
    from orchestration.settings import PROJECT_ROOT

    current = (settings.segments_file, settings.flows_file, settings.triggers_file)
    if args.against:
        base_paths, changed_paths = (
            files_at_ref(args.against, list(current), PROJECT_ROOT),
            _paths(args, settings),
        )
    else:
        base_paths, changed_paths = list(current), _paths(args, settings)
    if not settings.duckdb_path.exists():
        raise ValueError(f"no warehouse at {settings.duckdb_path}: run `segflow run` first")
    with warehouse.connect(settings.duckdb_path, read_only=True) as conn:
        base, base_findings = check_files(*base_paths, conn=conn)
        changed, findings = check_files(*changed_paths, conn=conn)
        for finding in findings:
            print(f"error: {finding}")
        if changed is None or findings:
            print("segments diff: the changed files do not pass `segflow segments check`")
            return EXIT_INVALID
        if base is None:
            raise ValueError(f"the base files do not load: {base_findings[0]}")
        result = diff_configs(conn, base, changed)
    print(render_table(result))
    out = Path(args.markdown) if args.markdown else settings.home / "segments_diff.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_markdown(result))
    print(f"markdown: {out}")
    if args.max_change_share is not None and result.max_change_share() > args.max_change_share:
        print(
            f"gate: {result.max_change_share():.1%} of people change, above "
            f"--max-change-share {args.max_change_share:.1%}"
        )
        return EXIT_OVER_GATE
    return 0
