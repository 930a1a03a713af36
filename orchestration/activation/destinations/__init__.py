"""Destination registry: adding a destination = one module + one line in REGISTRY."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import (
    DeliveryStats,
    Destination,
    DestinationAuthError,
    DestinationRefused,
    ItemResult,
    OutgoingItem,
)
from .csv_export import CsvDestination
from .customerio import CustomerIOConfigError, CustomerIODestination
from .http import RetryPolicy
from .intercom import IntercomDestination
from .launchdarkly import LaunchDarklyDestination
from .outbox import OutboxDestination

REGISTRY: dict[str, Callable[..., Destination]] = {
    "outbox": OutboxDestination.from_settings,
    "csv": CsvDestination.from_settings,
    "customerio": CustomerIODestination.from_settings,
    "launchdarkly": LaunchDarklyDestination.from_settings,
    "intercom": IntercomDestination.from_settings,
}


def build_destination(name: str, settings: Any, **overrides: Any) -> Destination:
    """Destination `name` configured from `Settings` (overrides go to its constructor)."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"SEGFLOW_DESTINATION={name!r}: unknown destination, expected one of "
            f"{', '.join(sorted(REGISTRY))}"
        ) from None
    return factory(settings, **overrides)


__all__ = [
    "REGISTRY",
    "build_destination",
    "Destination",
    "DestinationAuthError",
    "DestinationRefused",
    "LaunchDarklyDestination",
    "IntercomDestination",
    "DeliveryStats",
    "ItemResult",
    "OutgoingItem",
    "CustomerIODestination",
    "CustomerIOConfigError",
    "RetryPolicy",
    "OutboxDestination",
    "CsvDestination",
]
