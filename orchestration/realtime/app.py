"""The real-time parts built from `Settings` (used by the CLI and the Dagster wiring)."""

from __future__ import annotations

from pathlib import Path

from orchestration.settings import Settings


def snapshot_path(settings: Settings) -> Path:
    return settings.realtime_dir / "snapshot.sqlite"


def state_path(settings: Settings) -> Path:
    return settings.realtime_dir / "state.sqlite"


def segment_config(settings: Settings):
    from orchestration.segments.config import load_configured

    return load_configured(settings)  # custom CRM attributes may appear in rules


def milestone_events() -> dict[str, str]:
    """Tracking-plan event name -> the milestone it reaches."""
    from contracts import tracking_plan

    return {e: name for name, events in tracking_plan.load().milestones for e in events}


def stream(settings: Settings):
    from orchestration.realtime.stream import RedisStream

    return RedisStream(settings.redis_url, settings.stream_key)


def collector(settings: Settings, port: int | None = None):
    from contracts import tracking_plan
    from orchestration.realtime.collector import CollectorServer

    address = (settings.collect_host, settings.collect_port if port is None else port)
    return CollectorServer(
        address,
        stream(settings),
        settings.write_keys,
        tracking_plan.load().known_events,
        settings.late_arrival_days,
        settings.cors_origins,
    )


def consumer(settings: Settings, name: str = "consumer-1", destinations=None):
    from contracts import tracking_plan
    from orchestration.activation.destinations import build_destination
    from orchestration.realtime.consumer import Consumer

    if destinations is None:  # intraday events go to every configured destination
        destinations = [build_destination(d, settings) for d in settings.destinations]
    return Consumer(
        stream(settings),
        state_path(settings),
        snapshot_path(settings),
        settings.source_dir,  # drained where the daily ingest reads
        segment_config(settings),
        milestone_events(),
        tracking_plan.load().known_events,
        destinations=destinations,
        name=name,
        sweep_seconds=settings.session_sweep_seconds,
    )


def profile_server(settings: Settings, port: int | None = None):
    from orchestration.realtime.flags import load_flags
    from orchestration.realtime.profiles import ProfileReader
    from orchestration.realtime.server import ProfileServer

    config = segment_config(settings)
    reader = ProfileReader(
        snapshot_path(settings),
        state_path(settings),
        config,
        {s.name: s.rule.text for s in config.segments},
    )
    address = (settings.serve_host, settings.serve_port if port is None else port)
    return ProfileServer(
        address,
        reader,
        load_flags(settings.flows_file, config),
        settings.read_keys,
        settings.cors_origins,
    )
