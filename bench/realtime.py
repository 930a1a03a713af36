"""Benchmark of the real-time path on this machine, loopback only, bounded in time.

Processes: redis-server, `segflow collect`, `segflow consume`, `segflow serve` (each its own
process, as deployed), fed by the real segment-analytics-python client from this process.
1. Collector: N track events through the Segment client, run in --clients processes (as
   product servers would; one Python client tops out below the goal on this machine), 2 upload
   threads each, batches of 100; events/s from the first call until every batch was
   acknowledged; the stream length must equal N (nothing dropped).
2. Arrival -> visible: during that load, probe users (new users before setup) send
   "Project Created"; a poller reads GET /v1/profiles/{user} until their flow changes.
   Latency = first visible time - the collector's receivedAt of the probe event (same clock).
3. Serve: open-loop 1,000 requests/s for D seconds (half profile GETs, half OFREP POSTs)
   over keep-alive connections; p50/p95/p99 and the achieved rate.
Writes bench/results/realtime.json and realtime.md with the load average (realtime.md keeps a
table of every run), and prints the three figures against their goals. Bounded: about 20 s on
an idle 2-core machine; every wait has a deadline (at most a few minutes when something hangs).

Usage: .venv/bin/python bench/realtime.py [--events 30000] [--users 3000] [--serve-seconds 10]
       (or `make bench-realtime`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tests/support: the synthetic daily-run world

import duckdb  # noqa: E402
import requests  # noqa: E402
import segment.analytics as segment_analytics  # noqa: E402
from support.realtime_world import SNAPSHOT_DAY, build_world  # noqa: E402

from orchestration.realtime.broker import free_port, start_redis  # noqa: E402
from orchestration.realtime.consumer import GROUP  # noqa: E402
from orchestration.realtime.stream import RedisStream  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))  # the sibling modules below
from realtime_report import history_table, render, summary  # noqa: E402
from realtime_serve import serve_phase  # noqa: E402

WRITE_KEY, READ_KEY = "bench-write", "bench-read"
EVENTS = ["Dashboard Viewed", "Report Created", "Dashboard Viewed", "Report Shared"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def start(args: list[str], env: dict, wait_url: str | None = None) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while wait_url and time.monotonic() < deadline:
        try:
            requests.get(wait_url, timeout=0.5)
            return process
        except requests.ConnectionError:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode()) from None
            time.sleep(0.1)
    return process


MIN_PROBES = 30  # sent during the load, for a p95 worth the name


def probes_of(world) -> list[str]:
    with duckdb.connect(str(world.warehouse), read_only=True) as conn:
        rows = conn.execute(
            "select s.user_id from main.user_segments s join main.fct_user_features f "
            "on f.user_id = s.user_id and f.snapshot_date = s.segment_date "
            "where s.segment_date = $d and s.primary_segment = 'new_users' "
            "and not f.reached_first_project order by 1",
            {"d": SNAPSHOT_DAY},
        ).fetchall()
    return [r[0] for r in rows]


class Poller(threading.Thread):
    """Polls the profile API for probe users until their flow leaves new_user_onboarding."""

    def __init__(self, serve_url: str):
        super().__init__(daemon=True)
        self.url = serve_url
        self.pending: dict[str, float] = {}
        self.visible: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {READ_KEY}"}
        while not self.stop.is_set():
            with self.lock:
                users = list(self.pending)
            for user in users:
                try:
                    body = session.get(f"{self.url}/v1/profiles/{user}", headers=headers).json()
                except requests.RequestException as exc:
                    self.errors.append(repr(exc))
                    session = requests.Session()
                    continue
                if body["onboarding_flow"] != "new_user_onboarding":
                    with self.lock:
                        self.pending.pop(user, None)
                        self.visible[user] = time.time()
            time.sleep(0.02)


def client_worker(args: tuple) -> tuple[int, int, float]:
    """One product server: the real Segment client sending `n` events as fast as it can."""
    collect_url, users, n, offset, ready, go = args
    errors: list[str] = []
    client = segment_analytics.Client(
        WRITE_KEY,
        host=collect_url,
        thread=2,
        upload_size=100,
        max_queue_size=n + 1000,
        on_error=lambda e, b: errors.append(str(e)),
    )
    ready.wait()
    go.wait()
    started = time.perf_counter()
    for i in range(n):
        k = i + offset
        client.track(users[k % len(users)], EVENTS[k % len(EVENTS)])
    client.flush()
    client.join()
    return n, len(errors), time.perf_counter() - started


def collector_phase(args, collect_url: str, serve_url: str, probes: list[str], users: list[str]):
    """`args.clients` processes each run the Segment client (as product servers would) while
    this process sends the probe events and polls the profile API."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    manager = ctx.Manager()
    ready, go = manager.Barrier(args.clients + 1), manager.Event()
    share = args.events // args.clients
    pool = ctx.Pool(args.clients)
    jobs = pool.map_async(
        client_worker,
        [(collect_url, users, share, k * share, ready, go) for k in range(args.clients)],
    )
    poller = Poller(serve_url)  # threads start after the fork
    poller.start()
    ready.wait()
    errors: list[str] = []
    prober = segment_analytics.Client(
        WRITE_KEY, host=collect_url, on_error=lambda e, b: errors.append(str(e))
    )
    started = time.perf_counter()
    go.set()
    probe_ids: dict[str, str] = {}
    gap = 0.5 * args.events / 6000 / max(1, len(probes))  # spread over the expected run
    while probes and not jobs.ready():
        user = probes.pop()
        probe_ids[f"probe-{user}"] = user
        prober.track(user, "Project Created", message_id=f"probe-{user}")
        with poller.lock:
            poller.pending[user] = time.time()
        time.sleep(gap)
    results = jobs.get(timeout=300)  # bounded even if a client hangs
    seconds = time.perf_counter() - started
    prober.flush()
    prober.join()
    pool.close()
    deadline = time.monotonic() + 60
    while poller.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    poller.stop.set()
    sent = sum(n for n, _, _ in results) + len(probe_ids)
    client_errors = sum(e for _, e, _ in results) + len(errors)
    return sent, seconds, client_errors, probe_ids, poller


def raw_capacity(collect_url: str, users: list[str], events: int) -> float:
    """Collector capacity without the Segment client's own cost: the same /v1/batch bodies
    (100 Segment-spec tracks each) posted back to back from 2 threads; events/s."""
    import base64

    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    now = datetime.now(UTC).isoformat()
    bodies = [
        json.dumps(
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": users[(b * 100 + i) % len(users)],
                        "event": EVENTS[i % len(EVENTS)],
                        "messageId": f"raw-{b}-{i}",
                        "timestamp": now,
                        "properties": {"i": i},
                    }
                    for i in range(100)
                ]
            }
        ).encode()
        for b in range(events // 100)
    ]

    def post(chunk: list[bytes]) -> None:
        session = requests.Session()
        for body in chunk:
            response = session.post(
                f"{collect_url}/v1/batch",
                data=body,
                headers={"Authorization": auth, "Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text

    threads = [threading.Thread(target=post, args=(bodies[k::2],)) for k in range(2)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(bodies) * 100 / (time.perf_counter() - started)


def arrival_latencies(landing: Path, probe_ids: dict[str, str], poller: Poller) -> list[float]:
    received = {}
    for path in landing.glob("events/dt=*/rt-*.jsonl"):
        for line in path.read_text().splitlines():
            message = json.loads(line)
            if message["messageId"] in probe_ids:
                moment = datetime.fromisoformat(message["receivedAt"].replace("Z", "+00:00"))
                received[probe_ids[message["messageId"]]] = moment.timestamp()
    return [poller.visible[u] - t for u, t in received.items() if u in poller.visible]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--serve-seconds", type=float, default=10.0)
    parser.add_argument("--serve-rate", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=3, help="Segment client processes")
    args = parser.parse_args()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    tmp = Path(tempfile.mkdtemp(prefix="segflow-bench-rt-"))
    redis = start_redis(tmp / "redis")
    world = build_world(tmp / "world", users=args.users)
    realtime = tmp / "realtime"
    realtime.mkdir()
    os.replace(world.snapshot, realtime / "snapshot.sqlite")
    collect_port, serve_port = free_port(), free_port()
    env = {
        **os.environ,
        "SEGFLOW_HOME": str(tmp / "home"),
        "SEGFLOW_REDIS_URL": redis.url,
        "SEGFLOW_REALTIME_DIR": str(realtime),
        "SEGFLOW_SOURCE": "files",
        "SEGFLOW_LANDING_DIR": str(tmp / "landing"),
        "SEGFLOW_OUTBOX_DIR": str(tmp / "outbox"),
        "SEGFLOW_SEGMENTS_FILE": str(world.segments_file),
        "SEGFLOW_TRIGGERS_FILE": str(world.triggers_file),
        "SEGFLOW_WRITE_KEYS": WRITE_KEY,
        "SEGFLOW_READ_KEYS": READ_KEY,
        "SEGFLOW_COLLECT_PORT": str(collect_port),
        "SEGFLOW_SERVE_PORT": str(serve_port),
    }
    collect_url, serve_url = f"http://127.0.0.1:{collect_port}", f"http://127.0.0.1:{serve_port}"
    processes = [
        start(["collect"], env, f"{collect_url}/v1/none"),
        start(["serve"], env, f"{serve_url}/v1/none"),
        start(["consume"], env),
    ]
    deadline = time.monotonic() + 120  # the consumer is ready once its state file exists
    while not (realtime / "state.sqlite").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    try:
        probes = probes_of(world)[:60]
        probe_count = len(probes)
        users = sorted(world.features["user_id"].unique())
        total, seconds, errors, probe_ids, poller = collector_phase(
            args, collect_url, serve_url, probes, users
        )
        stream = RedisStream(redis.url, "segflow:events")
        length = stream.lag(GROUP).length
        raw_rate = raw_capacity(collect_url, users, args.events)
        deadline = time.monotonic() + 60
        while stream.lag(GROUP).total and time.monotonic() < deadline:
            time.sleep(0.1)
        drained_s = time.perf_counter()
        latencies = arrival_latencies(tmp / "landing", probe_ids, poller)
        serve_lat, achieved = serve_phase(
            serve_url, users, args.serve_rate, args.serve_seconds, READ_KEY
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            if process.wait(timeout=30) not in (0, -15):
                print(process.args, process.stderr.read().decode()[-2000:], file=sys.stderr)
        redis.stop()
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "events": total,
        "stream_length": length,
        "client_errors": errors,
        "poll_errors": len(poller.errors),
        "collector_events_per_s": round(total / seconds, 1),
        "collector_seconds": round(seconds, 2),
        "collector_plain_http_events_per_s": round(raw_rate, 1),
        # probes go out only while the load runs: a faster collector ends the load sooner
        "probes_planned": probe_count,
        "probes": len(probe_ids),
        "probes_visible": len(latencies),
        "arrival_to_visible_p50_s": round(percentile(latencies, 0.50), 3),
        "arrival_to_visible_p95_s": round(percentile(latencies, 0.95), 3),
        "arrival_to_visible_max_s": round(max(latencies, default=0.0), 3),
        "serve_target_rps": args.serve_rate,
        "serve_achieved_rps": round(achieved, 1),
        "serve_requests": len(serve_lat),
        "serve_p50_ms": round(percentile(serve_lat, 0.50) * 1000, 2),
        "serve_p95_ms": round(percentile(serve_lat, 0.95) * 1000, 2),
        "serve_p99_ms": round(percentile(serve_lat, 0.99) * 1000, 2),
        "drained_at": drained_s,
    }
    result.pop("drained_at")
    goals = {
        "collector >= 5,000 events/s": result["collector_events_per_s"] >= 5000,
        "arrival -> visible p95 <= 2 s": result["arrival_to_visible_p95_s"] <= 2.0
        and result["probes_visible"] == result["probes"] >= MIN_PROBES,
        "serve p99 <= 10 ms at 1,000 req/s": result["serve_p99_ms"] <= 10.0
        and result["serve_achieved_rps"] >= 0.95 * args.serve_rate,
        "nothing dropped (stream length == events sent)": length == total and not errors,
    }
    result["goals"] = goals
    out = REPO / "bench" / "results"
    (out / "realtime.json").write_text(json.dumps(result, indent=2) + "\n")
    md = out / "realtime.md"
    history = history_table(md.read_text() if md.exists() else "", result)
    md.write_text(render(result, args) + history)
    print(json.dumps(result, indent=2))
    print(summary(result))


if __name__ == "__main__":
    main()
