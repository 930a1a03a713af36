"""A short `segflow run` as a new user meets it (the session's shared small run, which
test_cli_run reads too): every report page renders in headless Chromium with no error page and
no console error, and the end of the run says which models are missing and what the run left
behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.shared_runs import CliRun

from orchestration.report import PAGE_ORDER
from orchestration.report.browser import Browser, find_chromium

pytestmark = pytest.mark.slow

OUTPUT = Path(__file__).parent / "output" / "report_small_run"


@pytest.fixture(scope="module")
def small_run(small_cli_run: CliRun):
    return small_cli_run.proc, small_cli_run.home


def test_the_run_says_which_models_are_missing(small_run) -> None:
    proc, _ = small_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    skipped = re.findall(r"^  SKIP\s+(\w+)_model\s", proc.stdout, re.M)
    for kind in skipped:
        # "needs N days of history (have M): ..." or, with enough history, "has the N days
        # of history it needs (have M); the <kind>_model step's skip reason says what is missing"
        assert re.search(rf"^no {kind} model yet: .*\(have \d+\)", proc.stdout, re.M), kind


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed")
def test_every_page_renders_without_an_error_page(small_run) -> None:
    proc, home = small_run
    report = home / "report"
    pages = sorted(report.glob("*.html"))
    assert len(pages) == len(PAGE_ORDER), proc.stdout[-3000:]
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with Browser() as browser:
        for page in pages:
            text = page.read_text()
            assert "page error" not in text and "could not be built" not in text, page.name
            visit = browser.visit(page, screenshot=OUTPUT / page.name.replace(".html", ".png"))
            assert visit.console_errors == [], (page.name, visit.console_errors)
    models = (report / "models.html").read_text()
    assert "no model yet" in models or "champion v" in models
    if "no model yet" in models:  # score-based segments cannot be decided: a band, not a gap
        segments = (report / "segments.html").read_text()
        assert "Partly evaluated segments" in segments and "ltv_band" in segments
