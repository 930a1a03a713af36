"""CPU seconds per test module: a suite-cost figure that a busy machine does not inflate the
way wall-clock `--durations` are. At the end of a run, the most expensive modules' CPU seconds
(this process and the subprocesses it waited for: dbt, `segflow run`) next to their wall
seconds; `SEGFLOW_CPU_TIME_OUT=<file>` appends every module's row there as TSV. Under
pytest-xdist each worker sends its figures to the controller, which prints them."""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from pathlib import Path

import pytest

SHOWN = 15
_KEY = "segflow_cpu_time"
_cpu: dict[str, float] = defaultdict(float)
_wall: dict[str, float] = defaultdict(float)
_worker: dict[str, str] = {}


def _cpu_now() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Setup, call and teardown of each test (module fixtures land on their first/last test)."""
    cpu, wall = _cpu_now(), time.monotonic()
    yield
    module = item.nodeid.split("::")[0]
    _cpu[module] += _cpu_now() - cpu
    _wall[module] += time.monotonic() - wall
    _worker[module] = os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports
        workeroutput[_KEY] = {m: (_cpu[m], _wall[m], _worker[m]) for m in _cpu}
        return
    out = os.environ.get("SEGFLOW_CPU_TIME_OUT")
    if out and _cpu:
        lines = [f"{m}\t{_cpu[m]:.1f}\t{_wall[m]:.1f}\t{_worker[m]}" for m in sorted(_cpu)]
        with Path(out).open("a") as handle:
            handle.write("\n".join(lines) + "\n")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """xdist controller: a worker finished; take its modules' figures."""
    for module, (cpu, wall, worker) in getattr(node, "workeroutput", {}).get(_KEY, {}).items():
        _cpu[module] += cpu
        _wall[module] += wall
        _worker[module] = worker


def pytest_terminal_summary(terminalreporter) -> None:
    if not _cpu:
        return
    rows = sorted(_cpu, key=_cpu.get, reverse=True)
    terminalreporter.write_sep("=", f"CPU seconds per module (top {SHOWN}; support/cpu_time.py)")
    for module in rows[:SHOWN]:
        terminalreporter.write_line(
            f"{_cpu[module]:8.1f} cpu {_wall[module]:8.1f} wall  {_worker[module]:<5} {module}"
        )
    total_cpu, total_wall = sum(_cpu.values()), sum(_wall.values())
    terminalreporter.write_line(f"{total_cpu:8.1f} cpu {total_wall:8.1f} wall  all {len(rows)}")
