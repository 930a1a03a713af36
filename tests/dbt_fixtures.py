"""Small raw data sets in the docs/contracts.md raw schema, and helpers to run the real dbt CLI.

The rows come from a seeded, hand-rolled simulation (not the demo generator) so the dbt tests
control the awkward cases directly: pre-signup anonymous page views identified later, events
that arrive days late (received in a later partition), duplicate message ids, sessions that
run across midnight, plan changes in the CRM, invoices in several currencies. `load_raw` writes
any subset of partitions, so a test can load day by day like the daily ingest does.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from contracts import tracking_plan
from expectations import tables as contract
from orchestration import run_window
from orchestration.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
DBT_BIN = Path(sys.executable).parent / "dbt"
# The incremental event models, in build order: the run window and the consumed-load markers
# (dbt_project/macros/consumed_loads.sql) apply to these.
EVENT_MODELS = (
    "stg_events__events",
    "int_identity_map",
    "int_events_stitched",
    "int_sessions",
    "int_user_activity_daily",
)

# The raw tables as the contract declares them (expectations/tables.py); JSON stored as text.
_RAW = {
    t: contract.TABLES[f"raw.{t}"].columns for t in ("crm_contacts", "events", "billing_invoices")
}
COLUMNS = {t: [c for c in cols if c not in contract.META_COLUMNS] for t, cols in _RAW.items()}
RAW_DDL = {
    t: ", ".join(f'"{c}" {"VARCHAR" if cols[c] == "JSON" else cols[c]}' for c in COLUMNS[t])
    for t, cols in _RAW.items()
}
META_DDL = ", ".join(f"{c} {t}" for c, t in contract.META_COLUMNS.items())
INDUSTRIES = ("software", "finance", "healthcare", "retail", "education")
SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
COUNTRIES = ("US", "GB", "DE", "FR", "IN")
ROLES = ("engineer", "analyst", "manager", "founder")
CHANNELS = ("organic", "paid_search", "referral", "partner")
CURRENCIES = ("USD", "EUR", "GBP")


@dataclass
class RawData:
    """Rows per table, each row a dict with the contract columns plus `_partition_date`."""

    start: date
    days: int
    tables: dict[str, list[dict]] = field(default_factory=lambda: {t: [] for t in RAW_DDL})

    @property
    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


def received_event(message_id: str, kind: str, name: str | None, user: str, ts: datetime) -> dict:
    """One identified raw.events row received 5 s after it happened, in that day's partition
    (the rows tests plant by hand)."""
    return {
        "message_id": message_id,
        "type": kind,
        "event": name,
        "user_id": user,
        "anonymous_id": None,
        "timestamp": ts,
        "received_at": ts + timedelta(seconds=5),
        "properties": "{}",
        "context": "{}",
        "_partition_date": ts.date(),
    }


def simulate(
    users: int = 120, days: int = 35, seed: int = 7, start: date = date(2025, 3, 3)
) -> RawData:
    """A seeded product simulation with the edge cases listed in the module docstring."""
    plan = tracking_plan.load()
    rng = random.Random(seed)
    data = RawData(start, days)
    end = datetime.combine(start + timedelta(days=days), datetime.min.time())
    msg = 0

    def event(
        kind: str,
        name: str | None,
        user: str | None,
        anon: str | None,
        ts: datetime,
        delay_days: int = 0,
    ) -> None:
        nonlocal msg
        msg += 1
        received = ts + timedelta(seconds=rng.randint(1, 90), days=delay_days)
        if received >= end:
            received, delay_days = ts + timedelta(seconds=1), 0
        if received >= end:
            return
        row = {
            "message_id": f"m{seed}-{msg:07d}",
            "type": kind,
            "event": name,
            "user_id": user,
            "anonymous_id": anon,
            "timestamp": ts,
            "received_at": received,
            "properties": json.dumps({"n": msg % 5}),
            "context": "{}",
            "_partition_date": received.date(),
        }
        data.tables["events"].append(row)
        if rng.random() < 0.02:  # a Segment retry: same message, received later
            dup = dict(row, received_at=received + timedelta(hours=rng.randint(1, 30)))
            if dup["received_at"] < end:
                dup["_partition_date"] = dup["received_at"].date()
                data.tables["events"].append(dup)

    milestone_events = [events[0] for _, events in plan.milestones]
    for u in range(users):
        uid, anon = f"u{u:04d}", f"a{u:04d}"
        signup_day = rng.randrange(0, days - 3)
        signup_at = datetime.combine(
            start + timedelta(days=signup_day), datetime.min.time()
        ) + timedelta(hours=rng.randint(7, 22), minutes=rng.randint(0, 59))
        currency = rng.choice(CURRENCIES)
        base = {
            "user_id": uid,
            "email": f"{uid}@example.com",
            "signup_at": signup_at,
            "company": f"c{u % 40}",
            "industry": rng.choice(INDUSTRIES),
            "company_size": rng.choice(SIZES),
            "country": rng.choice(COUNTRIES),
            "role": rng.choice(ROLES),
            "acquisition_channel": rng.choice(CHANNELS),
        }
        current_plan = rng.choice(("free", "trial"))

        def contact(at: datetime, plan_name: str, base: dict = base) -> None:
            data.tables["crm_contacts"].append(
                dict(base, plan=plan_name, updated_at=at, _partition_date=at.date())
            )

        contact(signup_at, current_plan)
        # Anonymous browsing before signup (some of it days earlier), then identify at signup.
        if rng.random() < 0.7:
            for k in range(rng.randint(1, 4)):
                ts = signup_at - timedelta(
                    days=rng.choice((0, 0, 1, 2, 5)), minutes=rng.randint(5, 600)
                )
                if ts >= datetime.combine(start, datetime.min.time()):
                    event("page", "Pricing" if k % 2 else "Home", None, anon, ts)
        event("identify", None, uid, anon, signup_at)
        event("track", milestone_events[0], uid, None, signup_at + timedelta(seconds=30))
        engagement = rng.uniform(0.15, 0.9)
        next_milestone = 1
        upgraded_at: datetime | None = None
        for d in range(signup_day, days):
            day0 = datetime.combine(start + timedelta(days=d), datetime.min.time())
            if d > signup_day and rng.random() > engagement:
                continue
            if d > signup_day + 10 and rng.random() < 0.04:
                engagement *= 0.3  # disengages
            for _ in range(rng.randint(1, 2)):
                # Some sessions start just before midnight and run into the next day.
                hour = 23 if rng.random() < 0.08 else rng.randint(6, 21)
                ts = day0 + timedelta(hours=hour, minutes=rng.randint(0, 50))
                if d == signup_day and ts <= signup_at:
                    ts = signup_at + timedelta(minutes=2)
                for _ in range(rng.randint(1, 6)):
                    if ts >= end:
                        break
                    late = rng.choice((1, 2)) if rng.random() < 0.04 else 0
                    if rng.random() < 0.3:
                        event("page", "Dashboard", uid, anon, ts, late)
                    elif next_milestone < len(milestone_events) and rng.random() < 0.25:
                        event("track", milestone_events[next_milestone], uid, anon, ts, late)
                        next_milestone += 1
                    else:
                        event(
                            "track",
                            rng.choice(plan.core_features + ("Signed In",)),
                            uid,
                            anon,
                            ts,
                            late,
                        )
                    # Gaps of up to 40 minutes: some sessions split, a few at exactly 30 minutes.
                    gap = rng.choice((1, 3, 7, 12, 20, 30, 31, 40))
                    ts += timedelta(minutes=gap)
            if (
                upgraded_at is None
                and current_plan != "pro"
                and next_milestone >= 3
                and rng.random() < 0.08
            ):
                upgraded_at = day0 + timedelta(hours=12)
                current_plan = "pro"
                event("track", plan.upgrade_events[0], uid, None, upgraded_at)
                contact(upgraded_at, "pro")
            if d > signup_day + 5 and rng.random() < 0.01 and engagement > 0:
                event("track", plan.support_events[0], uid, None, day0 + timedelta(hours=10))
        if upgraded_at is not None:
            period = upgraded_at
            k = 0
            while period < end:
                k += 1
                amount = 49.0 if rng.random() < 0.9 else 99.0
                status = "refunded" if rng.random() < 0.05 else "paid"
                data.tables["billing_invoices"].append(
                    {
                        "invoice_id": f"inv-{uid}-{k}",
                        "user_id": uid,
                        "amount": amount,
                        "currency": currency,
                        "status": status,
                        "period_start": period,
                        "period_end": period + timedelta(days=30),
                        "paid_at": period,
                        "_partition_date": period.date(),
                    }
                )
                period += timedelta(days=30)
            if rng.random() < 0.3:
                cancel_at = upgraded_at + timedelta(days=rng.randint(5, 20))
                if cancel_at < end:
                    event("track", plan.cancel_events[0], uid, None, cancel_at)
                    contact(cancel_at, "free")
    return data


def create_raw_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("create schema if not exists raw")
    for table, ddl in RAW_DDL.items():
        conn.execute(f"create table if not exists raw.{table} ({ddl}, {META_DDL})")
        for column in COLUMNS[table]:  # a column the contract gained since the table was made
            kind = "VARCHAR" if _RAW[table][column] == "JSON" else _RAW[table][column]
            conn.execute(f'alter table raw.{table} add column if not exists "{column}" {kind}')


# DuckDB types of the raw contract -> Arrow types: rows go in as one Arrow table per load
# (executemany binds row by row: ~20 CPU s for 15k events).
_ARROW = {"VARCHAR": "string", "JSON": "string", "TIMESTAMP": "timestamp[us]", "DATE": "date32"}
_ARROW |= {"DOUBLE": "float64", "BIGINT": "int64", "INTEGER": "int64", "BOOLEAN": "bool"}


def _insert(conn: duckdb.DuckDBPyConnection, table: str, values: list[list]) -> None:
    """Insert rows (contract columns, then the meta columns) into raw.`table`."""
    import pyarrow as pa

    types = {**_RAW[table], **contract.META_COLUMNS}
    names = [*COLUMNS[table], *contract.META_COLUMNS]
    quoted = ", ".join(f'"{c}"' for c in names)
    try:
        rows = pa.table(
            {
                name: pa.array([row[i] for row in values], type=_ARROW[types[name]])
                for i, name in enumerate(names)
            }
        )
    except (KeyError, TypeError, pa.ArrowException):  # a value Arrow will not take as is
        marks = ", ".join("?" * len(names))
        conn.executemany(f"insert into raw.{table} ({quoted}) values ({marks})", values)
        return
    conn.register("_raw_rows", rows)
    try:
        conn.execute(f"insert into raw.{table} ({quoted}) select {quoted} from _raw_rows")
    finally:
        conn.unregister("_raw_rows")


def load_raw(db_path: Path, data: RawData, partitions: list[date] | None = None) -> int:
    """Write the rows of `partitions` (all when None) like the ingest does: delete+insert per
    partition. Returns the number of rows written."""
    conn = duckdb.connect(str(db_path))
    written = 0
    try:
        create_raw_tables(conn)
        wanted = set(partitions) if partitions is not None else None
        for table, rows in data.tables.items():
            cols = COLUMNS[table]
            chosen = [r for r in rows if wanted is None or r["_partition_date"] in wanted]
            for day in sorted({r["_partition_date"] for r in chosen}):
                conn.execute(f"delete from raw.{table} where _partition_date = ?", [day])
            values = [
                [r.get(c) for c in cols]  # rows may lack optional columns (attributes)
                + [
                    r["_partition_date"],
                    datetime(2025, 1, 1),
                    "demo",
                    f"{table}-{r['_partition_date']}.jsonl",
                    i + 1,
                ]
                for i, r in enumerate(chosen)
            ]
            if values:
                _insert(conn, table, values)
            written += len(values)
    finally:
        conn.close()
    return written


# Vars that only macros read when a node runs (the run window), never at parse time: a parse
# without them serves every window.
RUN_TIME_VARS = ("min_date", "max_date", "features_pairs_max_days")
# Commands that can run in this process on a cached parse; their output is read from files
# and the warehouse (a caller reading dbt's stdout, or check=False, gets the CLI).
IN_PROCESS = ("build", "run", "test", "compile", "seed")


def run_dbt(
    args: list[str],
    db_path: Path,
    target_dir: Path,
    dbt_vars: dict | None = None,
    check: bool = True,
    project_dir: Path = DBT_PROJECT,
    cli: bool = False,
) -> subprocess.CompletedProcess:
    """Run the real dbt on the project against `db_path`; raise with dbt's output on failure.
    DuckDB builds run in this process on a parse cached per (project, vars, warehouse name):
    the dbt CLI spends ~5 CPU s per call importing and parsing, which the dbt-heavy modules
    paid dozens of times. Anything else, or `cli=True`, goes through the CLI."""
    # Settings' vars as segflow passes them (read now: tests set SEGFLOW_* before calling).
    all_vars = {**run_window.dbt_vars(Settings.from_env()), **(dbt_vars or {})}
    in_process = (
        not cli
        and check
        and args[0] in IN_PROCESS
        and "--target" not in args
        and "--inline" not in args
        and os.environ.get("SEGFLOW_DBT_TARGET", "duckdb") == "duckdb"
    )
    if in_process:
        return _run_dbt_in_process(args, db_path, target_dir, all_vars, project_dir)
    return run_dbt_cli(args, db_path, target_dir, all_vars, check, project_dir)


def _common_args(project_dir: Path, target_dir: Path) -> list[str]:
    return [
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(project_dir),
        "--target-path",
        str(target_dir),
        "--log-path",
        str(target_dir / "logs"),
    ]


def run_dbt_cli(
    args: list[str],
    db_path: Path,
    target_dir: Path,
    all_vars: dict,
    check: bool = True,
    project_dir: Path = DBT_PROJECT,
) -> subprocess.CompletedProcess:
    """The dbt CLI in a subprocess (parses the project itself)."""
    env = dict(os.environ, SEGFLOW_DUCKDB_PATH=str(db_path), DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    cmd = [str(DBT_BIN), *args, *_common_args(project_dir, target_dir)]
    cmd += ["--vars", json.dumps(all_vars, sort_keys=True)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"dbt {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
        )
    return proc


@contextmanager
def environ(**values: str):
    """os.environ with `values` set for the block, restored after (dbt reads env_var())."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@functools.cache
def _parse_dir() -> Path:
    """This process's folder for the cached parses' artifacts (removed at exit)."""
    path = Path(tempfile.mkdtemp(prefix="segflow-test-parse-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def _manifest(project_dir: Path, db_path: Path, all_vars: dict):
    """A fresh Manifest of the project parsed once per (project, parse-time vars, warehouse
    file name: DuckDB's database name, which every node records). The parse sees a stand-in
    path with the same name, so warehouses in different folders share it."""
    from orchestration.dbt_parse import parsed_manifest

    parse_vars = {k: v for k, v in all_vars.items() if k not in RUN_TIME_VARS}
    scratch = _parse_dir()
    with environ(
        SEGFLOW_DUCKDB_PATH=str(scratch / db_path.name), DBT_SEND_ANONYMOUS_USAGE_STATS="false"
    ):
        return parsed_manifest(
            project_dir,
            "duckdb",
            ["--vars", json.dumps(parse_vars, sort_keys=True)],
            target_dir=scratch / "target",  # not the project's target, which other tests read
        )


def _run_dbt_in_process(
    args: list[str], db_path: Path, target_dir: Path, all_vars: dict, project_dir: Path
) -> subprocess.CompletedProcess:
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    from orchestration.dbt_parse import release_warehouse

    manifest = _manifest(project_dir, db_path, all_vars)
    lines: list[str] = []

    def collect(msg) -> None:
        event = msg_to_dict(msg)
        if event["info"].get("level") in ("warn", "error") or "Failure" in msg.info.name:
            lines.append(event["info"].get("msg", ""))

    cmd = [*args, *_common_args(project_dir, target_dir), "--target", "duckdb"]
    cmd += ["--vars", json.dumps(all_vars, sort_keys=True)]
    with environ(SEGFLOW_DUCKDB_PATH=str(db_path), DBT_SEND_ANONYMOUS_USAGE_STATS="false"):
        try:
            result = dbtRunner(manifest=manifest, callbacks=[collect]).invoke(cmd)
        finally:
            release_warehouse()
    if not result.success:
        failed = [
            f"{r.node.unique_id}: {r.status} {r.message}"
            for r in getattr(result.result, "results", None) or []
            if str(r.status) in ("error", "fail")
        ]
        raise AssertionError(
            f"dbt {' '.join(args)} failed: {result.exception}\n"
            + "\n".join(failed)
            + "\n"
            + "\n".join(lines)[-6000:]
        )
    return subprocess.CompletedProcess(cmd, 0, "\n".join(lines), "")
