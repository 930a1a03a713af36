"""All runtime settings, read from environment variables with the embedded defaults.

Plain Python (no Dagster import) so the CLI, the logic modules and the tests share one
source of truth. Every variable here is listed in the README's configuration table. The
value parsers live in orchestration/settings_values.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from contracts.models import DRIFT_PSI_THRESHOLD, KINDS
from contracts.raw import LATE_ARRIVAL_DAYS
from expectations.config import QualityConfig
from orchestration.settings_values import (
    DEMO_WINDOW_DAYS,
    DESTINATIONS,
    ENGINES,
    QUALITY_VARIABLES,
    SPARK_CATALOGS,
    SettingError,
    _bool,
    _business_events,
    _choice,
    _choices,
    _date,
    _env,
    _float,
    _horizon,
    _int,
    _keys,
    _origins,
    _partitions_start,
    _path,
    _port,
    _quality,
    _seconds,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

__all__ = [
    "DBT_PROJECT_DIR",
    "DEMO_WINDOW_DAYS",
    "DESTINATIONS",
    "ENGINES",
    "SPARK_CATALOGS",
    "PROJECT_ROOT",
    "QUALITY_VARIABLES",
    "SettingError",
    "Settings",
]


# The sync's circuit breaker and retries (activation.options.SyncOptions defaults to them).
SYNC_MAX_CHANGE_SHARE = 0.5
SYNC_MAX_ATTEMPTS = 5
SYNC_RATE_LIMIT = 100.0  # Customer.io requests/s


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with `Settings.from_env()`; never holds secrets in repr."""

    home: Path
    duckdb_path: Path
    source: str
    landing_dir: Path
    demo_dir: Path
    demo_truth_dir: Path
    partitions_start: date
    late_arrival_days: int
    mlflow_tracking_uri: str
    mlflow_artifact_root: Path
    dbt_target: str
    destination: str
    outbox_dir: Path
    customerio_region: str
    customerio_track_url: str
    sync_rate_limit: float
    sync_max_change_share: float
    sync_max_attempts: int
    report_dir: Path
    webserver_url: str
    freshness_max_age_hours: float
    landing_settle_seconds: float
    alert_webhook_url: str = field(default="", repr=False)
    # DuckDB limits for dbt and every in-process connection (orchestration.warehouse): the
    # defaults keep one run under 4 GiB of memory.
    duckdb_memory_limit: str = "3GB"
    duckdb_threads: int = 2
    # Threads for scoring's tree walks (ml.row_blocks): results do not depend on the count.
    scoring_threads: int = 1

    # Model labels (dbt_project.yml reads the same variables with the same defaults).
    churn_definition: str = "inactivity"
    churn_inactive_days: int = 28
    churn_horizon_days: int = 28
    cancel_grace_days: int = 7
    conversion_days: int = 28
    ltv_horizon_days: int = KINDS["ltv"].horizon_days  # LTV label: USD paid in the next N days
    # What counts as activity / a purchase (orchestration/business_events.py): () = every
    # event is activity; purchases from invoices, track calls or both.
    activity_events: tuple[str, ...] = ()
    purchase_source: str = "invoices"
    purchase_events: tuple[str, ...] = ()
    # Event and invoice timestamps before this date are quarantined (`timestamp_too_old`);
    # None: no floor beyond what the partitions allow.
    timestamp_floor: date | None = None
    # Segment rules, onboarding flows and behavioural triggers (orchestration/segments/).
    segments_file: Path = PROJECT_ROOT / "orchestration" / "segments" / "segments.yml"
    flows_file: Path = PROJECT_ROOT / "orchestration" / "segments" / "flows.yml"
    triggers_file: Path = PROJECT_ROOT / "orchestration" / "segments" / "triggers.yml"
    segment_max_change_share: float = 0.5  # segment size change day over day that warns
    experiment_min_sample: int = 100  # users per arm before an experiment gets a verdict
    # Send `segment_reasons` ("churn_risks: churn_band == 'high'; ...") as a person attribute.
    sync_segment_reasons: bool = False
    # feature/score PSI (above the noise floor) that warns
    drift_psi_threshold: float = DRIFT_PSI_THRESHOLD
    mlflow_ui_url: str = "http://127.0.0.1:5000"  # base of MLflow links in Dagster metadata
    # Where `segflow report --serve` serves the report (127.0.0.1 only); Dagster's report link.
    report_url: str = "http://127.0.0.1:8765"
    schedules_running: bool = False  # schedules' default state in a new Dagster instance
    # dbt steps run in the run's own process (dbtRunner, parsed once): no dbt start-up per step
    # (opt-in: the subprocess per step is the verified default, README).
    dbt_in_process: bool = True
    # How often a STARTED run whose process is gone is looked for (and failed, pool freed).
    stale_run_check_seconds: float = 30.0
    # Activation beyond one destination (orchestration/activation/README.md). Secrets
    # (LAUNCHDARKLY_ACCESS_TOKEN, INTERCOM_ACCESS_TOKEN) are read by the destinations only.
    destinations: tuple[str, ...] = ("outbox",)
    launchdarkly_base_url: str = "https://app.launchdarkly.com"
    launchdarkly_project: str = "default"
    launchdarkly_environment: str = "production"
    launchdarkly_context_kind: str = "user"
    launchdarkly_rate_limit: float = 10.0
    intercom_base_url: str = "https://api.intercom.io"
    intercom_create_contacts: bool = False
    intercom_rate_limit: float = 166.0  # 10,000 calls/min per app
    privacy_raw_policy: str = "redact"
    # Real time (orchestration/realtime/): the stream broker, the collector and the profile/flag
    # API. Keys are secrets (comma-separated lists), kept out of repr and logs.
    redis_url: str = "redis://127.0.0.1:6379/0"
    stream_key: str = "segflow:events"
    realtime_dir: Path = PROJECT_ROOT / "data" / "realtime"
    collect_host: str = "127.0.0.1"
    collect_port: int = 8017
    serve_host: str = "127.0.0.1"
    serve_port: int = 8016
    write_keys: tuple[str, ...] = field(default=(), repr=False)
    read_keys: tuple[str, ...] = field(default=(), repr=False)
    cors_origins: tuple[str, ...] = ()  # browser origins for collect and serve (default none)
    session_sweep_seconds: float = 30.0  # consumer: re-evaluate open sessions (0: off)
    # Data-quality thresholds (SEGFLOW_DQ_*, QUALITY_VARIABLES); the wiring adds the tracking
    # plan's accepted values (orchestration/defs/quality.py).
    quality: QualityConfig = field(default_factory=QualityConfig)
    # The engine (SEGFLOW_ENGINE): duckdb (one machine) or spark (dbt-spark, pyspark). It picks
    # the dbt target (unless SEGFLOW_DBT_TARGET names another), the segment SQL dialect, the
    # scoring path and the reads. Spark's files live under spark_dir (SEGFLOW_SPARK_DIR).
    engine: str = "duckdb"
    spark_dir: Path = PROJECT_ROOT / "data" / "spark"
    spark_master: str = "local[*]"
    # SEGFLOW_SPARK_SMALL_DATA: pyspark local on thousands of rows (tests, demos): no whole-stage
    # code generation, no adaptive execution, the JVM's quick JIT tier. Each query then skips
    # compiling Java it runs once; slower on millions of rows, so off by default.
    spark_small_data: bool = False
    # SEGFLOW_SPARK_CATALOG: hive (an embedded Derby metastore kept between runs) or in-memory
    # (no Derby: the catalog lives as long as the run's process; a fresh SEGFLOW_SPARK_DIR per
    # run, e.g. tests and one-off backfills).
    spark_catalog: str = "hive"

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(_env("SEGFLOW_HOME", str(PROJECT_ROOT / "data"))).resolve()
        mlflow_dir = home / "mlflow"
        region = _choice("CUSTOMERIO_REGION", "us", ("us", "eu"))
        late_arrival_days = _int("SEGFLOW_LATE_ARRIVAL_DAYS", LATE_ARRIVAL_DAYS)
        timestamp_floor = (
            _date("SEGFLOW_TIMESTAMP_FLOOR", "") if _env("SEGFLOW_TIMESTAMP_FLOOR", "") else None
        )
        default_track = (
            "https://track.customer.io" if region == "us" else "https://track-eu.customer.io"
        )
        engine = _choice("SEGFLOW_ENGINE", cls.engine, ENGINES)
        return cls(
            home=home,
            engine=engine,
            spark_dir=_path("SEGFLOW_SPARK_DIR", home / "spark"),
            spark_master=_env("SEGFLOW_SPARK_MASTER", cls.spark_master),
            spark_small_data=_bool("SEGFLOW_SPARK_SMALL_DATA", cls.spark_small_data),
            spark_catalog=_choice("SEGFLOW_SPARK_CATALOG", cls.spark_catalog, SPARK_CATALOGS),
            duckdb_path=Path(_env("SEGFLOW_DUCKDB_PATH", str(home / "warehouse.duckdb"))).resolve(),
            source=_choice("SEGFLOW_SOURCE", "demo", ("demo", "files")),
            landing_dir=Path(_env("SEGFLOW_LANDING_DIR", str(home / "landing"))).resolve(),
            demo_dir=Path(_env("SEGFLOW_DEMO_DIR", str(home / "demo" / "landing"))).resolve(),
            demo_truth_dir=Path(
                _env("SEGFLOW_DEMO_TRUTH_DIR", str(home / "demo" / "truth"))
            ).resolve(),
            partitions_start=_partitions_start(home),
            late_arrival_days=late_arrival_days,
            mlflow_tracking_uri=_env(
                "MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_dir / 'mlflow.db'}"
            ),
            mlflow_artifact_root=Path(
                _env("SEGFLOW_MLFLOW_ARTIFACTS", str(mlflow_dir / "artifacts"))
            ),
            dbt_target=_env("SEGFLOW_DBT_TARGET", engine),
            destination=_choice("SEGFLOW_DESTINATION", "outbox", DESTINATIONS),
            outbox_dir=Path(_env("SEGFLOW_OUTBOX_DIR", str(home / "outbox"))).resolve(),
            customerio_region=region,
            customerio_track_url=_env("CUSTOMERIO_TRACK_URL", default_track).rstrip("/"),
            sync_rate_limit=_float("SEGFLOW_SYNC_RATE_LIMIT", SYNC_RATE_LIMIT),
            sync_max_change_share=_float("SEGFLOW_SYNC_MAX_CHANGE_SHARE", SYNC_MAX_CHANGE_SHARE),
            sync_max_attempts=_int("SEGFLOW_SYNC_MAX_ATTEMPTS", SYNC_MAX_ATTEMPTS),
            sync_segment_reasons=_bool("SEGFLOW_SYNC_SEGMENT_REASONS", cls.sync_segment_reasons),
            churn_definition=_choice(
                "SEGFLOW_CHURN_DEFINITION", cls.churn_definition, ("inactivity", "cancellation")
            ),
            churn_inactive_days=_int("SEGFLOW_CHURN_INACTIVE_DAYS", cls.churn_inactive_days),
            churn_horizon_days=_horizon("SEGFLOW_CHURN_HORIZON_DAYS", cls.churn_horizon_days),
            cancel_grace_days=_int("SEGFLOW_CANCEL_GRACE_DAYS", cls.cancel_grace_days),
            conversion_days=_int("SEGFLOW_CONVERSION_DAYS", cls.conversion_days),
            ltv_horizon_days=_horizon("SEGFLOW_LTV_HORIZON_DAYS", cls.ltv_horizon_days),
            **_business_events(),
            report_dir=Path(_env("SEGFLOW_REPORT_DIR", str(home / "report"))).resolve(),
            webserver_url=_env("SEGFLOW_WEBSERVER_URL", "http://127.0.0.1:3000").rstrip("/"),
            freshness_max_age_hours=_float("SEGFLOW_FRESHNESS_MAX_AGE_HOURS", 30.0),
            landing_settle_seconds=_float("SEGFLOW_LANDING_SETTLE_SECONDS", 60.0),
            alert_webhook_url=_env("SEGFLOW_ALERT_WEBHOOK_URL", cls.alert_webhook_url),
            duckdb_memory_limit=_env("SEGFLOW_DUCKDB_MEMORY_LIMIT", cls.duckdb_memory_limit),
            duckdb_threads=_int("SEGFLOW_DUCKDB_THREADS", min(os.cpu_count() or 1, 4)),
            scoring_threads=_int("SEGFLOW_SCORING_THREADS", min(os.cpu_count() or 1, 4)),
            segments_file=_path("SEGFLOW_SEGMENTS_FILE", cls.segments_file),
            flows_file=_path("SEGFLOW_FLOWS_FILE", cls.flows_file),
            triggers_file=_path("SEGFLOW_TRIGGERS_FILE", cls.triggers_file),
            segment_max_change_share=_float(
                "SEGFLOW_SEGMENT_MAX_CHANGE_SHARE", cls.segment_max_change_share
            ),
            experiment_min_sample=_int("SEGFLOW_EXPERIMENT_MIN_SAMPLE", cls.experiment_min_sample),
            drift_psi_threshold=_float("SEGFLOW_DRIFT_PSI_THRESHOLD", cls.drift_psi_threshold),
            mlflow_ui_url=_env("SEGFLOW_MLFLOW_UI_URL", cls.mlflow_ui_url).rstrip("/"),
            report_url=_env("SEGFLOW_REPORT_URL", cls.report_url).rstrip("/"),
            schedules_running=_bool("SEGFLOW_SCHEDULES_RUNNING", cls.schedules_running),
            dbt_in_process=_bool("SEGFLOW_DBT_IN_PROCESS", cls.dbt_in_process),
            stale_run_check_seconds=_float(
                "SEGFLOW_STALE_RUN_CHECK_SECONDS", cls.stale_run_check_seconds
            ),
            destinations=_choices(
                "SEGFLOW_DESTINATIONS",
                _choice("SEGFLOW_DESTINATION", "outbox", DESTINATIONS),
                DESTINATIONS,
            ),
            launchdarkly_base_url=_env("LAUNCHDARKLY_BASE_URL", cls.launchdarkly_base_url).rstrip(
                "/"
            ),
            launchdarkly_project=_env("LAUNCHDARKLY_PROJECT", cls.launchdarkly_project),
            launchdarkly_environment=_env("LAUNCHDARKLY_ENVIRONMENT", cls.launchdarkly_environment),
            launchdarkly_context_kind=_env(
                "SEGFLOW_LAUNCHDARKLY_CONTEXT_KIND", cls.launchdarkly_context_kind
            ),
            launchdarkly_rate_limit=_float(
                "SEGFLOW_LAUNCHDARKLY_RATE_LIMIT", cls.launchdarkly_rate_limit
            ),
            intercom_base_url=_env("INTERCOM_BASE_URL", cls.intercom_base_url).rstrip("/"),
            intercom_create_contacts=_bool(
                "SEGFLOW_INTERCOM_CREATE_CONTACTS", cls.intercom_create_contacts
            ),
            intercom_rate_limit=_float("SEGFLOW_INTERCOM_RATE_LIMIT", cls.intercom_rate_limit),
            privacy_raw_policy=_choice(
                "SEGFLOW_PRIVACY_RAW_POLICY", cls.privacy_raw_policy, ("redact", "keep")
            ),
            redis_url=_env("SEGFLOW_REDIS_URL", cls.redis_url),
            stream_key=_env("SEGFLOW_STREAM_KEY", cls.stream_key),
            realtime_dir=_path("SEGFLOW_REALTIME_DIR", home / "realtime"),
            collect_host=_env("SEGFLOW_COLLECT_HOST", cls.collect_host),
            collect_port=_port("SEGFLOW_COLLECT_PORT", cls.collect_port),
            serve_host=_env("SEGFLOW_SERVE_HOST", cls.serve_host),
            serve_port=_port("SEGFLOW_SERVE_PORT", cls.serve_port),
            write_keys=_keys("SEGFLOW_WRITE_KEYS"),
            read_keys=_keys("SEGFLOW_READ_KEYS"),
            cors_origins=_origins("SEGFLOW_CORS_ORIGINS"),
            session_sweep_seconds=_seconds(
                "SEGFLOW_SESSION_SWEEP_SECONDS", cls.session_sweep_seconds
            ),
            timestamp_floor=timestamp_floor,
            quality=_quality(late_arrival_days, timestamp_floor),
        )

    @property
    def source_dir(self) -> Path:
        """Landing folder the ingest reads: the generated demo folder or the user's files."""
        return self.demo_dir if self.source == "demo" else self.landing_dir

    @property
    def spark_sources_dir(self) -> Path:
        """Parquet folders dbt on Spark reads as sources: raw/<table>/, main/user_scores/..."""
        return self.spark_dir / "sources"

    def spark_env(self) -> dict[str, str]:
        """Environment variables profiles.yml's spark target reads (absolute paths)."""
        return {
            "SEGFLOW_SPARK_MASTER": self.spark_master,
            "SEGFLOW_SPARK_SOURCES_DIR": str(self.spark_sources_dir),
            "SEGFLOW_SPARK_WAREHOUSE": str(self.spark_dir / "warehouse"),
            "SEGFLOW_SPARK_METASTORE": str(self.spark_dir / "metastore_db"),
            "SEGFLOW_SPARK_CATALOG": self.spark_catalog,
            **self.spark_tuning_env(),
        }

    def spark_tuning_env(self) -> dict[str, str]:
        """The spark target's engine tuning, as profiles.yml reads it: SEGFLOW_SPARK_SMALL_DATA's,
        and a local master's (no cluster to list files or read job markers: the driver lists
        partition folders itself instead of one Spark task per folder, and writes no _SUCCESS
        file, one file and one forked `chmod` less per write; a cluster keeps Spark's defaults)."""
        small = self.spark_small_data
        local = self.spark_master.startswith("local")
        return {
            "SEGFLOW_SPARK_CODEGEN": str(not small).lower(),
            "SEGFLOW_SPARK_ADAPTIVE": str(not small).lower(),
            "SEGFLOW_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
            if small
            else "",
            "SEGFLOW_SPARK_LISTING_THRESHOLD": "100000" if local else "32",
            "SEGFLOW_SPARK_SUCCESS_MARKERS": str(not local).lower(),
        }

    def ensure_dirs(self) -> None:
        for path in (
            self.home,
            self.duckdb_path.parent,
            self.outbox_dir,
            self.mlflow_artifact_root,
        ):
            path.mkdir(parents=True, exist_ok=True)
