"""Before/after comparison: run the same small demo on two commits and compare what they
produce (every table of the warehouse's `main` schema: marts, scores, segments; and the outbox
payloads), so a refactor shows that it changed nothing, or exactly what it changed.

Each commit is exported with `git archive` into a temporary directory (no worktree, no
checkout) and run there with this checkout's virtualenv: `segflow run` with a fixed `--end`,
seed and size, `SEGFLOW_HOME` in the temp directory. Floats are compared after rounding to
`--decimals` places; columns that record when something ran (`--ignore`) are left out.

    .venv/bin/python bench/compare_outputs.py BASE [HEAD] --users 200 --days 45
    (HEAD defaults to the working tree: uncommitted changes included)

Exit status 0 when identical, 1 when anything differs (the differences are printed), 2 when a
run fails. Results: bench/results/compare_outputs-<base>-<head>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

import duckdb
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Columns and payload keys that record when (or in which run) something happened.
DEFAULT_IGNORE = (
    "_loaded_at",
    "loaded_at",
    "run_id",
    "synced_at",
    "sent_at",
    "scored_at",
    "trained_at",
    "started_at",
    "finished_at",
    "created_at",
    "updated_at_run",
    "validated_at",
    "acked_at",
    "recorded_at",  # realtime_runs: when the consumer's run row was written
    "duration_s",
    "segflow_synced_at",
    "requests_per_s",
)
# Payload epoch seconds this close to the wall clock are the sync's own time (the demo's data
# ends in the past), e.g. the `timestamp` of an identify call: compared as "<run time>".
RUN_TIME_WINDOW_S = 2 * 86400
WORKTREE = "WORKTREE"


def export(ref: str, dest: Path) -> Path:
    """The tree of `ref` (or the working tree, tracked files with their current content)."""
    dest.mkdir(parents=True)
    if ref == WORKTREE:
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            check=True,
            capture_output=True,
        ).stdout.split(b"\0")
        with tarfile.open(dest / "tree.tar", "w") as tar:
            for name in filter(None, files):
                path = REPO / name.decode()
                if path.is_file():
                    tar.add(path, arcname=name.decode())
    else:
        with open(dest / "tree.tar", "wb") as out:
            subprocess.run(["git", "archive", ref], cwd=REPO, check=True, stdout=out)
    with tarfile.open(dest / "tree.tar") as tar:
        tar.extractall(dest, filter="data")
    (dest / "tree.tar").unlink()
    return dest


def run_demo(tree: Path, home: Path, args: argparse.Namespace) -> None:
    """`segflow run` of the commit's own code (PYTHONPATH first, cwd = its tree)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "SEGFLOW_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "SEGFLOW_DUCKDB_THREADS": "1",  # one thread: sums in one order on both sides
    }
    for var in ("SEGFLOW_DUCKDB_PATH", "MLFLOW_TRACKING_URI", "SEGFLOW_OUTBOX_DIR"):
        env.pop(var, None)
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    cmd = [str(BIN / "python"), "-m", "orchestration.cli", "run", "--users", str(args.users)]
    cmd += ["--days", str(args.days), "--seed", str(args.seed), "--end", args.end]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"segflow run failed in {tree} (exit {proc.returncode})")


def _rows(frame: pd.DataFrame, decimals: int) -> Counter:
    """The table as a multiset of rows (order-free), floats rounded, values as text."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].round(decimals)
    return Counter(map(tuple, out.astype(str).itertuples(index=False, name=None)))


def compare_tables(base: Path, head: Path, ignore: set[str], decimals: int) -> list[str]:
    """One line per difference between the two warehouses' `main` tables."""
    diffs: list[str] = []
    with (
        duckdb.connect(str(base), read_only=True) as b,
        duckdb.connect(str(head), read_only=True) as h,
    ):
        listing = "select table_name from information_schema.tables where table_schema = 'main'"
        tables_b = {r[0] for r in b.execute(listing).fetchall()}
        tables_h = {r[0] for r in h.execute(listing).fetchall()}
        for name in sorted(tables_b ^ tables_h):
            diffs.append(f"table {name}: only in {'base' if name in tables_b else 'head'}")
        for name in sorted(tables_b & tables_h):
            fb, fh = (c.execute(f'select * from main."{name}"').df() for c in (b, h))
            cols_b, cols_h = set(fb.columns) - ignore, set(fh.columns) - ignore
            if cols_b != cols_h:
                diffs.append(
                    f"table {name}: columns only in base {sorted(cols_b - cols_h)}, "
                    f"only in head {sorted(cols_h - cols_b)}"
                )
            common = sorted(cols_b & cols_h)
            rb, rh = _rows(fb[common], decimals), _rows(fh[common], decimals)
            if rb != rh:
                only_b, only_h = rb - rh, rh - rb
                diffs.append(
                    f"table {name}: {len(fb)} vs {len(fh)} rows; "
                    f"{sum(only_b.values())} only in base, {sum(only_h.values())} only in head"
                )
                pairs = zip(sorted(only_b)[:3], sorted(only_h)[:3], strict=False)
                diffs += [
                    f"    {_changed(dict(zip(common, b, strict=True)), dict(zip(common, h, strict=True)))}"
                    for b, h in pairs
                ]
    return diffs


def _flat(value: object, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        return {
            k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()
        }
    if isinstance(value, list):
        return {
            k: v for i, item in enumerate(value) for k, v in _flat(item, f"{prefix}{i}.").items()
        }
    return {prefix.rstrip("."): value}


def _changed(base: dict, head: dict) -> str:
    """The fields of two (sorted, paired) differing rows that differ: field: base -> head."""
    keys = sorted(set(base) | set(head))
    changed = [
        f"{k}: {base.get(k)!r} -> {head.get(k)!r}" for k in keys if base.get(k) != head.get(k)
    ]
    return "; ".join(changed[:8]) + (f" (+{len(changed) - 8} more)" if len(changed) > 8 else "")


def _strip(value: object, ignore: set[str]) -> object:
    if isinstance(value, dict):
        return {k: _strip(v, ignore) for k, v in sorted(value.items()) if k not in ignore}
    if isinstance(value, list):
        return [_strip(v, ignore) for v in value]
    if isinstance(value, int) and abs(value - time.time()) < RUN_TIME_WINDOW_S:
        return "<run time>"
    return value


def _payloads(outbox: Path, ignore: set[str]) -> dict[str, Counter]:
    """Outbox payload lines per sync day (file names carry a run id: grouped by day)."""
    by_day: dict[str, Counter] = {}
    for path in sorted(outbox.rglob("*.jsonl")) if outbox.exists() else []:
        day = path.name.split("_")[1] if path.name.startswith("sync_") else path.name
        lines = by_day.setdefault(day, Counter())
        for line in path.read_text().splitlines():
            if line.strip():
                lines[json.dumps(_strip(json.loads(line), ignore), sort_keys=True)] += 1
    return by_day


def compare_outbox(base: Path, head: Path, ignore: set[str]) -> list[str]:
    pb, ph = _payloads(base, ignore), _payloads(head, ignore)
    diffs = [
        f"outbox {day}: only in {'base' if day in pb else 'head'}"
        for day in sorted(pb.keys() ^ ph.keys())
    ]
    for day in sorted(pb.keys() & ph.keys()):
        if pb[day] != ph[day]:
            only_b, only_h = pb[day] - ph[day], ph[day] - pb[day]
            diffs.append(
                f"outbox {day}: {sum(only_b.values())} payloads only in base, "
                f"{sum(only_h.values())} only in head"
            )
            pairs = zip(sorted(only_b)[:3], sorted(only_h)[:3], strict=False)
            diffs += [
                f"    {_changed(_flat(json.loads(b)), _flat(json.loads(h)))}" for b, h in pairs
            ]
    if not pb and not ph:
        diffs.append("outbox: no payloads on either side (nothing compared)")
    return diffs


def _summary(home: Path) -> str:
    """What was compared (so "identical" on empty tables is visible as such)."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        listing = "select table_name from information_schema.tables where table_schema = 'main'"
        tables = [r[0] for r in conn.execute(listing).fetchall()]
        rows = sum(conn.execute(f'select count(*) from main."{t}"').fetchone()[0] for t in tables)
        scored = (
            conn.execute(
                "select count(churn_probability), count(ltv_pred), count(conversion_probability) "
                "from main.user_scores"
            ).fetchone()
            if "user_scores" in tables
            else (0, 0, 0)
        )
    payloads = sum(len(p.read_text().splitlines()) for p in (home / "outbox").rglob("*.jsonl"))
    return (
        f"compared: {len(tables)} tables, {rows} rows (scores: churn {scored[0]}, ltv "
        f"{scored[1]}, conversion {scored[2]} non-null), {payloads} outbox payload lines"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="commit (or ref) before the change")
    parser.add_argument(
        "head", nargs="?", default=WORKTREE, help="commit after (default: working tree)"
    )
    parser.add_argument("--users", type=int, default=200, help="demo users (default: 200)")
    parser.add_argument("--days", type=int, default=45, help="demo days (default: 45)")
    parser.add_argument("--seed", type=int, default=7, help="demo seed (default: 7)")
    parser.add_argument("--end", default="2025-06-30", help="last demo day (default: 2025-06-30)")
    parser.add_argument("--decimals", type=int, default=9, help="float rounding (default: 9)")
    parser.add_argument(
        "--ignore", nargs="*", default=list(DEFAULT_IGNORE), help="run-time columns/keys left out"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    parser.add_argument("--reuse", type=Path, help="compare the runs kept in this directory again")
    args = parser.parse_args()
    ignore = set(args.ignore)
    tmp = args.reuse or Path(tempfile.mkdtemp(prefix="segflow-compare-"))
    homes = {side: tmp / side / "home" for side in ("base", "head")}
    for side, ref in (("base", args.base), ("head", args.head)):
        if args.reuse:
            continue
        tree = export(ref, tmp / side / "tree")
        print(f"{side}: {ref} -> {tree}", flush=True)
        run_demo(tree, homes[side], args)
    diffs = compare_tables(
        homes["base"] / "warehouse.duckdb",
        homes["head"] / "warehouse.duckdb",
        ignore,
        args.decimals,
    )
    diffs += compare_outbox(homes["base"] / "outbox", homes["head"] / "outbox", ignore)
    short = {
        side: ref if ref == WORKTREE else ref[:10]
        for side, ref in (("base", args.base), ("head", args.head))
    }
    report = [
        f"# compare_outputs {short['base']} -> {short['head']}",
        f"demo: --users {args.users} --days {args.days} --seed {args.seed} --end {args.end}; "
        f"floats rounded to {args.decimals} decimals; ignored: {', '.join(sorted(ignore))}",
        "",
        _summary(homes["head"]),
        "",
        *(diffs or ["identical: every main table and every outbox payload"]),
    ]
    text = "\n".join(report)
    print(text)
    results = REPO / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / f"compare_outputs-{short['base']}-{short['head']}.md").write_text(text + "\n")
    if not (args.keep or args.reuse):
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept: {tmp}")
    return 1 if [d for d in diffs if not d.startswith("outbox: no payloads")] else 0


if __name__ == "__main__":
    raise SystemExit(main())
