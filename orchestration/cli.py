"""The `segflow` console script. Heavy libraries are imported inside the commands that use them."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from orchestration.settings import DBT_PROJECT_DIR, PROJECT_ROOT, SettingError, Settings


def _default_end() -> date:
    return date.today() - timedelta(days=1)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from exc


def prepare(settings: Settings) -> None:
    """Create data folders, the Dagster instance config and the dbt manifest."""
    settings.ensure_dirs()
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster_home")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "orchestration" / "dagster.yaml", dagster_home / "dagster.yaml")
    os.environ["SEGFLOW_DUCKDB_PATH"] = str(settings.duckdb_path)
    dbt = Path(sys.executable).parent / "dbt"
    subprocess.run(
        [
            str(dbt),
            "parse",
            "--quiet",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        check=True,
        env={**os.environ, "SEGFLOW_DBT_TARGET": settings.dbt_target},
    )


def cmd_demo_data(args: argparse.Namespace) -> int:
    from orchestration.sources.demo import generate

    settings = Settings.from_env()
    end = args.end or _default_end()
    start = args.start or end - timedelta(days=args.days - 1)
    out = Path(args.out) if args.out else settings.demo_dir
    truth = Path(args.truth) if args.truth else settings.demo_truth_dir
    summary = generate(
        out,
        truth,
        users=args.users,
        days=args.days,
        seed=args.seed,
        start=start,
        defect_rate=args.defect_rate,
    )
    print(summary)
    return 0


def cmd_prepare(_: argparse.Namespace) -> int:
    prepare(Settings.from_env())
    print("prepared: data folders, DAGSTER_HOME/dagster.yaml, dbt manifest")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    end = args.end or _default_end()
    start = end - timedelta(days=args.days - 1)
    if settings.source == "demo":
        from orchestration.sources.demo import generate

        demo_start = end - timedelta(days=max(args.days, args.history_days) - 1)
        print(f"generating demo data: {args.users} users, {demo_start} .. {end}, seed {args.seed}")
        generate(
            settings.demo_dir,
            settings.demo_truth_dir,
            users=args.users,
            days=(end - demo_start).days + 1,
            seed=args.seed,
            start=demo_start,
            defect_rate=args.defect_rate,
        )
    prepare(settings)
    from orchestration.launcher import launch

    return launch(start, end, job_name=args.job, settings=settings)


def cmd_rollback(args: argparse.Namespace) -> int:
    from ml.registry import set_champion

    settings = Settings.from_env()
    set_champion(f"segflow-{args.model}", args.version, tracking_uri=settings.mlflow_tracking_uri)
    print(f"segflow-{args.model}: alias 'champion' now points at version {args.version}")
    return 0


def cmd_fake_customerio(args: argparse.Namespace) -> int:
    from orchestration.activation.fake_customerio import main as fake_main

    return fake_main(args.fake_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo-data", help="generate demo CRM, events and invoices into a landing folder"
    )
    demo.add_argument("--users", type=int, default=2000)
    demo.add_argument("--days", type=int, default=150)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--start", type=_date, help="first day (default: DAYS before --end)")
    demo.add_argument("--end", type=_date, help="last day (default: yesterday, UTC)")
    demo.add_argument("--out", help="landing folder (default: $SEGFLOW_HOME/demo/landing)")
    demo.add_argument("--truth", help="ground-truth folder (default: $SEGFLOW_HOME/demo/truth)")
    demo.add_argument("--defect-rate", type=float, default=0.0)
    demo.set_defaults(func=cmd_demo_data)

    prep = sub.add_parser(
        "prepare", help="create data folders, DAGSTER_HOME config and the dbt manifest"
    )
    prep.set_defaults(func=cmd_prepare)

    run = sub.add_parser("run", help="run the pipeline for the last N days (demo data by default)")
    run.add_argument("--days", type=int, default=120, help="days to materialise, ending at --end")
    run.add_argument(
        "--history-days", type=int, default=0, help="extra demo history before the window"
    )
    run.add_argument("--users", type=int, default=1000, help="demo users (demo source only)")
    run.add_argument("--seed", type=int, default=7)
    run.add_argument("--end", type=_date, help="last day (default: yesterday, UTC)")
    run.add_argument("--defect-rate", type=float, default=0.0, help="demo defect injection rate")
    run.add_argument("--job", default="segflow_full_job")
    run.set_defaults(func=cmd_run)

    models = sub.add_parser("models", help="model registry operations")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    rollback = models_sub.add_parser(
        "rollback", help="point the champion alias at an earlier version"
    )
    rollback.add_argument("--model", choices=["churn", "ltv", "conversion"], required=True)
    rollback.add_argument("--version", required=True)
    rollback.set_defaults(func=cmd_rollback)

    fake = sub.add_parser(
        "fake-customerio", help="run the fake Customer.io Track API server", add_help=False
    )
    fake.add_argument("fake_args", nargs=argparse.REMAINDER)
    fake.set_defaults(func=cmd_fake_customerio)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingError as exc:
        print(f"segflow: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
