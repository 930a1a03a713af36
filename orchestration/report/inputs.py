"""What the report reads: the warehouse (read-only) and what the caller gathered from Dagster
and MLflow (no Dagster import here), plus what a build returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from contracts.raw import RAW_TABLES  # noqa: F401  (the report's pages import it from here)


@dataclass
class RunInfo:
    """One Dagster run as the report shows it (filled by the caller)."""

    run_id: str
    job: str
    status: str
    started: datetime | None
    finished: datetime | None
    partition: str = ""
    failed_steps: str = ""


@dataclass
class ModelVersionInfo:
    """One registered model version with its holdout metrics and the baseline's."""

    model: str
    version: str
    created: datetime | None
    aliases: str
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> metrics


@dataclass
class ReportInputs:
    runs: list[RunInfo] = field(default_factory=list)
    model_versions: list[ModelVersionInfo] = field(default_factory=list)
    drift: pd.DataFrame | None = None  # the feature_drift check's table: column, psi, drifting
    drift_note: str = ""  # how the drift was computed (reference and current populations)
    freshness: dict[str, datetime] = field(default_factory=dict)  # asset -> last update (UTC)
    freshness_max_age_hours: float | None = None  # the freshness policy's FAIL age
    checks: pd.DataFrame | None = None  # asset, check, severity, passed, message, when


@dataclass
class ReportResult:
    out_dir: Path
    pages: dict[str, int]  # page file -> charts on it
    missing: dict[str, list[str]]

    @property
    def index(self) -> Path:
        return self.out_dir / "index.html"

    @property
    def charts(self) -> int:
        return sum(self.pages.values())


class Warehouse:
    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self._tables = {
            f"{s}.{t}"
            for s, t in conn.execute(
                "select table_schema, table_name from information_schema.tables"
            ).fetchall()
        }

    def has(self, *names: str) -> bool:
        return all((n if "." in n else f"main.{n}") in self._tables for n in names)

    def df(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.conn.execute(sql, params or []).df()

    def latest(self, table: str, column: str) -> str:
        """SQL literal of the newest `column` (a date) in main.`table`, NULL when empty: a
        literal lets DuckDB skip the other days' row groups, `= (select max(...))` does not
        (user_scores / user_segments hold 11M rows at 100k users x 180 days)."""
        newest = self.conn.execute(f"select max({column}) from main.{table}").fetchone()[0]
        return "NULL" if newest is None else f"date '{pd.Timestamp(newest).date().isoformat()}'"

    def data_start(self) -> date | None:
        """The first day the loaded data covers (the earliest event partition): before it,
        nobody's activity was observed."""
        if not self.has("raw.events"):
            return None
        first = self.conn.execute("select min(_partition_date) from raw.events").fetchone()[0]
        return pd.Timestamp(first).date() if first is not None else None


def nonempty(frame: pd.DataFrame | None) -> bool:
    return frame is not None and len(frame) > 0


def as_days(frame: pd.DataFrame, col: str) -> pd.DataFrame:
    frame = frame.copy()
    frame[col] = pd.to_datetime(frame[col])
    return frame
