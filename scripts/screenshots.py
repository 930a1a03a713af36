"""Regenerate the README's report screenshots (docs/report-<page>.png) in headless Chromium.

By default runs the README's demo (`segflow run`, the `make run` defaults, ending on a fixed
day so the images do not change with the date) in a temporary SEGFLOW_HOME, then captures the
first screen of each README page. `--report DIR` captures an existing report folder instead.
No machine path reaches an image: the report header names the warehouse file only, and the
demo lives in a temporary folder.

    python scripts/screenshots.py                 # or: make screenshots
    python scripts/screenshots.py --report "$SEGFLOW_HOME/report" --pages segments,models
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from orchestration.report.browser import Browser, find_chromium

REPO = Path(__file__).resolve().parents[1]
README_PAGES = ("overview", "segments", "experiments", "models")
DEMO_END = "2026-10-31"


def run_demo(home: Path, days: int, users: int) -> Path:
    """`segflow run` in `home` (its own warehouse, Dagster instance and MLflow store)."""
    env = {**os.environ, "SEGFLOW_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home")}
    for name in ("SEGFLOW_DUCKDB_PATH", "MLFLOW_TRACKING_URI", "SEGFLOW_REPORT_DIR"):
        env.pop(name, None)
    segflow = Path(sys.executable).with_name("segflow")
    command = [str(segflow), "run", "--days", str(days), "--users", str(users), "--end", DEMO_END]
    done = subprocess.run(command, env=env, text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"segflow run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return home / "report"


def capture(report: Path, pages: list[str], out_dir: Path) -> list[Path]:
    """One first-screen PNG per page; fails on a missing page, an error page or a console
    error (a broken page never becomes a README image)."""
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with Browser(width=1280, height=900) as browser:
        for slug in pages:
            page = report / ("index.html" if slug == "overview" else f"{slug}.html")
            if not page.exists():
                raise SystemExit(f"{page.name}: not in {report.name}/ (pages: {sorted(p.name for p in report.glob('*.html'))})")  # fmt: skip
            if "page error" in page.read_text(encoding="utf-8"):
                raise SystemExit(f"{page.name}: the page could not be built; not captured")
            target = out_dir / f"report-{slug}.png"
            visit = browser.visit(page, screenshot=target, full_page=False)
            if visit.console_errors:
                raise SystemExit(f"{page.name}: console errors: {visit.console_errors}")
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, help="an existing report folder (skip the demo)")
    parser.add_argument("--pages", default=",".join(README_PAGES), help="pages to capture")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go")
    parser.add_argument("--days", type=int, default=120, help="demo days (make run: 120)")
    parser.add_argument("--users", type=int, default=1000, help="demo users (make run: 1000)")
    args = parser.parse_args(argv)
    if find_chromium() is None:
        raise SystemExit("chromium not found: `make chromium` installs it")
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    if args.report:
        written = capture(args.report, pages, args.out)
    else:
        with tempfile.TemporaryDirectory(prefix="segflow-screens-") as home:
            written = capture(run_demo(Path(home), args.days, args.users), pages, args.out)
    for path in written:
        print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
