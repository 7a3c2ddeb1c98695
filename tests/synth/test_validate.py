"""Validation on the fixture project: what is kept, what is dropped and why, and that kept tasks are right."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wren.synth.pipeline import SynthConfig, synthesize


def _tasks(run) -> list[dict]:
    return [json.loads(line) for line in Path(run["config"].output).read_text().splitlines()]


def _attempts(out_dir: Path) -> list[dict]:
    (path,) = (out_dir / ".wren-synth").glob("*/attempts-*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _attempt(attempts: list[dict], function: str, mutator: str) -> list[dict]:
    return [a for a in attempts if a["function"] == function and a["mutator"] == mutator]


def test_a_caught_mutation_is_kept_with_its_failing_and_passing_tests(synth_run):
    tasks = _tasks(synth_run)
    clamp_flips = [
        t for t in tasks if t["mutation"]["function"] == "clamp" and t["mutator"] == "flip_comparison"
    ]
    assert len(clamp_flips) == 2  # `value < low` and `value > high`
    for task in clamp_flips:
        assert task["FAIL_TO_PASS"] == ["tests/test_core.py::test_clamp"]
        assert "tests/test_core.py::test_total" in task["PASS_TO_PASS"]
        assert "tests/test_core.py::test_clamp" not in task["PASS_TO_PASS"]


def test_a_mutation_no_test_notices_is_dropped(synth_run):
    attempts = _attempts(synth_run["base"] / "out")
    (scale_op,) = _attempt(attempts, "scale", "change_operator")  # x * 1 -> x / 1: same value
    assert scale_op["status"] == "dropped" and scale_op["reason"] == "no_failing_test"
    (scale_const,) = _attempt(attempts, "scale", "change_constant")  # x * 1 -> x * 0: caught
    assert scale_const["status"] == "validated"


def test_a_mutation_that_hangs_is_dropped_as_timeout(synth_run):
    attempts = _attempts(synth_run["base"] / "out")
    removal = [a for a in _attempt(attempts, "countdown", "remove_assignment") if a["lines"] == [78, 78]]
    assert removal and removal[0]["reason"] == "timeout"
    assert removal[0]["seconds"] < 30  # the floor: a few times the time to collect the suite
    tasks = _tasks(synth_run)
    assert not any(
        t["mutation"]["function"] == "countdown" and t["mutation"]["lines"] == [78, 78] for t in tasks
    )


def test_a_test_flaky_on_clean_code_is_never_listed(synth_run):
    report = synth_run["report"]
    assert report.flaky_tests == ["tests/test_flaky.py::test_flaky"]
    for task in _tasks(synth_run):
        assert "tests/test_flaky.py::test_flaky" not in task["FAIL_TO_PASS"] + task["PASS_TO_PASS"]


def test_every_task_is_consistent(synth_run):
    report = synth_run["report"]
    tasks = _tasks(synth_run)
    assert len(tasks) == report.validated
    assert report.yield_rate >= 0.8
    assert {t["mutator"] for t in tasks} >= {
        "flip_comparison",
        "remove_loop",
        "invert_if_else",
        "swap_operands",
    }
    assert len({t["instance_id"] for t in tasks}) == len(tasks)
    for task in tasks:
        f2p, p2p = set(task["FAIL_TO_PASS"]), set(task["PASS_TO_PASS"])
        assert f2p and p2p and not f2p & p2p
        assert len(f2p | p2p) == report.stable_tests
        assert task["test_patch"] == "" and task["environment_setup_commit"] == task["base_commit"]
        assert task["repo"] == "local/mathlib-project" and task["instance_id"].startswith(
            "local__mathlib-project-"
        )


def _checkout(entry: Path, commit: str, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--no-checkout", str(entry), str(dest)], check=True)
    subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "-q", commit], cwd=dest, check=True)
    return dest


def _pytest(repo: Path, tests: list[str]) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", *tests],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    statuses = {}
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR"):
            statuses[rest.split(" - ")[0]] = word
    return statuses


def test_the_broken_commit_fails_and_the_patch_fixes_it(synth_run, tmp_path: Path):
    tasks = _tasks(synth_run)
    entry = Path(synth_run["report"].repos_entry)
    # One task per mutator kind is enough to show it; each costs two pytest runs.
    sample = list({t["mutator"]: t for t in tasks}.values())[:6]
    for i, task in enumerate(sample):
        repo = _checkout(entry, task["base_commit"], tmp_path / f"t{i}")
        log = subprocess.run(["git", "log", "--format=%s"], cwd=repo, capture_output=True, text=True).stdout
        assert log.splitlines() == ["mathlib-project"]  # a root commit: history shows nothing of the fix
        before = _pytest(repo, task["FAIL_TO_PASS"])
        assert all(before.get(t) != "PASSED" for t in task["FAIL_TO_PASS"]), (task["instance_id"], before)
        subprocess.run(["git", "apply", "-"], input=task["patch"], text=True, cwd=repo, check=True)
        after = _pytest(repo, [])
        for test in task["FAIL_TO_PASS"] + task["PASS_TO_PASS"]:
            assert after.get(test) == "PASSED", (task["instance_id"], test)


def test_the_users_repository_is_left_untouched(synth_run):
    project = synth_run["project"]
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=project, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""
    branches = subprocess.run(["git", "branch"], cwd=project, capture_output=True, text=True).stdout.split()
    assert len([b for b in branches if b != "*"]) == 1


def test_a_test_that_fails_only_sometimes_under_a_mutation_is_not_trusted(project: Path, tmp_path, counters):
    counters("sometimes")
    config = SynthConfig(
        repo_dir=str(project),
        output=str(tmp_path / "out" / "tasks.jsonl"),
        workers=1,
        mutators=["break_method_chain", "drop_return_value"],
        progress=False,
        python=sys.executable,  # with this process's variables, where the counters are
    )
    synthesize(config)
    attempts = _attempts(tmp_path / "out")
    normalize = sorted(a["reason"] for a in attempts if a["function"] == "normalize")
    # Clean runs 0 and 1 pass; the first mutation's run 2 passes; the second fails on run 3 and
    # passes on its confirmation (run 4): flaky, so neither becomes a task.
    assert normalize == ["flaky", "no_failing_test"]
    for line in (tmp_path / "out" / "tasks.jsonl").read_text().splitlines():
        # (It may be a PASS_TO_PASS test elsewhere: on the clean code, what the fix restores, it passes.)
        assert "tests/test_flaky.py::test_sometimes" not in json.loads(line)["FAIL_TO_PASS"]
