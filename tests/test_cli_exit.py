"""`segflow`'s exit skips the interpreter's teardown (orchestration.cli.entry) but loses
nothing: the exit code, buffered output, exit handlers and a still-running thread's work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = """
import atexit, sys, threading, time
from pathlib import Path
from orchestration import cli

out = Path(sys.argv[1])

def command():
    atexit.register(lambda: (out / "atexit").write_text("ran"))
    if sys.argv[2] == "thread":
        def late():
            time.sleep(0.5)
            (out / "thread").write_text("done")
        threading.Thread(target=late).start()
    sys.stdout.write("buffered line, no newline")  # a pipe: block-buffered until flushed
    sys.stderr.write("an error line")
    return 3

cli.main = command
cli.entry()
raise SystemExit("entry() returned")
"""


@pytest.mark.parametrize("mode", ["plain", "thread"])
def test_entry_keeps_code_output_handlers_and_threads(tmp_path: Path, mode: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path), mode],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},  # real buffers
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "buffered line, no newline"
    assert done.stderr == "an error line"
    assert (tmp_path / "atexit").read_text() == "ran"
    if mode == "thread":  # a non-daemon thread still running: the normal exit waits for it
        assert (tmp_path / "thread").read_text() == "done"


def test_console_script_is_entry() -> None:
    """The installed `segflow` script calls entry(), not main() (pyproject [project.scripts])."""
    script = (Path(sys.executable).parent / "segflow").read_text()
    assert "from orchestration.cli import entry" in script
