"""bench/realtime.py's serve phase: the open-loop load generator (split from realtime.py)."""

from __future__ import annotations

import http.client
import json
import threading
import time


def serve_phase(
    serve_url: str, users: list[str], rate: int, seconds: float, read_key: str, threads: int = 8
):
    """Open-loop load on `segflow serve`: `rate` requests/s for `seconds` (half profile GETs,
    half OFREP POSTs); returns each request's latency from its scheduled send time and the
    achieved rate."""
    host, port = serve_url.removeprefix("http://").split(":")
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = rate / threads
    t0 = time.perf_counter() + 0.2
    ended: list[float] = []

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port))
        mine, n = [], 0
        while True:
            due = t0 + (n + k / threads) / per_thread
            if due - t0 > seconds:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            user = users[(n * threads + k) % len(users)]
            if n % 2:
                body = json.dumps({"context": {"targetingKey": user}})
                conn.request(
                    "POST",
                    "/ofrep/v1/evaluate/flags/onboarding_flow",
                    body,
                    {"Authorization": f"Bearer {read_key}", "Content-Type": "application/json"},
                )
            else:
                conn.request(
                    "GET", f"/v1/profiles/{user}", headers={"Authorization": f"Bearer {read_key}"}
                )
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            mine.append(time.perf_counter() - max(due, t0))  # from the scheduled time
            n += 1
        with lock:
            latencies.extend(mine)
            ended.append(time.perf_counter())

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    achieved = len(latencies) / (max(ended) - t0)
    return latencies, achieved
