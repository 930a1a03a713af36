"""The daily job for one new day, from launch to synced, as a user feels it every morning.

1. History, once: the demo product (`--users` x `--days`) through the full job (`segflow run`),
   in a scratch SEGFLOW_HOME. Timed, but not the figure.
2. The new day: `segflow demo-data --next-day` once (the same product, one more day of landing
   files; on a copy of the history's demo folder, kept in <history>-next-day), then `--repeats`
   times from a copy of the history state with that folder (landing files hard-linked):
   `segflow run --days 1 --end <day> --job segflow_daily_job`, launched the way the schedule's
   run would be for that partition. A day after another day finds the model registry's cache
   (ml/registry_cache.py) of its unchanged store; when the history predates that cache it is
   read once before timing, untimed (`--cold-registry`: not, as on the day after a training).
   Measured: wall and CPU seconds of the whole launch (process tree), seconds per step (from the
   run's progress lines), peak RSS of the process tree (sampled every 100 ms), the people the
   sync sent (main.sync_runs) and the machine's load average before and after.
Reported: the median of the repeats, to bench/results/daily_job-<users>x<days>.{json,md}.

    .venv/bin/python bench/daily_job.py --users 1000 --days 120          # the fixed cost
    .venv/bin/python bench/daily_job.py --users 100000 --days 180        # the headline
    # or the history once (about 30 min under load), the timed day later in a quiet window:
    .venv/bin/python bench/daily_job.py --users 100000 --days 180 --history DIR --history-only
    .venv/bin/python bench/daily_job.py --users 100000 --days 180 --history DIR
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psutil

REPO = Path(__file__).resolve().parents[1]
SEGFLOW = Path(sys.executable).parent / "segflow"
STEP_LINE = re.compile(
    r"^\s+(ok|FAILED|SKIP|skipped)\s+(\S+)\s+([\d.]+)s(?: \(\s*([\d.]+) CPU s\))?", re.M
)
# The launcher's line for the first step (orchestration/launcher_progress.py): the fixed cost.
FIRST_STEP = re.compile(
    r"first step started ([\d.]+)s after the command started \(([\d.]+) CPU s\)"
)
GOALS = {"wall_s_100k": 60.0, "peak_rss_mb": 4096.0}


def _sched_seconds(pids: list[int], seen: dict[int, tuple[int, int]]) -> None:
    """Per thread of `pids`: CPU and run-queue wait nanoseconds (/proc/<pid>/task/<tid>/
    schedstat), the latest reading kept in `seen` (a thread that ends keeps its last one)."""
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError):
                on_cpu, waiting, _ = stat.read_text().split()
                seen[int(stat.parent.name)] = (int(on_cpu), int(waiting))


def measure(cmd: list[str], env: dict[str, str]) -> dict:
    """Run cmd; wall and CPU seconds of its process tree, peak RSS, output, and the seconds
    its threads waited for a CPU (run queue: what a busy machine adds; the rest of wall beyond
    CPU + run queue is waiting on disk, locks or sleeps)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    sched: dict[int, tuple[int, int]] = {}
    with tempfile.TemporaryFile(mode="w+") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        parent, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
                _sched_seconds([p.pid for p in tree], sched)
            except psutil.Error:
                pass
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        log.seek(0)
        output = log.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-4000:]}")
    run_queue = sum(waiting for _, waiting in sched.values()) / 1e9
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "run_queue_s": run_queue,
        "peak_rss_mb": peak / 2**20,
        "output": output,
    }


def steps(output: str) -> dict[str, float]:
    return {name: float(seconds) for _, name, seconds, _ in STEP_LINE.findall(output)}


def step_cpu(output: str) -> dict[str, float]:
    return {name: float(cpu) for _, name, _, cpu in STEP_LINE.findall(output) if cpu}


def people_sent(home: Path) -> int | None:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        row = conn.execute(
            "select people_sent from main.sync_runs order by started_at desc limit 1"
        ).fetchone()
    return None if row is None else int(row[0])


def copy_state(src: Path, dst: Path, landing: Path) -> None:
    """Copy src into dst; files under `landing` are hard links (--next-day adds a new day's
    folder and the loader only reads them: at 100k they are ~9 GB per copy)."""
    landing = landing.resolve()

    def copy(source: str, target: str) -> object:
        if not Path(source).resolve().is_relative_to(landing):
            return shutil.copy2(source, target)
        if not Path(target).exists():
            os.link(source, target)
        return target

    shutil.copytree(src, dst, symlinks=True, copy_function=copy, dirs_exist_ok=True)


def advance(base: Path, advanced: Path) -> str:
    """`segflow demo-data --next-day` once, on a copy of the history's demo folder (at 100k
    it replays the simulation: minutes); every repeat then starts from the history plus this
    folder, kept and reused (its day in `advanced/day`). Returns the new day."""
    if (advanced / "day").exists():
        return (advanced / "day").read_text().strip()
    shutil.rmtree(advanced, ignore_errors=True)
    copy_state(base / "demo", advanced / "demo", base / "demo" / "landing")
    env = {**os.environ, "SEGFLOW_HOME": str(advanced)}
    done = subprocess.run(
        [str(SEGFLOW), "demo-data", "--next-day"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    day = re.search(r"--end (\S+)", done.stdout).group(1)
    (advanced / "day").write_text(day)
    return day


def new_day(
    base: Path, advanced: Path, day: str, work: Path, demo: list[str], cold_registry: bool = False
) -> dict:
    """One repeat: a copy of the history state with the advanced demo folder, then the daily
    job for that day (the copy is removed afterwards)."""
    shutil.rmtree(work, ignore_errors=True)
    copy_state(base, work, base / "demo" / "landing")
    copy_state(advanced / "demo", work / "demo", advanced / "demo" / "landing")
    env = {**os.environ, "SEGFLOW_HOME": str(work), "DAGSTER_HOME": str(work / "dagster_home")}
    registry = registry_state(work, env, fill=not cold_registry)
    load_before = os.getloadavg()
    run = measure(
        [str(SEGFLOW), "run", "--days", "1", "--end", day, "--job", "segflow_daily_job", *demo],
        env,
    )
    output = run.pop("output")
    run.update(day=day, steps=steps(output), step_cpu_s=step_cpu(output))
    first = FIRST_STEP.search(output)
    run.update(before_first_step=[float(x) for x in first.groups()] if first else None)
    run.update(people_sent=people_sent(work))
    run.update(load_before=load_before, load_after=os.getloadavg(), registry_cache=registry)
    shutil.rmtree(work, ignore_errors=True)
    return run


# What a daily run reads from the model registry (ml/registry_cache.py), read the way it does.
READ_REGISTRY = (
    "from ml.scoring import load_champions\n"
    "from orchestration.defs.report import model_versions\n"
    "from orchestration.settings import Settings\n"
    "uri = Settings.from_env().mlflow_tracking_uri\n"
    "load_champions(uri)\n"
    "model_versions(uri)\n"
)


def registry_state(work: Path, env: dict[str, str], fill: bool) -> str:
    """Whether the run finds the registry cache of its (unchanged) model store, as a day after
    another day does: "history" when the copied history holds it, "filled" when it was read
    here first, untimed (a history built before the cache existed), "cold" when not (the
    first day after a training: ~2 CPU s more, MLflow is loaded)."""
    from ml import registry_cache

    db = work / "mlflow" / "mlflow.db"
    key = registry_cache.state_key(db) if db.exists() else None
    cache = registry_cache.cache_file(db)
    before = json.loads(cache.read_text()) if cache.exists() else {}
    if not fill:
        return "history" if key is not None and before.get("key") == key else "cold"
    # read as the run reads, even when the key matches: a history whose cache holds only some
    # answers (e.g. the champions, read by bench/scoring.py, not the report's version listing)
    # would otherwise time MLflow's import inside a step
    subprocess.run([sys.executable, "-c", READ_REGISTRY], env=env, cwd=REPO, check=True)
    after = json.loads(cache.read_text()) if cache.exists() else {}
    return "history" if after == before else "filled"


def build_history(base: Path, days: int, demo: list[str]) -> dict:
    """The full job over `days` days ending two days ago (the new day is then yesterday)."""
    env = {**os.environ, "SEGFLOW_HOME": str(base), "DAGSTER_HOME": str(base / "dagster_home")}
    end = datetime.now(UTC).date() - timedelta(days=2)
    history = measure([str(SEGFLOW), "run", "--days", str(days), "--end", str(end), *demo], env)
    history.pop("output")
    return history


def median_report(runs: list[dict]) -> dict:
    names = sorted({name for run in runs for name in run["steps"]})
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "run_queue_s": statistics.median(r.get("run_queue_s", 0.0) for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "before_first_step": [
            statistics.median(r["before_first_step"][i] for r in runs if r.get("before_first_step"))
            if any(r.get("before_first_step") for r in runs)
            else None
            for i in (0, 1)
        ],
        "steps": {
            n: statistics.median(r["steps"].get(n, 0.0) for r in runs)
            for n in sorted(
                names, key=lambda n: -statistics.median(r["steps"].get(n, 0.0) for r in runs)
            )
        },
        "step_cpu_s": {
            n: statistics.median(r.get("step_cpu_s", {}).get(n, 0.0) for r in runs) for n in names
        },
    }


def _pair(pair: list[float | None] | None) -> str:
    """'wall / CPU' before the first step, or '-' (a run whose output lacks the line)."""
    if not pair or pair[0] is None:
        return "-"
    return f"{pair[0]:.1f} / {pair[1]:.1f}"


def markdown(args: argparse.Namespace, history: dict, runs: list[dict], med: dict) -> str:
    lines = [
        f"# Daily job, one new day: {args.users:,} customers x {args.days} days of history",
        "",
        f"Command: `{' '.join(['python', 'bench/daily_job.py', *sys.argv[1:]])}` "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, shared machine).",
        "",
        (
            f"History (full job, once): {history['wall_s']:.0f} s wall, "
            f"{history['cpu_s']:.0f} CPU s."
            if history.get("wall_s") is not None
            else f"History: reused from an earlier full job ({history['reused']})."
        ),
        "",
        "| repeat | day | wall s | CPU s | before the first step: wall s / CPU s "
        "| run-queue wait s | peak RSS MB | people synced | load before | load after "
        "| registry cache |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        lines.append(
            f"| {i} | {r['day']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
            f"| {_pair(r.get('before_first_step'))} | {r.get('run_queue_s', 0.0):.1f} | {r['peak_rss_mb']:.0f} "
            f"| {r['people_sent']} | {' '.join(f'{x:.1f}' for x in r['load_before'])} "
            f"| {' '.join(f'{x:.1f}' for x in r['load_after'])} "
            f"| {r.get('registry_cache', '')} |"
        )
    lines += [
        "",
        f"**Median: {med['wall_s']:.1f} s wall, {med['cpu_s']:.1f} CPU s, "
        f"{med['run_queue_s']:.1f} s waiting for a CPU; before the first step "
        f"{_pair(med.get('before_first_step'))} s wall / CPU s; peak RSS "
        f"{med['peak_rss_mb']:.0f} MB** (goal at 100k: <= {GOALS['wall_s_100k']:.0f} s wall, "
        f"<= {GOALS['peak_rss_mb']:.0f} MB).",
        "",
        "| step (median, from the run's progress lines) | wall s | CPU s |",
        "|---|---|---|",
        *(
            f"| {name} | {sec:.1f} | {med['step_cpu_s'].get(name, 0.0):.1f} |"
            for name, sec in med["steps"].items()
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--history",
        type=Path,
        help="keep the history state here, and reuse it when it is already built there",
    )
    parser.add_argument(
        "--history-only",
        action="store_true",
        help="build the --history state and the next day's files (DIR-next-day) and stop "
        "(time the new day later, in a quiet window)",
    )
    parser.add_argument(
        "--cold-registry",
        action="store_true",
        help="do not fill the model registry cache before timing when the history lacks it "
        "(time the first day after a training instead of a day after another day)",
    )
    args = parser.parse_args()
    if args.history_only and args.history is None:
        parser.error("--history-only needs --history DIR")
    demo = ["--users", str(args.users), "--seed", str(args.seed)]
    # Beside the history: the repeats hard-link its landing files (one file system).
    scratch = args.history.resolve().parent if args.history else None
    with tempfile.TemporaryDirectory(prefix="segflow-daily-bench-", dir=scratch) as tmp:
        base = args.history or Path(tmp) / "base"
        history = {"wall_s": None, "cpu_s": None, "reused": str(base)}
        if not (base / "warehouse.duckdb").exists():
            history = build_history(base, args.days, demo)
        # Kept beside --history (the next day is set-up too), else in the scratch folder.
        advanced = Path(f"{args.history}-next-day") if args.history else Path(tmp) / "advanced"
        day = advance(base, advanced)
        if args.history_only:
            print(f"history in {base}, day {day} in {advanced}: {json.dumps(history, default=str)}")
            return
        # one SEGFLOW_HOME path for every repeat, as a deployment's: the first repeat parses the
        # dbt project (as the first day after a project change), later ones reuse the parse
        runs = [
            new_day(base, advanced, day, Path(tmp) / "run", demo, args.cold_registry)
            for _ in range(args.repeats)
        ]
    med = median_report(runs)
    out = REPO / "bench" / "results" / f"daily_job-{args.users}x{args.days}"
    out.with_suffix(".json").write_text(
        json.dumps(
            {"args": vars(args), "history": history, "runs": runs, "median": med},
            indent=2,
            default=str,
        )
    )
    out.with_suffix(".md").write_text(markdown(args, history, runs, med))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
