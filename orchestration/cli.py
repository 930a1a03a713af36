"""The `segflow` console script. Heavy libraries are imported inside the commands that use them."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

from orchestration.cli_run import (
    UsageError,
    cmd_dbt_vars,
    cmd_demo_data,
    cmd_prepare,
    cmd_run,
    preflight,
    prepare,
)
from orchestration.settings import SettingError, Settings

__all__ = ["UsageError", "build_parser", "entry", "main", "preflight", "prepare"]


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it has none or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Every command's --help shows the defaults."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from exc


def cmd_mlflow_ui(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    mlflow = Path(sys.executable).parent / "mlflow"
    print(f"MLflow UI on http://{args.host}:{args.port} ({settings.mlflow_tracking_uri})")
    cmd = [str(mlflow), "ui", "--backend-store-uri", settings.mlflow_tracking_uri]
    cmd += ["--host", args.host, "--port", str(args.port)]
    return subprocess.call(cmd)


def cmd_rollback(args: argparse.Namespace) -> int:
    from contracts.models import registered_name
    from ml.registry import set_champion

    settings = Settings.from_env()
    name = registered_name(args.model)
    set_champion(name, args.version, tracking_uri=settings.mlflow_tracking_uri)
    print(f"{name}: alias 'champion' now points at version {args.version}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Build the offline HTML report from the warehouse, the Dagster instance and MLflow."""
    settings = Settings.from_env()
    if not settings.duckdb_path.exists():
        print(f"segflow: no warehouse at {settings.duckdb_path}; run `segflow run` first")
        return 1
    os.environ.setdefault("DAGSTER_HOME", str(settings.home / "dagster_home"))
    from orchestration.launcher import build_report_now

    result = build_report_now(settings, Path(args.out) if args.out else None)
    print(f"report: {result.index} ({result.charts} charts on {len(result.pages)} pages)")
    if args.serve:
        return _serve_report(result.out_dir, args, settings)
    if args.open:
        import webbrowser

        webbrowser.open(result.index.as_uri())
    return 0


def _serve_report(folder: Path, args: argparse.Namespace, settings: Settings) -> int:
    from orchestration.report.serve import port_of, report_server

    server = report_server(
        folder, args.port if args.port is not None else port_of(settings.report_url)
    )
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/index.html"
    print(f"serving the report on {url} (Ctrl-C to stop)", flush=True)
    if args.open:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_fake_customerio(args: argparse.Namespace) -> int:
    from orchestration.activation.fake_customerio import serve

    return serve(args)


def cmd_fake_vendor(args: argparse.Namespace) -> int:
    """`segflow fake-launchdarkly` / `fake-intercom` (orchestration/activation/fake_*.py)."""
    import importlib

    return importlib.import_module(f"orchestration.activation.{args.fake_module}").serve(args)


def cmd_privacy(args: argparse.Namespace) -> int:
    from orchestration.activation.privacy import run_cli

    return run_cli(Settings.from_env(), args.action, args.user_ids, args.reason)


def cmd_sources_check(args: argparse.Namespace) -> int:
    from orchestration.sources.check import check_sources, render
    from orchestration.sources.verdict import gate_config

    settings = Settings.from_env()
    landing = Path(args.landing) if args.landing else settings.landing_dir
    result = check_sources(  # the run's gate settings: the same verdict as the run
        landing,
        Path(args.sources) if args.sources else None,
        late_arrival_days=settings.late_arrival_days,
        quality=gate_config(settings),
        timestamp_floor=settings.timestamp_floor,
    )
    print(render(result))
    return 0 if result.ok else 1


def cmd_segments_check(args: argparse.Namespace) -> int:
    from orchestration.segments.commands import check

    return check(args, Settings.from_env())


def cmd_segments_diff(args: argparse.Namespace) -> int:
    from orchestration.segments.commands import diff

    return diff(args, Settings.from_env())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="segflow", description="segflow: CRM + product events -> segments.")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and the full run log on the terminal"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser(
        "demo-data", help="generate demo CRM, events and invoices into a landing folder"
    )
    _demo_options(demo, users=2000, days=150)
    demo.add_argument("--start", type=_date, help="first day (default: DAYS before --end)")
    demo.add_argument("--end", type=_date, help="last day (default: yesterday, UTC)")
    demo.add_argument("--out", help="landing folder (default: $SEGFLOW_HOME/demo/landing)")
    demo.add_argument("--truth", help="ground-truth folder (default: $SEGFLOW_HOME/demo/truth)")
    demo.add_argument(
        "--next-day",
        action="store_true",
        help="continue the generated product (same customers, history, seed) by one day",
    )
    demo.add_argument(
        "--profile",
        choices=("saas", "store"),
        default="saas",
        help="saas: subscription product (default); store: repeat-purchase shop",
    )
    demo.set_defaults(func=cmd_demo_data)

    prep = sub.add_parser(
        "prepare", help="create data folders, DAGSTER_HOME config and the dbt manifest"
    )
    prep.set_defaults(func=cmd_prepare)

    dbt_vars = sub.add_parser(
        "dbt-vars", help="print the --vars segflow passes to dbt (for running dbt by hand)"
    )
    dbt_vars.add_argument(
        "--sqlfluff", action="store_true", help="as a .sqlfluff templater context section"
    )
    dbt_vars.set_defaults(func=cmd_dbt_vars)

    run = sub.add_parser("run", help="run the pipeline for the last N days (demo data by default)")
    _demo_options(run, users=1000, days=120)
    run.add_argument("--end", type=_date, help="last day (default: yesterday, UTC)")
    run.add_argument(
        "--job",
        default="segflow_full_job",
        help="Dagster job to run (segflow_full_job, or another job of the code location)",
    )
    run.add_argument(
        "--override-breaker",
        action="store_true",
        help="send the sync even when the circuit breaker would hold it back (after checking "
        "why so many people change)",
    )
    run.set_defaults(func=cmd_run)

    models = sub.add_parser("models", help="model registry operations")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    rollback = models_sub.add_parser(
        "rollback", help="point the champion alias at an earlier version"
    )
    rollback.add_argument(
        "--model", choices=["churn", "ltv", "conversion"], required=True, help="which model"
    )
    rollback.add_argument("--version", required=True, help="registered version to make champion")
    rollback.set_defaults(func=cmd_rollback)

    report = sub.add_parser("report", help="build the offline HTML monitoring report")
    report.add_argument("--out", help="folder (default: $SEGFLOW_REPORT_DIR)")
    report.add_argument("--open", action="store_true", help="open it in the default browser")
    report.add_argument(
        "--serve",
        action="store_true",
        help="serve it over http on 127.0.0.1 (the port of SEGFLOW_REPORT_URL) until Ctrl-C",
    )
    report.add_argument("--port", type=int, help="port for --serve (0: any free port)")
    report.set_defaults(func=cmd_report)

    fake = sub.add_parser("fake-customerio", help="run the fake Customer.io Track API server")
    from orchestration.activation.fake_customerio import add_arguments

    add_arguments(fake)
    fake.set_defaults(func=cmd_fake_customerio)

    for fake_name, module, vendor in (
        ("fake-launchdarkly", "fake_launchdarkly", "LaunchDarkly REST API (segments)"),
        ("fake-intercom", "fake_intercom", "Intercom REST API (contacts, tags, events)"),
    ):
        vendor_fake = sub.add_parser(fake_name, help=f"run a local fake of the {vendor}")
        _fake_arguments(module)(vendor_fake)
        vendor_fake.set_defaults(func=cmd_fake_vendor, fake_module=module)

    privacy = sub.add_parser(
        "privacy", help="delete or suppress people in the warehouse and every destination"
    )
    privacy.add_argument("action", choices=("delete", "suppress"), help="what to do")
    privacy.add_argument("user_ids", nargs="+", metavar="USER_ID", help="segflow user ids")
    privacy.add_argument("--reason", default="", help="note stored in the audit log")
    privacy.set_defaults(func=cmd_privacy)

    ui = sub.add_parser("mlflow-ui", help="open the MLflow UI on the configured tracking store")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ui.add_argument("--port", type=int, default=5000, help="port to listen on")
    ui.set_defaults(func=cmd_mlflow_ui)

    sources = sub.add_parser("sources", help="declared landing-file mappings (sources.yml)")
    sources_sub = sources.add_subparsers(dest="sources_command", required=True)
    check = sources_sub.add_parser(
        "check", help="dry run of the mappings over a landing folder (writes nothing)"
    )
    check.add_argument("--landing", help="landing folder (default: $SEGFLOW_LANDING_DIR)")
    check.add_argument("--sources", help="sources.yml (default: <landing>/sources.yml)")
    check.set_defaults(func=cmd_sources_check)

    from orchestration.segments.commands import add_arguments as add_segments_arguments

    add_segments_arguments(sub, cmd_segments_check, cmd_segments_diff)
    from orchestration.realtime.cli import register as register_realtime

    register_realtime(sub)
    return parser


def _fake_arguments(module: str):
    import importlib

    return importlib.import_module(f"orchestration.activation.{module}").add_arguments


def _demo_options(parser: argparse.ArgumentParser, users: int, days: int) -> None:
    """The demo generator's options, shared by `demo-data` and `run`."""
    parser.add_argument("--days", type=int, default=days, help="days, ending at --end")
    parser.add_argument("--users", type=int, default=users, help="demo users (existing and new)")
    parser.add_argument(
        "--history-days",
        type=int,
        default=90,
        help="demo: days of the product's life simulated (not written) before the first day",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="demo random seed (same seed, same files)"
    )
    parser.add_argument(
        "--defect-rate", type=float, default=0.0, help="demo: share of rows with injected defects"
    )


def main(argv: list[str] | None = None) -> int:
    """Errors are one line on stderr (exit 2 for configuration, 1 otherwise); --debug shows
    the traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("segflow: interrupted", file=sys.stderr)
        return 130
    except (SettingError, UsageError) as exc:
        if args.debug:
            raise
        print(f"segflow: configuration error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            raise
        kind = "configuration error" if _is_config_error(exc) else "error"
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"segflow: {kind}: {message} (--debug for the traceback)", file=sys.stderr)
        return 2 if kind == "configuration error" else 1


def entry() -> None:
    """The `segflow` console script: main(), then an exit that skips the interpreter's
    teardown. Python's finalisation frees every module and object one at a time: ~1.5-3 s
    after a run that loaded Dagster, dbt, GX and scikit-learn, with no work left in it. Exit
    handlers (atexit, logging) run and the standard streams are flushed first; while a
    non-daemon thread is still alive the normal exit runs instead (it waits for the thread)."""
    code = main()
    code = 0 if code is None else code
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(t.is_alive() and not t.daemon for t in others):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to deliver
            stream.flush()
    os._exit(code)


def _is_config_error(exc: Exception) -> bool:
    """Errors of the project's own configuration files (segments, flows, sources, quality)."""
    return type(exc).__name__.endswith(("ConfigError", "SettingError", "MappingError"))


if __name__ == "__main__":
    entry()
