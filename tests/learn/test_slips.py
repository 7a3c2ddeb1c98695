"""Checked edits and slips: demonstrations that test their own fix and recover from a wrong one,
run by the agent loop on a real git repo and judged by `wren eval`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers.fixture_repo import _diff_after, _git, write_jsonl
from wren.bench.config import BenchWrenConfig
from wren.config.assemble import assemble_config
from wren.learn.data.command_kinds import command_kind
from wren.learn.data.demos import DemoSettings, demo_replies, parse_patch, slip_command, write_demos
from wren.learn.data.episodes import load_episodes
from wren.learn.data.export import EditWindow, ExportConfig, sft_records
from wren.learn.data.slips import slip, variants
from wren.models.actions import parse_text_action

PATH_ENV = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
WRONG, RIGHT = "    if x < hi:", "    if x > hi:"
OPS = f"def clamp_high(x, hi):\n{WRONG}\n        return hi\n    return x\n"
TESTS = """from clampx.ops import clamp_high


def test_above():
    assert clamp_high(50, 10) == 10


def test_below():
    assert clamp_high(5, 10) == 5


def test_identity():
    assert clamp_high(10, 10) == 10
"""


def test_variants_change_one_token_each():
    line = "        total += count - 1"
    assert variants(line) == [
        "        total -= count - 1",
        "        total += count + 1",
        "        total += count - 2",
        "        total += count - 0",
    ]
    assert variants("    if n >= len(items):") == ["    if n > len(items):", "    if n <= len(items):"]
    assert variants("    return x is not None and y")[0] == "    return x is None and y"
    # `<=` is one token: no `<==`.
    assert all("==" not in v for v in variants("a <= b"))
    assert variants("    return value") == []


def test_a_slip_is_never_the_fix():
    for key in map(str, range(50)):
        wrong = slip(WRONG, RIGHT, key)
        assert wrong in (WRONG, "    if x >= hi:")
        # An inserted line has no old text: its slip is a variant of the fix.
        assert slip(None, RIGHT, key) in ("    if x >= hi:", "    if x < hi:")
    assert slip(None, "    return value", "k") is None
    assert slip("    return valu", "    return value", "k") == "    return valu"
    assert {slip(WRONG, RIGHT, str(k)) for k in range(50)} == {WRONG, "    if x >= hi:"}


def test_an_edit_that_runs_the_tests_is_an_edit():
    assert command_kind("sed -i '3c\\    x = 1' a.py && python -m pytest tests 2>&1 | tail -n 15") == "edit"
    assert command_kind("git checkout -- a.py && sed -i '3d' a.py && pytest -q") == "edit"
    assert command_kind("python -m pytest tests > log.txt") == "test"
    assert command_kind("patch -p1 < fix.diff && pytest") == "edit"


def _instance(repos: Path, instance_id: str) -> dict:
    work = repos / "wren-fixtures__clampx"
    if not work.exists():
        (work / "clampx").mkdir(parents=True)
        (work / "tests").mkdir()
        (work / "clampx" / "__init__.py").write_text("")
        (work / "clampx" / "ops.py").write_text(OPS)
        (work / "tests" / "test_ops.py").write_text(TESTS)
        _git(work, "init", "-q", "-b", "main")
        _git(work, "add", ".")
        _git(work, "commit", "-q", "-m", "clamp_high with a flipped comparison")
    return {
        "instance_id": instance_id,
        "repo": "wren-fixtures/clampx",
        "base_commit": _git(work, "rev-parse", "HEAD").strip(),
        "patch": _diff_after(work, "clampx/ops.py", OPS.replace(WRONG, RIGHT)),
        "test_patch": "",
        "problem_statement": "clamp_high returns hi for values below it.",
        "FAIL_TO_PASS": ["tests/test_ops.py::test_above", "tests/test_ops.py::test_below"],
        "PASS_TO_PASS": ["tests/test_ops.py::test_identity"],
        "version": "1.0",
        "test_cmd": "python3 -m pytest -rA -p no:cacheprovider tests",
    }


def _id_with_slip(wanted: str) -> str:
    return next(f"clampx-{k}" for k in range(100) if slip(WRONG, RIGHT, f"clampx-{k}") == wanted)


def test_checked_replies_make_the_fix_and_run_the_tests_in_one_step(tmp_path: Path):
    inst = _instance(tmp_path, "clampx-1")
    replies = demo_replies(inst, settings=DemoSettings(checked_edits=True))
    commands = [parse_text_action(r).command for r in replies]
    assert [command_kind(c) for c in commands] == ["test", "read", "edit", "submit"]
    assert commands[2].startswith("sed -i '2c\\    if x > hi:' clampx/ops.py && python3 -m pytest")
    assert commands[2].endswith("2>&1 | tail -n 15")
    # Without settings, the steps are as they were: the edit, then the tests on their own.
    plain = [parse_text_action(r).command for r in demo_replies(inst)]
    assert [command_kind(c) for c in plain] == ["test", "read", "edit", "test", "submit"]
    with pytest.raises(ValueError, match="slips needs checked_edits"):
        DemoSettings(slips=0.5)
    # A fix of more than one line gets no slip.
    two_lines = inst | {"patch": inst["patch"].replace(f"+{RIGHT}\n", f"+{RIGHT}\n+    pass\n")}
    assert slip_command(parse_patch(two_lines["patch"]), "k") is None


def test_slips_are_caught_by_the_tests_and_never_trained_on(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", PATH_ENV)  # the instances' `python3 -m pytest` finds pytest
    repos = tmp_path / "repos"
    caught_id, uncaught_id = _id_with_slip(WRONG), _id_with_slip("    if x >= hi:")
    instances = [_instance(repos, caught_id), _instance(repos, uncaught_id)]
    config = assemble_config([f"bench.workspace.repos={repos}"], env_kind="local", schema=BenchWrenConfig)
    settings = DemoSettings(checked_edits=True, slips=1.0)
    report = write_demos(instances, config, tmp_path / "demos", workers=2, settings=settings)
    # Both final patches are the gold fix, but `>=` passes every test: a slip the tests do not
    # catch would teach a retry after passing tests, so that demonstration is rejected.
    assert report["resolved_ids"] == [caught_id]
    assert report["rejected_ids"] == [uncaught_id]

    write_jsonl(tmp_path / "tasks.jsonl", instances)
    (episode,) = load_episodes(
        tmp_path / "demos", report=tmp_path / "demos" / "report.json", dataset=tmp_path / "tasks.jsonl"
    )
    replies = [episode.messages[i] for i in episode.assistant_indices()]
    outputs = [episode.messages[i + 1]["content"] for i in episode.assistant_indices()]
    commands = [parse_text_action(r["content"]).command for r in replies]
    # The tests, the grep and the read, then the slip and the recovery, each with its test run.
    assert [command_kind(c) for c in commands] == ["test", "find", "read", "edit", "edit", "submit"]
    assert commands[3].startswith("sed -i '2c\\    if x < hi:' clampx/ops.py && ")
    assert "2 failed" in outputs[3]
    assert commands[4].startswith("git checkout -- clampx/ops.py && sed -i '2c\\    if x > hi:' ")
    assert "2 passed" in outputs[4] and "failed" not in outputs[4]
    assert [r.get("train", True) for r in replies] == [True, True, True, False, True, True]

    window = EditWindow(steps_before=0, steps_after=None)
    (record,) = sft_records([episode], ExportConfig(edit_window=window))
    turns = [m for m in record["messages"] if m["role"] == "assistant"]
    # The window opens at the read's output: the slip is in the prompt, the recovery is trained.
    assert [m["train"] for m in turns] == [False, True, True]
    assert "if x < hi:" in turns[0]["content"] and "git checkout" in turns[1]["content"]
    # The slip was undone: the kept patch is the gold fix alone.
    changed = [
        line for line in episode.patch.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == [f"-{WRONG}", f"+{RIGHT}"]


def test_the_cli_refuses_slips_without_checked_edits(tmp_path: Path):
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [_instance(tmp_path / "repos", "clampx-1")])
    proc = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "learn", "demos", "-d", str(tasks), "-o", str(tmp_path / "d")]
        + ["--repos", str(tmp_path / "repos"), "--slips", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "slips needs checked_edits" in proc.stderr
    assert not (tmp_path / "d").exists()
