"""The oversize-value rule: one attribute over a destination's value limit never holds back the
person's other attributes.

Rule (README "Oversize values"): a text value longer than the limit (UTF-8 bytes) is cut at
the last "," that fits (reason codes and segment lists stay whole items), else at the last
whole character, and sent truncated; any other value (list, object) that does not fit is
dropped, i.e. sent as "" so the destination does not keep a stale earlier value. Both are
counted per run (`attributes_truncated`, `attributes_dropped`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class OversizeCounts:
    truncated: int = 0
    dropped: int = 0
    by_attribute: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, truncated: bool) -> None:
        if truncated:
            self.truncated += 1
        else:
            self.dropped += 1
        self.by_attribute[name] = self.by_attribute.get(name, 0) + 1


def truncate_utf8(text: str, limit: int) -> str:
    """Longest prefix of `text` within `limit` UTF-8 bytes, preferring to end before a ","."""
    cut = text.encode("utf-8")[:limit].decode("utf-8", "ignore")
    comma = cut.rfind(",")
    return cut[:comma] if comma > 0 else cut


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if value is None or isinstance(value, bool | int | float):
        return 0
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))


def fit_attributes(
    attributes: dict[str, Any], limit: int | None, counts: OversizeCounts
) -> dict[str, Any]:
    """`attributes` with every value over `limit` bytes truncated or dropped (see the rule);
    the same dict object when nothing is over (the common case costs no copy)."""
    if not limit:
        return attributes
    over = [
        name
        for name, value in attributes.items()
        if not (isinstance(value, str) and len(value) * 4 <= limit) and _size(value) > limit
    ]
    if not over:
        return attributes
    fitted = dict(attributes)
    for name in over:
        value = fitted[name]
        if isinstance(value, str):
            fitted[name] = truncate_utf8(value, limit)
            counts.count(name, truncated=True)
        else:
            fitted[name] = ""
            counts.count(name, truncated=False)
    return fitted
