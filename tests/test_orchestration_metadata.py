"""Metadata helpers: a day's rows are found whatever type the date column has."""

from __future__ import annotations

from datetime import date

import pandas as pd

from orchestration.defs.metadata import rows_on


def test_rows_on_matches_dates_and_timestamps() -> None:
    day = date(2026, 8, 2)
    stamps = pd.DataFrame(
        {"segment_date": pd.to_datetime(["2026-08-01", "2026-08-02"]), "n": [1, 2]}
    )
    dates = stamps.assign(segment_date=stamps["segment_date"].dt.date)
    assert rows_on(stamps, "segment_date", day)["n"].tolist() == [2]
    assert rows_on(dates, "segment_date", day)["n"].tolist() == [2]
    assert rows_on(stamps.iloc[:0], "segment_date", day).empty
