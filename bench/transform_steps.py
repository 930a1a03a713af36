"""Steps of bench/transform.py (also used by bench/spark.py): data preparation, the new-day
process the daily job's way, and the measurement of one process tree (wall, CPU, peak RSS)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contracts.raw import RAW_TABLES  # noqa: E402
from orchestration.run_window import dbt_vars_arg  # noqa: E402
from orchestration.settings import Settings  # noqa: E402
from orchestration.warehouse import duckdb_config  # noqa: E402

DBT = Path(sys.executable).parent / "dbt"
TABLES = RAW_TABLES

# Step 2's process, the daily job's way (`segflow run`, in-process dbt, the default): load the
# new day the way the ingest asset does, write the run window, parse the project in this process
# (partial: the project's partial_parse.msgpack is seeded beforehand, as a daily run finds it),
# then each dbt step in this process on a fresh copy of that parse (orchestration/dbt_parse.py),
# with the flags the daily job's steps add (in_process_flags: no JSON artifacts, no debug log file).
# Per part and per dbt node: wall seconds and the process's CPU seconds (dbt runs one node at a
# time here, DuckDB's threads are in this process, so a node's CPU is the delta across it).
NEW_DAY = """
import json, sys, time
from datetime import date, datetime
from pathlib import Path
sys.path.insert(0, {repo!r})
from orchestration.cli_run import parse_manifest
from orchestration.dbt_parse import invoke
from orchestration.dbt_selection import in_process_flags
from orchestration.run_window import RunWindow, dbt_vars_arg, window_sql
from orchestration.settings import DBT_PROJECT_DIR, Settings
from orchestration.sources.load import load_partitions
from orchestration.warehouse import connect
seconds, cpu, nodes_seconds, nodes_cpu = {{}}, {{}}, {{}}, {{}}
t0, c0 = time.perf_counter(), time.process_time()
day = date.fromisoformat({day!r})
with connect(Path({db!r})) as conn:
    for table in {tables!r}:
        load_partitions(conn, table, [day], Path({landing!r}), "demo", late_arrival_days=3)
    conn.execute(window_sql(RunWindow(day, day)))  # the window, as the Dagster step writes it
seconds["load"], cpu["load"] = time.perf_counter() - t0, time.process_time() - c0
settings = Settings.from_env()
t0, c0 = time.perf_counter(), time.process_time()
parse_manifest(settings)
seconds["parse"], cpu["parse"] = time.perf_counter() - t0, time.process_time() - c0
marks = []  # process CPU seconds when dbt reports a node started / finished (dbt threads: 1)
def keep(name):
    if name in ("NodeStart", "NodeFinished"):
        marks.append(time.process_time())
        return True
    return False
for i, args in enumerate(json.loads({steps!r})):
    t0, c0 = time.perf_counter(), time.process_time()
    marks.clear()
    with invoke(args[0], DBT_PROJECT_DIR, settings.dbt_target, dbt_vars_arg(settings),
                [*args[1:], *in_process_flags()], keep_event=keep) as run:
        assert run.result.success, run.result.exception
        events = [(e["info"]["name"], e["data"]["node_info"]) for e in run.events]
    seconds[f"step{{i}}"], cpu[f"step{{i}}"] = time.perf_counter() - t0, time.process_time() - c0
    started = {{}}
    for (name, node), mark in zip(events, marks):
        if name == "NodeStart":
            started[node["unique_id"]] = mark
            continue
        key = f"step{{i}}_{{node['resource_type']}}s"  # dbt's model / test seconds per step
        took = datetime.fromisoformat(node["node_finished_at"]) - datetime.fromisoformat(
            node["node_started_at"]
        )
        seconds[key] = seconds.get(key, 0.0) + took.total_seconds()
        nodes_seconds[node["unique_id"]] = took.total_seconds()
        node_cpu = mark - started.get(node["unique_id"], mark)
        cpu[key] = cpu.get(key, 0.0) + node_cpu
        nodes_cpu[node["unique_id"]] = node_cpu
top = sorted(nodes_cpu.items(), key=lambda item: -item[1])[:12]
Path({out!r}).write_text(json.dumps({{
    "seconds": seconds, "cpu_seconds": cpu, "slowest_nodes": dict(top),
    "slowest_nodes_wall": {{k: nodes_seconds[k] for k, _ in top}},
}}))
"""


def _measure(cmd: list[str], env: dict[str, str]) -> dict:
    """Run cmd; wall seconds, CPU seconds of the process tree, peak RSS of the tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=REPO
        )
        parent = psutil.Process(proc.pid)
        peak = 0
        tree_cpu: dict[int, float] = {}  # pid -> own CPU s when last seen, the tree's processes
        while proc.poll() is None:
            try:
                children = parent.children(recursive=True)
                tree_cpu[parent.pid] = _own_cpu(parent, tree_cpu.get(parent.pid))
                peak = max(peak, parent.memory_info().rss + sum(_rss(c) for c in children))
                for child in children:
                    tree_cpu[child.pid] = _own_cpu(child, tree_cpu.get(child.pid))
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        log.seek(0)
        out = log.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({proc.returncode}):\n{out[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # A descendant nobody waits for (pyspark's JVM, orphaned when dbt exits) is missing from
    # RUSAGE_CHILDREN: the tree's sampled CPU then exceeds it, and is the figure.
    cpu = max(cpu, sum(tree_cpu.values()))
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
    }


def _rss(process: psutil.Process) -> int:
    """Its resident memory; 0 for a JVM's child still sharing the JVM's memory (a vfork before
    its exec: Hadoop forks `chmod` for each file Spark writes locally), counted once already."""
    try:
        if process.name() == "java" and process.parent().name() == "java":
            return 0
        return process.memory_info().rss
    except (psutil.Error, AttributeError):
        return 0


def _own_cpu(process: psutil.Process, last: float | None) -> float:
    """A process's own user + system seconds (the last value seen once it is gone)."""
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return last or 0.0


def _dbt_common(target: Path) -> list[str]:
    return [
        "--project-dir",
        str(REPO / "dbt_project"),
        "--profiles-dir",
        str(REPO / "dbt_project"),
        "--target-path",
        str(target),
        "--log-path",
        str(target),
        *dbt_vars_arg(Settings.from_env()),
    ]


def _count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    return conn.execute(f"select count(*) from {table}").fetchone()[0]


def _prepare(work: Path, users: int, days: int, seed: int, reuse: bool) -> tuple[list[date], dict]:
    """Generate the landing data (unless reused) and load all days but the last into
    history.duckdb (raw.* only)."""
    from demo import saas as demo
    from orchestration.sources.load import load_partitions

    meta_file = work / "meta.json"
    info: dict = {}
    if reuse and meta_file.exists():
        meta = json.loads(meta_file.read_text())
        start = date.fromisoformat(meta["start"])
        info = meta
    else:
        start = datetime.now(UTC).date() - timedelta(days=days + 1)
        t0 = time.perf_counter()
        demo.generate(work / "landing", work / "truth", users, days, seed, start)
        info = {"start": start.isoformat(), "generate_seconds": round(time.perf_counter() - t0, 1)}
        (work / "history.duckdb").unlink(missing_ok=True)
    dates = [start + timedelta(days=i) for i in range(days)]
    history = work / "history.duckdb"
    if not history.exists():
        t0 = time.perf_counter()
        conn = duckdb.connect(str(history), config=duckdb_config())
        try:
            for table in TABLES:
                load_partitions(
                    conn, table, dates[:-1], work / "landing", "demo", late_arrival_days=3
                )
        finally:
            conn.close()
        info["load_history_seconds"] = round(time.perf_counter() - t0, 1)
    meta_file.write_text(json.dumps(info))
    return dates, info
