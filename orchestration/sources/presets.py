"""Vendor presets for `sources.yml`: one line (`preset: NAME`) maps a vendor's export to a raw
table; any field can be overridden next to it. Each preset cites the vendor page its shape comes
from; where the vendor does not document a detail (marked UNVERIFIED), the preset accepts the
usual spellings and the fixture under tests/fixtures/vendors/ pins what we assumed.

Column rules are described in `orchestration/sources/mappings.py`; the presets themselves are
grouped by vendor family in `presets_segment.py`, `presets_analytics.py` and
`presets_records.py` (CRM and billing; Stripe's zero-decimal currencies are handled by
`minor_units`, see compiler.ZERO_DECIMAL).
"""

from __future__ import annotations

from typing import Any

from orchestration.sources.presets_analytics import ANALYTICS
from orchestration.sources.presets_records import RECORDS
from orchestration.sources.presets_segment import SEGMENT

PRESETS: dict[str, dict[str, Any]] = {**SEGMENT, **ANALYTICS, **RECORDS}
