"""Great Expectations loads with the first suite, not with the definitions
(expectations/gx_loading.py): loading segflow's definitions imports no GX, the first suite's
import hides GX's optional Spark API (segflow validates pandas frames), and a background
import started with the run serves the suite that needs it."""

from __future__ import annotations

import json
import subprocess
import sys

from orchestration.settings import PROJECT_ROOT

DEFINITIONS = """
import json, sys
import orchestration.launcher
from orchestration.definitions import defs
defs().resolve_job_def("segflow_daily_job")
print(json.dumps(sorted(m for m in ("great_expectations", "pyspark") if m in sys.modules)))
"""
FIRST_SUITE = """
import json, sys
from expectations import gx_loading
thread = gx_loading.warm()
runner = gx_loading.runner()  # waits for the background import
loaded = {"gx": "great_expectations" in sys.modules, "pyspark": "pyspark" in sys.modules,
          "same": runner is sys.modules["expectations.runner"], "thread": thread is not None,
          "again": gx_loading.warm() is None}
import pyspark.sql  # still importable afterwards (the Spark engine's own imports)
loaded["pyspark_after"] = pyspark.sql.__name__
print(json.dumps(loaded))
"""


def _run(code: str, env: dict[str, str] | None = None) -> object:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_definitions_import_no_gx(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    assert _run(DEFINITIONS) == []


def test_first_suite_imports_gx_without_spark(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("SEGFLOW_ENGINE", raising=False)
    assert _run(FIRST_SUITE) == {
        "gx": True,
        "pyspark": False,
        "same": True,
        "thread": True,
        "again": True,
        "pyspark_after": "pyspark.sql",
    }


def test_spark_engine_imports_gx_as_is(tmp_path, monkeypatch) -> None:
    """With the Spark engine pyspark is not hidden (GX keeps its Spark support)."""
    monkeypatch.setenv("SEGFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("SEGFLOW_ENGINE", " Spark ")
    loaded = _run(FIRST_SUITE)
    assert loaded["gx"] and loaded["pyspark"]
