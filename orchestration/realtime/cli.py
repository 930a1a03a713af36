"""The real-time `segflow` commands (registered by orchestration/cli.py): broker, collect,
consume, serve, snapshot. Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import signal
import threading
from urllib.parse import urlparse

from orchestration.settings import Settings


def register(sub) -> None:
    broker = sub.add_parser(
        "broker", help="run the stream broker (redis-server, append-only) for the real-time path"
    )
    broker.set_defaults(func=cmd_broker)
    collect = sub.add_parser(
        "collect", help="Segment-compatible event collector (SEGFLOW_COLLECT_HOST/PORT)"
    )
    collect.add_argument("--port", type=int, help="override SEGFLOW_COLLECT_PORT (0: any free)")
    collect.set_defaults(func=cmd_collect)
    consume = sub.add_parser(
        "consume", help="stream consumer: intraday segments, events, landing files"
    )
    consume.add_argument("--name", default="consumer-1", help="consumer name in the group")
    consume.set_defaults(func=cmd_consume)
    serve = sub.add_parser("serve", help="profile and OFREP flag API (SEGFLOW_SERVE_HOST/PORT)")
    serve.add_argument("--port", type=int, help="override SEGFLOW_SERVE_PORT (0: any free)")
    serve.set_defaults(func=cmd_serve)
    snap = sub.add_parser(
        "snapshot", help="rebuild the read-only snapshot `serve` reads from the warehouse"
    )
    snap.set_defaults(func=cmd_snapshot)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _serve_until_stopped(server, what: str) -> int:
    stop = _stop_on_signals()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"segflow {what}: listening on {server.url}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from orchestration.realtime.broker import start_redis

    settings = Settings.from_env()
    url = urlparse(settings.redis_url)
    if url.hostname not in ("127.0.0.1", "localhost"):
        raise ValueError(f"SEGFLOW_REDIS_URL={settings.redis_url}: `segflow broker` runs locally")
    server = start_redis(settings.realtime_dir / "redis", port=url.port or 6379)
    print(f"segflow broker: redis-server on {server.url} (data {server.directory})", flush=True)
    stop = _stop_on_signals()
    while not stop.wait(1.0):
        if server.process.poll() is not None:
            return 1
    server.stop()
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from orchestration.realtime import app

    return _serve_until_stopped(app.collector(Settings.from_env(), args.port), "collect")


def cmd_serve(args: argparse.Namespace) -> int:
    from orchestration.realtime import app

    return _serve_until_stopped(app.profile_server(Settings.from_env(), args.port), "serve")


def cmd_consume(args: argparse.Namespace) -> int:
    from orchestration.realtime import app

    consumer = app.consumer(Settings.from_env(), args.name)
    stop = _stop_on_signals()
    print(f"segflow consume: {args.name} reading the stream", flush=True)
    consumer.run(stop)
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    import duckdb

    from orchestration.realtime import app
    from orchestration.realtime.snapshot import build_snapshot

    settings = Settings.from_env()
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        facts = build_snapshot(conn, app.segment_config(settings), app.snapshot_path(settings))
    print(f"segflow snapshot: {facts['users']} users as of {facts['snapshot_date']}")
    return 0
