"""bench/realtime.py's report: the one-line-per-goal summary, realtime.md and its table of
every run (split from realtime.py)."""

from __future__ import annotations

from datetime import UTC, datetime


def summary(r: dict) -> str:
    """The three figures against their goals, one line each (what the lead reads)."""
    goals, load = r["goals"], " ".join(r["machine"]["loadavg_before"])
    return "\n".join(
        [
            f"load average before: {load} ({r['machine']['cpus']} CPUs)",
            f"collector: {r['collector_events_per_s']:,.0f} events/s through the Segment client "
            f"(goal >= 5,000): {_word(goals['collector >= 5,000 events/s'])}",
            f"arrival -> visible: p95 {r['arrival_to_visible_p95_s']} s "
            f"({r['probes_visible']} of {r['probes']} probes sent during the load visible, "
            f"{r['probes_planned']} planned; goal <= 2 s): "
            f"{_word(goals['arrival -> visible p95 <= 2 s'])}",
            f"serve: p99 {r['serve_p99_ms']} ms at {r['serve_achieved_rps']:,.0f} req/s "
            f"(goal <= 10 ms at 1,000 req/s): {_word(goals['serve p99 <= 10 ms at 1,000 req/s'])}",
            f"nothing dropped: {_word(goals['nothing dropped (stream length == events sent)'])}",
        ]
    )


HISTORY = "## Every run so far"


def history_table(previous: str, r: dict) -> str:
    """The run table kept from the previous realtime.md, with this run added (the figures
    move with the machine's load as much as with the code)."""
    kept = (
        previous[previous.index(HISTORY) :].rstrip("\n").split("\n") if HISTORY in previous else []
    )
    if not kept:
        kept = [
            HISTORY,
            "",
            "| when (UTC) | load before | Segment client events/s | plain HTTP events/s "
            "| visible p50 / p95 s | serve p50 / p99 ms |",
            "|---|---|---|---|---|---|",
        ]
    kept.append(
        f"| {datetime.now(UTC):%Y-%m-%d %H:%M} | {' '.join(r['machine']['loadavg_before'])} "
        f"| {r['collector_events_per_s']:,.0f} | {r['collector_plain_http_events_per_s']:,.0f} "
        f"| {r['arrival_to_visible_p50_s']} / {r['arrival_to_visible_p95_s']} "
        f"| {r['serve_p50_ms']} / {r['serve_p99_ms']} |"
    )
    return "\n" + "\n".join(kept) + "\n"


def render(r: dict, args) -> str:
    m = r["machine"]
    lines = [
        "# Real-time path benchmark (bench/realtime.py)",
        "",
        f"Loopback, {m['cpus']} CPUs, Python {m['python']}; load average before "
        f"{' '.join(m['loadavg_before'])}, after {' '.join(m['loadavg_after'])} (other jobs "
        "share the machine: figures are slower than on an idle one). Separate processes: "
        "redis-server, `segflow collect`, `segflow consume`, `segflow serve`, "
        f"{args.clients} Segment client processes; the probes, the profile poller and the "
        f"serve load generator run in the bench process. {args.users} users in the snapshot; "
        f"{args.events:,} events; serve measured for {args.serve_seconds:g} s.",
        "",
        "| measure | value | goal | holds |",
        "|---|---|---|---|",
        f"| collector, real Segment client ({args.clients} processes x 2 upload threads, "
        "batches of 100) | "
        f"{r['collector_events_per_s']:,.0f} events/s ({r['events']:,} events in "
        f"{r['collector_seconds']} s; stream length {r['stream_length']:,}, client errors "
        f"{r['client_errors']}) | >= 5,000 events/s | "
        f"{_yes(r['goals']['collector >= 5,000 events/s'])} |",
        f"| collector alone: the same Segment batches posted by a plain HTTP client (2 threads) "
        f"| {r['collector_plain_http_events_per_s']:,.0f} events/s | (capacity, not the goal) "
        "| |",
        f"| collector receive -> changed flow visible in GET /v1/profiles, during that load | "
        f"p50 {r['arrival_to_visible_p50_s']} s, p95 {r['arrival_to_visible_p95_s']} s, max "
        f"{r['arrival_to_visible_max_s']} s ({r['probes_visible']}/{r['probes']} probes) | "
        f"p95 <= 2 s | {_yes(r['goals']['arrival -> visible p95 <= 2 s'])} |",
        f"| serve, open loop, half profile GET / half OFREP POST | p50 {r['serve_p50_ms']} ms, "
        f"p95 {r['serve_p95_ms']} ms, p99 {r['serve_p99_ms']} ms at "
        f"{r['serve_achieved_rps']:,.0f} req/s achieved ({r['serve_requests']:,} requests) | "
        f"p99 <= 10 ms at 1,000 req/s | "
        f"{_yes(r['goals']['serve p99 <= 10 ms at 1,000 req/s'])} |",
        "",
        "Latency of serve requests is measured from each request's scheduled send time "
        "(open loop), so queueing in the load generator counts against the server. The "
        "arrival -> visible latency holds only while the consumer applies events faster than "
        "the burst arrives; when other jobs take the cores it falls behind, the stream "
        "buffers the burst (nothing lost, lag visible) and the delay grows until it is "
        "drained. Re-run on a quiet machine: `make bench-realtime`.",
        "",
    ]
    return "\n".join(lines)


def _word(ok: bool) -> str:
    return "yes" if ok else "NO"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"
