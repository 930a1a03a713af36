"""Resources built from environment settings (see orchestration/settings.py and the README)."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from orchestration import warehouse
from orchestration.settings import Settings


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file. Open a connection per unit of work and close it."""

    duckdb_path: str

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Read-write: runs are in-process, and DuckDB refuses a read-only connection while
        the same process still holds a read-write handle on the file."""
        with warehouse.connect(self.duckdb_path) as conn:
            yield conn


class MLflowResource(dg.ConfigurableResource):
    """Where models are tracked and registered (dagster-mlflow is legacy; this is all we need)."""

    tracking_uri: str
    artifact_root: str


class SegflowSettingsResource(dg.ConfigurableResource):
    """Non-secret settings the assets need; secrets are read by the destination itself."""

    def settings(self) -> Settings:
        return Settings.from_env()


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings.from_env()
    return dg.Definitions(
        resources={
            "warehouse": WarehouseResource(duckdb_path=str(settings.duckdb_path)),
            "mlflow": MLflowResource(
                tracking_uri=settings.mlflow_tracking_uri,
                artifact_root=str(settings.mlflow_artifact_root),
            ),
            "segflow": SegflowSettingsResource(),
        }
    )
