"""The pytest fork server, run for real on the fixture project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wren.exceptions import ConfigError
from wren.synth.discover import source_files
from wren.synth.testrun import PytestServer, SynthError, default_test_command, parse_test_command


@pytest.fixture
def server(project: Path, tmp_path: Path):
    srv = PytestServer(
        sys.executable,
        project,
        default_test_command(project),
        tmp_path / "scratch",
        own_packages=frozenset({"mathlib"}),
        pycache=tmp_path / "pycache",
    )
    yield srv
    srv.close()


def test_full_run_records_outcomes_durations_and_lines(server: PytestServer, project: Path):
    result = server.run(trace=source_files(project), timeout=120)
    assert result.status == "done"
    assert result.outcomes["tests/test_core.py::test_clamp"] == "passed"
    assert result.outcomes["tests/test_core.py::test_both_positive[1-1-True]"] == "passed"
    assert len(result.outcomes) == 19
    assert all(d >= 0 for d in result.durations.values())
    clamp_lines = result.lines["tests/test_core.py::test_clamp"]["mathlib/core.py"]
    assert {5, 6, 7, 8, 9} <= set(clamp_lines)  # the body of clamp, every branch taken
    # total() is not run by test_clamp; `def` lines ran at import, outside any test.
    assert 13 not in clamp_lines
    assert {4, 12} <= set(result.outside["mathlib/core.py"])
    assert 5 not in result.outside["mathlib/core.py"]


def _newer_python_with_pytest() -> str | None:
    """An interpreter with sys.monitoring (3.12+) and pytest: $WREN_SYNTH_TEST_PYTHON, or one on PATH."""
    candidates = [os.environ.get("WREN_SYNTH_TEST_PYTHON", "")]
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in (12, 13, 14)]
    for python in filter(None, candidates):
        probe = subprocess.run(
            [python, "-c", "import sys, pytest; assert sys.version_info >= (3, 12)"], capture_output=True
        )
        if probe.returncode == 0:
            return python
    return None


def test_line_tracing_with_sys_monitoring(project: Path, tmp_path: Path):
    python = _newer_python_with_pytest()
    if python is None:
        pytest.skip("no Python 3.12+ with pytest here (set WREN_SYNTH_TEST_PYTHON to one)")
    srv = PytestServer(python, project, default_test_command(project), tmp_path / "scratch")
    try:
        result = srv.run(trace=source_files(project), timeout=120)
    finally:
        srv.close()
    assert result.status == "done" and len(result.outcomes) == 19
    clamp_lines = set(result.lines["tests/test_core.py::test_clamp"]["mathlib/core.py"])
    assert {5, 6, 7, 8, 9} <= clamp_lines and 13 not in clamp_lines
    # Each test records its own first hits: test_total sees total's lines although test_clamp ran first.
    assert {13, 14, 15, 16} <= set(result.lines["tests/test_core.py::test_total"]["mathlib/core.py"])


def test_selected_run_collects_and_runs_only_the_selection(server: PytestServer):
    ids = ["tests/test_core.py::test_total", "tests/test_core.py::test_both_positive[1--1-False]"]
    result = server.run(select_ids=ids, timeout=60)
    assert result.status == "done"
    assert result.outcomes == {i: "passed" for i in ids}


def test_failures_carry_type_message_and_frames(server: PytestServer, project: Path):
    core = project / "mathlib" / "core.py"
    core.write_text(core.read_text().replace("return a / b", "return a / (b - b)"))
    result = server.run(select_ids=["tests/test_core.py::test_ratio"], timeout=60)
    assert result.outcomes == {"tests/test_core.py::test_ratio": "failed"}
    failure = result.failures["tests/test_core.py::test_ratio"]
    assert failure["type"] == "ZeroDivisionError"
    assert "division by zero" in failure["message"]
    assert [f["function"] for f in failure["frames"]][-2:] == ["test_ratio", "ratio"]
    assert failure["frames"][-1]["path"] == "mathlib/core.py"


def test_collection_errors_are_reported(server: PytestServer, project: Path):
    core = project / "mathlib" / "core.py"
    core.write_text(core.read_text() + "\nraise RuntimeError('broken at import')\n")
    result = server.run(select_ids=["tests/test_core.py::test_total"], timeout=60)
    assert result.status == "done"
    assert "tests/test_core.py::test_total" not in result.outcomes
    assert "broken at import" in result.collect_errors[0]["message"]


def test_a_run_past_its_timeout_is_killed(server: PytestServer, project: Path):
    core = project / "mathlib" / "core.py"
    core.write_text(core.read_text().replace("        n -= 1\n", ""))
    started = time.monotonic()
    result = server.run(select_ids=["tests/test_core.py::test_countdown"], timeout=1.5)
    assert result.status == "timeout"
    assert time.monotonic() - started < 10
    # The server is still usable afterwards.
    assert server.run(select_ids=["tests/test_core.py::test_total"], timeout=60).status == "done"


def test_a_python_without_pytest_is_a_clear_error(project: Path, tmp_path: Path):
    venv = tmp_path / "bare"
    import venv as venv_mod

    venv_mod.create(venv, with_pip=False)
    srv = PytestServer(str(venv / "bin" / "python"), project, default_test_command(project), tmp_path / "s")
    try:
        with pytest.raises(SynthError, match="does this Python have pytest"):
            srv.run(timeout=30)
    finally:
        srv.close()


def test_parse_test_command():
    cmd = parse_test_command("PYTHONPATH=src python3 -m pytest -x tests/unit")
    assert cmd.env == {"PYTHONPATH": "src"} and cmd.args == ["-x", "tests/unit"]
    assert parse_test_command("pytest -q").args == ["-q"]
    assert cmd.shell() == "PYTHONPATH=src python -m pytest -x tests/unit"
    with pytest.raises(ConfigError, match="must run pytest"):
        parse_test_command("make test")
    with pytest.raises(ConfigError, match="No closing quotation"):
        parse_test_command("pytest 'oops")


def test_default_test_command_knows_src_layouts(tmp_path: Path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("")
    assert default_test_command(tmp_path).env == {"PYTHONPATH": "src"}
    shutil.rmtree(tmp_path / "src")
    assert default_test_command(tmp_path).env == {}
