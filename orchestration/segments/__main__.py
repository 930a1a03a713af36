"""`python -m orchestration.segments [--segments F] [--flows F] [--triggers F] [--duckdb PATH]`:
validate the segment files (against the warehouse's columns when --duckdb is given) and print
a summary; exit status 1 with the error message when they are invalid."""

from __future__ import annotations

import argparse
import sys

from orchestration.segments.config import (
    DEFAULT_FLOWS_PATH,
    DEFAULT_SEGMENTS_PATH,
    DEFAULT_TRIGGERS_PATH,
    SegmentConfigError,
    load_config,
)
from orchestration.segments.schema import warehouse_columns
from orchestration.warehouse import connect


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.segments", description=__doc__)
    parser.add_argument("--segments", default=DEFAULT_SEGMENTS_PATH)
    parser.add_argument("--flows", default=DEFAULT_FLOWS_PATH)
    parser.add_argument("--triggers", default=DEFAULT_TRIGGERS_PATH)
    parser.add_argument("--duckdb", help="check column names/types against this warehouse")
    args = parser.parse_args(argv)
    try:
        columns = None
        if args.duckdb:
            with connect(args.duckdb, read_only=True) as conn:
                columns = warehouse_columns(conn)
        config = load_config(args.segments, args.flows, args.triggers, columns)
    except SegmentConfigError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    print(
        f"ok: {len(config.segments)} segments, {len(config.flows)} flows "
        f"({len(config.experiments)} with experiments), {len(config.triggers)} triggers"
    )
    for segment in sorted(config.segments, key=lambda s: (-s.priority, s.order)):
        group = f" [group {segment.group}]" if segment.group else ""
        print(f"  {segment.priority:>4}  {segment.name}{group}: {segment.rule.text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
