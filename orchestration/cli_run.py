"""The `segflow` commands that run the pipeline: `prepare`, `run`, `demo-data` and `dbt-vars`,
with the pre-flight checks that fail a run in its first second instead of its first minutes.
Registered by orchestration/cli.py; heavy libraries are imported inside the commands."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from orchestration.run_window import dbt_vars_arg
from orchestration.settings import DBT_PROJECT_DIR, PROJECT_ROOT, Settings


class UsageError(ValueError):
    """A command cannot start as asked; the message says what, where and what is expected."""


def _default_end() -> date:
    return date.today() - timedelta(days=1)


def prepare(settings: Settings) -> None:
    """Create data folders, the Dagster instance config and the dbt manifest."""
    settings.ensure_dirs()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster_home")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "orchestration" / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["SEGFLOW_DUCKDB_PATH"] = str(settings.duckdb_path)
    os.environ["SEGFLOW_DBT_TARGET"] = settings.dbt_target
    parse_manifest(settings)


def parse_manifest(settings: Settings) -> None:
    """dbt's parse in this process (the run's dbt steps reuse the parsed project, see
    orchestration/dbt_parse.py), written to a scratch folder and each file then moved into
    dbt_project/target at once (os.replace): a Dagster process (or a parallel test worker)
    reading the manifest never sees it half-written."""
    from orchestration.dbt_parse import parse_into

    target = DBT_PROJECT_DIR / "target"
    target.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parse-", dir=target) as scratch:
        parse_into(DBT_PROJECT_DIR, settings.dbt_target, dbt_vars_arg(settings), Path(scratch))
        for path in Path(scratch).iterdir():
            if path.is_file():
                os.replace(path, target / path.name)


def cmd_demo_data(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    end = args.end or _default_end()
    start = args.start or end - timedelta(days=args.days - 1)
    out = Path(args.out) if args.out else settings.demo_dir
    truth = Path(args.truth) if args.truth else settings.demo_truth_dir
    if args.profile == "store" and args.next_day:
        raise UsageError("--next-day continues the saas demo only")
    if args.profile == "store":
        from demo.store import generate_store

        print(generate_store(out, truth, **_demo_size(args, start)))
        print(
            "store profile: run with SEGFLOW_CHURN_DEFINITION=inactivity "
            "SEGFLOW_CHURN_INACTIVE_DAYS=90 (churn = no order for 90 days)"
        )
        return 0
    if args.next_day:
        return _next_day(out, truth)
    print(_generate_demo(args, out, truth, start))
    return 0


def _demo_size(args: argparse.Namespace, start: date) -> dict[str, Any]:
    """What every demo generator takes from the command line: size, seed, first day, history."""
    return {
        "users": args.users,
        "days": args.days,
        "seed": args.seed,
        "start": start,
        "history_days": args.history_days,
    }


def _demo_product(args: argparse.Namespace, start: date):
    from demo.next_day import DemoProduct

    size = {**_demo_size(args, start), "start": start.isoformat()}
    return DemoProduct(**size, defect_rate=args.defect_rate)


def _generate_demo(args: argparse.Namespace, out: Path, truth: Path, start: date):
    """Generate the SaaS demo and record its parameters (what --next-day continues)."""
    from demo.next_day import record
    from demo.saas import generate

    summary = generate(out, truth, **_demo_size(args, start), defect_rate=args.defect_rate)
    record(truth, _demo_product(args, start))
    return summary


def _next_day(out: Path, truth: Path) -> int:
    from demo.next_day import next_day

    try:
        day = next_day(out, truth)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(f"demo advanced by one day: {day} written to {out}")
    print(f"run it as the schedule would: segflow run --days 1 --end {day} --job segflow_daily_job")
    return 0


def cmd_dbt_vars(args: argparse.Namespace) -> int:
    if not args.sqlfluff:
        print(dbt_vars_arg(Settings.from_env())[1])
        return 0
    from orchestration.run_window import dbt_vars

    print("[sqlfluff:templater:dbt:context]")  # `make lint` adds this to .sqlfluff
    for key, value in dbt_vars(Settings.from_env()).items():
        print(f"{key} = {value}")
    return 0


def cmd_prepare(_: argparse.Namespace) -> int:
    prepare(Settings.from_env())
    print("prepared: data folders, DAGSTER_HOME/dagster.yaml, dbt manifest")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # The champions' loader first, before anything else is loaded: its import searches every
    # loaded module (ml.registry.import_model_loader; ~1 CPU s less than after mlflow, Dagster)
    import skops.io  # noqa: F401

    settings = Settings.from_env()
    end = args.end or _default_end()
    if end > _default_end():
        raise UsageError(
            f"--end {end} is in the future: the last complete day is {_default_end()} "
            "(daily partitions end yesterday, UTC)"
        )
    if args.days < 1:
        raise UsageError(f"--days {args.days}: expected at least 1")
    start = end - timedelta(days=args.days - 1)
    preflight(settings, start)
    if settings.source == "demo" and _demo_holds(args, settings, start, end):
        print(f"demo data already holds {start} .. {end} of this product: not regenerated")
    elif settings.source == "demo":
        print(
            f"generating demo data: {args.users:,} users, {start} .. {end} "
            f"(after {args.history_days} simulated days), seed {args.seed}",
            flush=True,
        )
        _generate_demo(args, settings.demo_dir, settings.demo_truth_dir, start)
    prepare(settings)
    from orchestration.launcher import launch

    return launch(
        start,
        end,
        job_name=args.job,
        settings=settings,
        debug=args.debug,
        override_breaker=args.override_breaker,
    )


def _demo_holds(args: argparse.Namespace, settings: Settings, start: date, end: date) -> bool:
    """The landing folder already holds these days of the same product (e.g. advanced with
    `demo-data --next-day`): regenerating would draw another product."""
    from demo.next_day import load

    product = load(settings.demo_truth_dir)
    asked = _demo_product(args, start)
    return product is not None and product.covers(
        start,
        end,
        users=asked.users,
        seed=asked.seed,
        defect_rate=asked.defect_rate,
        history_days=asked.history_days,
    )


def preflight(settings: Settings, start: date) -> None:
    """What would make the run fail in its first minutes, said in one line before it starts."""
    generated = settings.source == "demo" and not os.environ.get("SEGFLOW_PARTITIONS_START")
    if start < settings.partitions_start and not generated:  # demo data will start at `start`
        raise UsageError(
            f"the run starts on {start}, before SEGFLOW_PARTITIONS_START="
            f"{settings.partitions_start}: set SEGFLOW_PARTITIONS_START={start} (or earlier)"
        )
    from orchestration.segments.config import load_config

    load_config(settings.segments_file, settings.flows_file, settings.triggers_file)
    if settings.source == "files":
        landing = settings.landing_dir
        files = [p for p in landing.rglob("*") if p.is_file()] if landing.is_dir() else []
        if not files:
            raise UsageError(
                f"SEGFLOW_SOURCE=files but SEGFLOW_LANDING_DIR={landing} holds no files: "
                "expected <table>/dt=YYYY-MM-DD/<file> for events, crm_contacts, "
                "billing_invoices (see README, 'Bring your own data')"
            )
        first = min(
            (p.name.removeprefix("dt=") for p in landing.rglob("dt=*") if p.is_dir()),
            default=None,
        )
        if first and first < settings.partitions_start.isoformat():
            raise UsageError(
                f"SEGFLOW_LANDING_DIR={landing} has data from {first}, before "
                f"SEGFLOW_PARTITIONS_START={settings.partitions_start}: set "
                f"SEGFLOW_PARTITIONS_START={first}"
            )
