"""Real time, alongside the daily batch (never instead of it): a Segment-compatible collector
(collector.py) appends events to a stream (stream.py, Redis Streams), a consumer
(consumer.py) keeps today's per-user state, re-evaluates the `realtime: true` rules
(intraday.py) and drains the stream into the daily landing files, and `segflow serve`
(server.py) answers profile and OFREP flag requests from a read-only snapshot (snapshot.py)
plus the intraday state. Plain Python: no Dagster import here."""
