"""`wren synth` end to end through the command line: output, snapshot, determinism, resuming, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WREN = [sys.executable, "-m", "wren.cli.main"]


def _synth(
    *args: str, env: dict | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    # Wren's own interpreter (these tests are not about the environment, see test_judge_env), with
    # the variables the fixture's flaky tests count their runs in.
    return subprocess.run(
        [*WREN, "synth", *args, "--quiet", "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_writes_tasks_report_and_a_git_snapshot(project: Path, tmp_path: Path):
    out = tmp_path / "out" / "tasks.jsonl"
    proc = _synth(str(project), "-o", str(out), "--max", "4", "-w", "2", "--report", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    assert "4 tasks from" in proc.stderr
    tasks = _lines(out)
    assert len(tasks) == 4
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["validated"] == 4 and report["tests"] == 19
    entry = tmp_path / "out" / "repos" / "local__mathlib-project"
    assert report["repos_entry"] == str(entry)
    branches = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
        cwd=entry,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    refs = dict(line.split() for line in branches)
    assert refs["main"] == report["snapshot"]
    for task in tasks:
        assert refs[task["instance_id"]] == task["base_commit"]
        assert task["clean_commit"] == report["snapshot"]
        assert task["test_cmd"] == "python -m pytest -rA -p no:cacheprovider"
        assert isinstance(task["FAIL_TO_PASS"], list) and isinstance(task["PASS_TO_PASS"], list)
    # The entry is a checkout of the clean snapshot.
    assert (entry / "mathlib" / "core.py").read_text() == (project / "mathlib" / "core.py").read_text()


def test_same_seed_same_tasks_and_resuming_extends_them(project: Path, tmp_path: Path):
    first = tmp_path / "a" / "tasks.jsonl"
    assert _synth(str(project), "-o", str(first), "--max", "3", "--seed", "7").returncode == 0
    three = first.read_text()
    proc = _synth(str(project), "-o", str(first), "--max", "6", "--seed", "7")
    assert proc.returncode == 0, proc.stderr
    assert first.read_text().startswith(three)
    assert len(_lines(first)) == 6
    # Nothing more to do at the same limit: no new task, none made twice.
    proc = _synth(str(project), "-o", str(first), "--max", "6", "--seed", "7")
    assert proc.returncode == 0 and "0 tasks from 0 candidates" in proc.stderr
    assert len(_lines(first)) == 6

    # A fresh run elsewhere with the same seed makes the very same six tasks, commits included.
    second = tmp_path / "b" / "tasks.jsonl"
    assert _synth(str(project), "-o", str(second), "--max", "6", "--seed", "7", "-w", "1").returncode == 0
    assert second.read_text() == first.read_text()
    # Another seed picks other candidates first.
    third = tmp_path / "c" / "tasks.jsonl"
    assert _synth(str(project), "-o", str(third), "--max", "3", "--seed", "8").returncode == 0
    assert [t["instance_id"] for t in _lines(third)] != [t["instance_id"] for t in _lines(first)[:3]]


# A pytest plugin for the fixture's test runs: once the run has written a task, every further run
# waits at its start until the release file exists. The interrupted run is then caught between its
# first and its last task, however fast or slow the machine.
HOLD_PLUGIN = """
import os, time

def pytest_sessionstart(session):
    tasks, release = os.environ["SYNTH_HOLD"].split(os.pathsep)
    while os.path.exists(tasks) and os.path.getsize(tasks) and not os.path.exists(release):
        time.sleep(0.02)
"""


def test_an_interrupted_run_resumes_to_the_same_result(synth_run, tmp_path: Path):
    """Stop a full pass with Ctrl-C once it has written something, resume it, and compare with the
    uninterrupted pass over the same project (same seed, same flaky-test setup)."""
    project = synth_run["project"]
    out = tmp_path / "out" / "tasks.jsonl"
    state = tmp_path / "state"
    state.mkdir()
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "synth_hold.py").write_text(HOLD_PLUGIN)
    release = tmp_path / "release"
    env = {**os.environ, "SYNTH_FIXTURE_FLAKY": str(state)}
    held = {
        **env,
        "PYTEST_PLUGINS": "synth_hold",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(plugins), os.environ.get("PYTHONPATH")])),
        "SYNTH_HOLD": f"{out}{os.pathsep}{release}",
    }
    args = [*WREN, "synth", str(project), "-o", str(out), "-w", "2", "--quiet", "--python", sys.executable]
    proc = subprocess.Popen(args, env=held, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The handshake: a task is on disk (and the runs after it are held).
    deadline = time.monotonic() + 600
    while not (out.exists() and out.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no task was written"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    release.touch()  # the held runs finish; the interrupted run records only what came before
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode != 0, stderr
    partial = _lines(out)
    assert 1 <= len(partial) < synth_run["report"].validated

    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(partial)} done before" in resumed.stderr or "done before" in resumed.stderr
    assert out.read_text() == Path(synth_run["config"].output).read_text()


def test_outputs_inside_the_repository_stay_out_of_its_snapshot(project: Path):
    proc = _synth(".", "-o", "synth-out/tasks.jsonl", "--max", "1", cwd=project)
    assert proc.returncode == 0, proc.stderr
    entry = project / "synth-out" / "repos" / "local__mathlib-project"
    (task,) = _lines(project / "synth-out" / "tasks.jsonl")
    files = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", task["base_commit"]],
        cwd=entry,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "mathlib/core.py" in files and not any(f.startswith("synth-out") for f in files)
    # Run again: the snapshot (and so every id) is the same although the outputs now exist.
    again = _synth(".", "-o", "synth-out/tasks.jsonl", "--max", "1", cwd=project)
    assert again.returncode == 0 and "0 tasks from 0 candidates" in again.stderr


def test_a_torn_last_line_is_repaired_on_resume(project: Path, tmp_path: Path):
    out = tmp_path / "tasks.jsonl"
    assert _synth(str(project), "-o", str(out), "--max", "2").returncode == 0
    with open(out, "a") as f:
        f.write('{"instance_id": "local__mathlib-project-tor')
    assert _synth(str(project), "-o", str(out), "--max", "3").returncode == 0
    assert len(_lines(out)) == 3


def test_bad_input_gets_a_clear_error(project: Path, tmp_path: Path):
    out = str(tmp_path / "t.jsonl")
    proc = _synth(str(tmp_path / "missing"), "-o", out)
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    proc = _synth(str(project), "-o", out, "--test-cmd", "make test")
    assert proc.returncode == 2 and "must run pytest" in proc.stderr
    proc = _synth(str(project), "-o", out, "--mutators", "flip_comparison,nope")
    assert proc.returncode == 2 and "unknown mutator 'nope'" in proc.stderr
    proc = _synth(str(project), "-o", out, "--workers", "0")
    assert proc.returncode == 2 and "synth.workers" in proc.stderr
    no_tests = tmp_path / "no-tests"
    no_tests.mkdir()
    (no_tests / "lib.py").write_text("def f(x):\n    return x + 1\n")
    proc = _synth(str(no_tests), "-o", out)
    assert proc.returncode == 1 and "ran no tests" in proc.stderr


def test_list_mutators():
    proc = subprocess.run([*WREN, "synth", ".", "-o", "x", "--list-mutators"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "flip_comparison" in proc.stderr and "break_method_chain" in proc.stderr
