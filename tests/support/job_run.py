"""Run the daily job (segflow_full_job) once over a window, in its own process.

The engine and paths come from the environment (SEGFLOW_ENGINE, SEGFLOW_HOME, ...): Dagster's
definitions read the settings at import, so each engine gets a fresh interpreter.

    python tests/support/job_run.py 2026-05-01 2026-06-14
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(start: str, end: str) -> int:
    import dagster as dg

    from orchestration.cli import prepare
    from orchestration.launcher import run_job
    from orchestration.settings import Settings

    prepare(Settings.from_env())
    result = run_job(
        date.fromisoformat(start),
        date.fromisoformat(end),
        "segflow_full_job",
        instance=dg.DagsterInstance.ephemeral(),
    )
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    for event in failures:
        print(f"STEP FAILURE {event.step_key}: {event.event_specific_data.error}", file=sys.stderr)
    # A step whose upstream yielded no output is skipped and the run still succeeds: count
    # that as a failure (the whole job must run).
    skipped = [e.step_key for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
    if skipped:
        print(f"STEPS SKIPPED: {skipped}", file=sys.stderr)
    return 0 if result.success and not skipped else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
