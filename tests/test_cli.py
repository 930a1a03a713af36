"""The console script as a person meets it: --help everywhere, one-line errors, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.cli import build_parser
from orchestration.settings import PROJECT_ROOT

SEGFLOW = Path(sys.executable).parent / "segflow"


def _segflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SEGFLOW), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _commands() -> list[list[str]]:
    """Every command and sub-command of the parser."""
    commands = []
    for name, parser in build_parser()._subparsers._group_actions[0].choices.items():
        nested = parser._subparsers._group_actions[0].choices if parser._subparsers else {}
        commands += [[name, child] for child in nested] or [[name]]
    return commands


def test_every_command_has_help_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command's help from the parser in this process (a console script per command
    cost ~0.6 CPU s each); the console script itself prints the top-level and `run` help."""
    commands = _commands()
    assert ["fake-customerio"] in commands and ["run"] in commands
    for command in commands:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*command, "--help"])
        assert done.value.code == 0, command
        assert "usage: segflow" in capsys.readouterr().out, command
    top = _segflow("--help")
    assert top.returncode == 0 and "usage: segflow" in top.stdout
    assert all(command[0] in top.stdout for command in commands)
    run_help = _segflow("run", "--help").stdout
    assert "(default: 120)" in run_help and "(default: segflow_full_job)" in run_help
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fake-customerio", "--help"])
    assert "(default: 8765)" in capsys.readouterr().out


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_segment_rule_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "segments.yml"
    text = (PROJECT_ROOT / "orchestration" / "segments" / "segments.yml").read_text()
    bad.write_text(text.replace("rule: days_since_signup < 7", "rule: days_since_signup <<< 7"))
    line = _one_line_error(
        _segflow(
            "run",
            "--days",
            "3",
            env={"SEGFLOW_SEGMENTS_FILE": str(bad), "SEGFLOW_HOME": str(tmp_path / "home")},
        )
    )
    assert "segments.yml" in line and "new_users" in line


def test_empty_landing_folder_names_the_setting(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    line = _one_line_error(
        _segflow(
            "run",
            "--days",
            "3",
            env={
                "SEGFLOW_SOURCE": "files",
                "SEGFLOW_LANDING_DIR": str(landing),
                "SEGFLOW_HOME": str(tmp_path / "home"),
            },
        )
    )
    assert "SEGFLOW_LANDING_DIR" in line and "no files" in line


def test_range_before_partitions_start_names_the_setting(tmp_path: Path) -> None:
    line = _one_line_error(
        _segflow(
            "run",
            "--days",
            "3",
            "--end",
            "2024-06-01",
            env={"SEGFLOW_HOME": str(tmp_path / "home")},
        )
    )
    assert "SEGFLOW_PARTITIONS_START" in line and "2024-05-30" in line


def test_future_end_is_a_configuration_error_up_front(tmp_path: Path) -> None:
    from datetime import date, timedelta

    today = date.today().isoformat()
    done = _segflow("run", "--days", "3", "--end", today, env={"SEGFLOW_HOME": str(tmp_path / "h")})
    assert done.returncode == 2
    line = _one_line_error(done)
    assert "in the future" in line and (date.today() - timedelta(days=1)).isoformat() in line
    assert not (tmp_path / "h" / "demo").exists()  # nothing generated before the error


def test_run_accepts_override_breaker() -> None:
    args = build_parser().parse_args(["run", "--override-breaker"])
    assert args.override_breaker is True
    assert build_parser().parse_args(["run"]).override_breaker is False


@pytest.mark.parametrize("value", ["abc", "-1x"])
def test_bad_setting_is_one_line(tmp_path: Path, value: str) -> None:
    line = _one_line_error(
        _segflow(
            "run",
            "--days",
            "3",
            env={"SEGFLOW_LATE_ARRIVAL_DAYS": value, "SEGFLOW_HOME": str(tmp_path / "home")},
        )
    )
    assert "SEGFLOW_LATE_ARRIVAL_DAYS" in line
