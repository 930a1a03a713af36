"""Shared test settings: every test run writes under a temporary SEGFLOW_HOME, never ./data.

The suite runs on two pytest-xdist workers (`make test`: `-n 2 --dist loadfile
--no-loadscope-reorder`: each module on one worker, in the order below, the most expensive
first; the modules reading one session run of tests/support/shared_runs.py share a worker, so
the run is built once)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.shared_runs import READERS, RUN_TIMEOUT

# Tests run on fixed historical dates; without this, partitions would start where this
# machine's data starts (or 120 days ago), which moves. Set at import: definitions build their
# partitions when first imported, which can be during collection.
os.environ.setdefault("SEGFLOW_PARTITIONS_START", "2025-01-01")

pytest_plugins = ("support.shared_runs", "support.cpu_time", "support.realtime_fixtures")

# The most expensive modules first (CPU seconds measured with support.cpu_time), so the two
# workers finish together instead of one starting a five-minute module at the end. A module
# not listed runs after these, slow ones (`pytestmark = pytest.mark.slow`) before fast ones.
# xdist hands each worker two units up front (the 1st and 3rd to one, the 2nd and 4th to the
# other), so the two largest units come first: the shared run's READERS (test_cli_run heads
# it: the `segflow run`, the report and the Spark whole-job comparison) and test_pipeline_e2e.
EXPENSIVE_FIRST = (
    "test_cli_run.py",
    "test_pipeline_e2e.py",
    "test_orchestration_backfill.py",
    "test_ml_labels.py",
    "test_demo_generator.py",
    "test_dbt_transform.py",
    "test_ml_units.py",
    "test_sources_gate.py",
    "test_incremental_equals_rebuild.py",
    "test_dbt_run_window.py",
    "test_report_e2e.py",
    "test_spark_job.py",
    "test_dbt_analytics.py",
    "test_tracking_plan.py",
    "test_activation_endstate.py",
    "test_ml_pipeline.py",
    "test_spark_scoring.py",
    "test_report.py",
    "test_dbt_incremental_bounded.py",
    "test_sources_vendors.py",
    "test_sensors_landing.py",
)

# The fast tier's largest modules (`make test-fast`, CPU s at load ~10 on 2 workers): after the
# slow ones, before the other fast modules, so neither worker ends on a long module alone.
FAST_EXPENSIVE_FIRST = (
    "test_expectations_features.py",
    "test_orchestration_definitions.py",
    "test_orchestration_ingest.py",
    "test_ml_robustness.py",
    "test_corpus.py",
    "test_segments_assign.py",
    "test_expectations_suites.py",
    "test_sources_mappings.py",
    "test_expectations_defects.py",
    "test_demo_oracle.py",
    "test_cli.py",
    "test_stale_runs.py",
)


@pytest.fixture(scope="module")
def one_blas_thread() -> Iterator[None]:
    """Native thread pools (BLAS, OpenMP) held to one thread for a module whose figures or
    equalities must not depend on how many cores the run gets."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session", autouse=True)
def isolated_segflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("segflow_home")
    previous = {k: os.environ.get(k) for k in ("SEGFLOW_HOME", "DAGSTER_HOME")}
    os.environ["SEGFLOW_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    (home / "dagster_home").mkdir()
    yield home
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _rank(item: pytest.Item) -> tuple[int, int]:
    name = item.path.name
    if name in EXPENSIVE_FIRST:
        return 0, EXPENSIVE_FIRST.index(name)
    if item.get_closest_marker("slow"):
        return 1, 0
    if name in FAST_EXPENSIVE_FIRST:
        return 2, FAST_EXPENSIVE_FIRST.index(name)
    return 3, 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The expensive modules first (xdist's --dist loadfile keeps each module on one worker,
        so a module-scoped warehouse is built once). The sort is stable: a module's tests keep
        their order. A module reading a shared run must be one of its READERS (else the run would
        be built again on the other worker); its tests may wait for the run (RUN_TIMEOUT), so their
    pytest timeout exceeds it (the suite's 900 s ended a run still going on a loaded machine)."""
    for item in items:
        for run, modules in READERS.items():
            if run not in getattr(item, "fixturenames", ()):
                continue
            if item.path.name not in modules:
                raise pytest.UsageError(
                    f"{item.nodeid} uses the shared run {run!r}: add {item.path.name} to "
                    "READERS in tests/support/shared_runs.py"
                )
            item.add_marker(pytest.mark.timeout(RUN_TIMEOUT + 300))
    items.sort(key=_rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile` (a module on one worker), with the READERS of one shared run as one
    unit of work: the first module of the unit builds the run, the others reuse it.
    (`--dist loadgroup` cannot do this: under pytest 9 its `xdist_group` marks do not reach
    the scheduler, and it would spread every other module's tests over both workers.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    unit = {module: run for run, modules in READERS.items() for module in modules}

    class SharedRunScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return unit.get(Path(module).name, module)

    return SharedRunScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """Before the xdist workers start, the controller makes sure the dbt manifest exists:
    two workers importing the Dagster definitions at once on a fresh clone would both parse
    into dbt_project/target."""
    if hasattr(config, "workerinput") or not getattr(config.option, "numprocesses", None):
        return
    from orchestration.cli_run import parse_manifest
    from orchestration.settings import DBT_PROJECT_DIR, Settings

    if not (DBT_PROJECT_DIR / "target" / "manifest.json").exists():
        parse_manifest(Settings.from_env())


# A module that builds a warehouse through dbt, Dagster or the CLI end to end carries
# `pytestmark = pytest.mark.slow` at its top: `make test-fast` (pytest -m "not slow") leaves it out.
