"""Helpers that turn result objects into Dagster metadata (the product surface of each run)."""

from datetime import date
from typing import Any

import dagster as dg
import pandas as pd


def preview(df: pd.DataFrame | None, rows: int = 10) -> dg.MetadataValue:
    if df is None or df.empty:
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(df.head(rows).to_markdown(index=False))


def table(rows: list[dict[str, Any]] | pd.DataFrame) -> dg.MetadataValue:
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    return preview(frame, rows=len(frame) or 1)


def scalar(value: Any) -> Any:
    """Metadata accepts plain str/int/float/bool; numpy scalars and None need converting."""
    if value is None:
        return "n/a"
    if hasattr(value, "item"):
        return value.item()
    return value


def rows_on(frame: pd.DataFrame, column: str, day: date) -> pd.DataFrame:
    """Rows of `frame` whose `column` falls on `day`, whether it holds dates or timestamps."""
    if frame.empty:
        return frame
    return frame[pd.to_datetime(frame[column]).dt.normalize() == pd.Timestamp(day)]
