"""How setting values are read and checked: one parser per kind of value (number, port,
date, choice, origin list...), each raising `SettingError` naming the variable.

Split from orchestration/settings.py (the `Settings` dataclass) to keep both small; import
names from orchestration.settings, which re-exports the public ones.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from expectations.config import QualityConfig, QualityConfigError  # a plain dataclass (stdlib)

ENGINES = ("duckdb", "spark")
SPARK_CATALOGS = ("hive", "in-memory")


class SettingError(ValueError):
    """A setting has a value segflow cannot use; the message names the variable."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _number(name: str, default: float, kind: type, expected: str):
    raw = _env(name, str(default))
    try:
        return kind(raw)
    except ValueError as exc:
        raise SettingError(f"{name}={raw!r}: expected {expected}") from exc


def _float(name: str, default: float) -> float:
    return _number(name, default, float, "a number")


def _seconds(name: str, default: float) -> float:
    value = _float(name, default)
    if value < 0:
        raise SettingError(f"{name}={value:g}: expected seconds >= 0 (0: off)")
    return value


def _int(name: str, default: int) -> int:
    return _number(name, default, int, "an integer")


def _horizon(name: str, default: int) -> int:
    """A label horizon in days: 1..730 (whether the loaded history covers it is checked when
    a model trains: no covered snapshot stops training with a message naming `name`)."""
    value = _int(name, default)
    if not 1 <= value <= 730:
        raise SettingError(f"{name}={value}: expected a number of days from 1 to 730")
    return value


def _business_events() -> dict:
    """Activity and purchase events, checked against the tracking plan."""
    from orchestration import business_events as be

    try:
        source = be.purchase_source()
        return {
            "activity_events": be.activity_events(),
            "purchase_source": source,
            "purchase_events": be.purchase_events(source),
        }
    except be.BusinessEventError as exc:
        raise SettingError(str(exc)) from exc


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default).lower()
    if value not in allowed:
        raise SettingError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _choices(name: str, default: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Comma list of distinct choices, in the given order."""
    values = [v.strip().lower() for v in _env(name, default).split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise SettingError(
            f"{name}={_env(name, default)!r}: expected a comma list of {', '.join(allowed)}"
        )
    return tuple(dict.fromkeys(values))


DESTINATIONS = ("outbox", "csv", "customerio", "launchdarkly", "intercom")


def _date(name: str, default: str) -> date:
    raw = _env(name, default)
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise SettingError(f"{name}={raw!r}: expected a date YYYY-MM-DD") from exc


# The default `segflow run` window (days ending yesterday): where demo data starts.
DEMO_WINDOW_DAYS = 120


def _partitions_start(home: Path) -> date:
    """SEGFLOW_PARTITIONS_START, else the first day the source's landing folder holds
    (`<table>/dt=YYYY-MM-DD/`), else the start of the default demo window: the UI offers the
    days there is data for, not every day since an arbitrary date."""
    if _env("SEGFLOW_PARTITIONS_START", ""):
        return _date("SEGFLOW_PARTITIONS_START", "")
    source = _env("SEGFLOW_SOURCE", "demo")
    folder = Path(
        _env("SEGFLOW_DEMO_DIR", str(home / "demo" / "landing"))
        if source == "demo"
        else _env("SEGFLOW_LANDING_DIR", str(home / "landing"))
    )
    days = []
    for path in folder.glob("*/dt=*") if folder.is_dir() else ():
        try:
            days.append(date.fromisoformat(path.name.removeprefix("dt=")))
        except ValueError:
            continue  # not a day folder; the source check reports it
    if days:
        return min(days)
    return date.today() - timedelta(days=DEMO_WINDOW_DAYS)


def _bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name}={raw!r}: expected 1/true/yes or 0/false/no")


def _path(name: str, default: Path) -> Path:
    return Path(_env(name, str(default))).resolve()


def _port(name: str, default: int) -> int:
    port = _int(name, default)
    if not 0 <= port <= 65535:
        raise SettingError(f"{name}={port}: expected a port 0..65535 (0: any free port)")
    return port


def _origins(name: str) -> tuple[str, ...]:
    """Browser origins allowed by CORS: `*` or `scheme://host[:port]`, comma-separated."""
    origins = tuple(o.strip().rstrip("/") for o in os.environ.get(name, "").split(",") if o.strip())
    for origin in origins:
        scheme, _, rest = origin.partition("://")
        if origin != "*" and (scheme not in ("http", "https") or not rest or "/" in rest):
            raise SettingError(
                f"{name}: {origin!r} is not an origin; expected * or scheme://host[:port] "
                "(e.g. https://app.example.com), comma-separated"
            )
    return origins


def _keys(name: str) -> tuple[str, ...]:
    """A comma-separated list of API keys (secrets: the message never shows them)."""
    return tuple(k.strip() for k in os.environ.get(name, "").split(",") if k.strip())


# Quality thresholds: QualityConfig field -> variable; the defaults are QualityConfig's own.
# late_arrival_days and timestamp_floor are the loader's settings, shared (read once below).
QUALITY_VARIABLES = {
    "duplicate_warn_share": "SEGFLOW_DQ_DUPLICATE_WARN_SHARE",
    "max_quarantine_share": "SEGFLOW_QUARANTINE_MAX_SHARE",
    "quarantine_min_rows": "SEGFLOW_DQ_QUARANTINE_MIN_ROWS",
    "row_count_drop_share": "SEGFLOW_DQ_ROW_COUNT_DROP_SHARE",
    "row_count_history_days": "SEGFLOW_DQ_ROW_COUNT_HISTORY_DAYS",
    "row_count_min_history": "SEGFLOW_DQ_ROW_COUNT_MIN_HISTORY",
    "row_count_min_baseline": "SEGFLOW_DQ_ROW_COUNT_MIN_BASELINE",
    "future_tolerance_minutes": "SEGFLOW_DQ_FUTURE_TOLERANCE_MINUTES",
    "max_amount": "SEGFLOW_DQ_MAX_AMOUNT",
    "max_property_bytes": "SEGFLOW_DQ_MAX_PROPERTY_BYTES",
    "max_session_minutes": "SEGFLOW_DQ_MAX_SESSION_MINUTES",
    "features_min_mean_events_28d": "SEGFLOW_DQ_FEATURES_MIN_MEAN_EVENTS_28D",
    "features_max_mean_events_28d": "SEGFLOW_DQ_FEATURES_MAX_MEAN_EVENTS_28D",
    "sample_size": "SEGFLOW_DQ_SAMPLE_SIZE",
    "gx_keep_results": "SEGFLOW_DQ_GX_KEEP_RESULTS",
    "chunk_days": "SEGFLOW_DQ_CHUNK_DAYS",
}
_SHARED_QUALITY = {"late_arrival_days": "SEGFLOW_LATE_ARRIVAL_DAYS"}


def _quality(late_arrival_days: int, timestamp_floor: date | None) -> QualityConfig:
    """QualityConfig from the SEGFLOW_DQ_* variables; an error names the variable."""
    defaults = QualityConfig()
    values = {
        name: (_int if isinstance(getattr(defaults, name), int) else _float)(
            var, getattr(defaults, name)
        )
        for name, var in QUALITY_VARIABLES.items()
    }
    try:
        return replace(
            defaults, **values, late_arrival_days=late_arrival_days, timestamp_floor=timestamp_floor
        )
    except QualityConfigError as exc:
        var = {**QUALITY_VARIABLES, **_SHARED_QUALITY}[exc.field]
        raise SettingError(f"{var}={exc.value}: expected {exc.expected}") from exc
