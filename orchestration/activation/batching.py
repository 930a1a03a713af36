"""Pack items into request bodies that respect the destination's byte and item limits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .destinations.base import OutgoingItem

_ENVELOPE_BYTES = len(b'{"batch":[]}')


def pack_batches(
    items: Iterable[OutgoingItem], max_items: int, max_bytes: int
) -> Iterator[list[OutgoingItem]]:
    """Greedy, order-preserving packing: a batch closes when the next item would exceed
    `max_items` or make the JSON body `{"batch":[...]}` larger than `max_bytes`."""
    if max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    batch: list[OutgoingItem] = []
    size = _ENVELOPE_BYTES
    for item in items:
        extra = len(item.encoded) + (1 if batch else 0)
        if batch and (len(batch) >= max_items or size + extra > max_bytes):
            yield batch
            batch, size = [], _ENVELOPE_BYTES
            extra = len(item.encoded)
        batch.append(item)
        size += extra
    if batch:
        yield batch
