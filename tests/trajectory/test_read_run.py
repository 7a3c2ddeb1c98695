"""`wren.trajectory.read_run` on runs recorded for real: Wren's final file, its per-step log, a crashed run,
a mini-swe-agent 2.x run, a bare message list; the steps view with demonstrations; the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import bash
from tests.peers.recorded_runs import FIX, record_mini_run, record_wren_run
from wren.exceptions import WrenError
from wren.trajectory import LAYOUTS, Run, TrajectoryError, find_runs, read_run

COMMANDS = [
    "cat calc.py",
    "grep -n 'a - b' calc.py",
    "sed -i 's/a - b/a + b/' calc.py",
    "python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo fixed",
]


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory) -> Path:
    return record_wren_run(tmp_path_factory.mktemp("runs"), "calc-fixed", FIX)


def assert_the_fix(run: Run) -> None:
    assert run.exit_status == "Submitted" and run.finished
    assert "+    return a + b" in run.submission
    assert len(run.steps) == 5 and [s.number for s in run.steps] == [1, 2, 3, 4, 5]
    assert [m["role"] for m in run.opening] == ["system", "user"]
    assert run.steps[-1].exit is not None and run.steps[0].exit is None
    # The config names the model; a bare log has only what each reply says answered it.
    assert run.model_name == ("scripted" if run.layout == "wren-jsonl" else "scripted/calc-fixed-model")
    stats = run.model_stats
    assert (stats.api_calls, round(stats.instance_cost, 4)) == (5, 0.05)


def test_a_wren_run_reads_alike_from_its_directory_its_final_file_and_its_log(fixed_run):
    from_dir = read_run(fixed_run)
    final = read_run(fixed_run / "calc-fixed.traj.json")
    log = read_run(fixed_run / "trajectory.jsonl")
    assert (from_dir.layout, final.layout, log.layout) == ("wren", "wren", "wren-jsonl")
    assert from_dir.path == final.path
    for run in (final, log):
        assert_the_fix(run)
        # What ran comes from the per-step log, beside the final file or read alone.
        assert [s.action for s in run.steps] == [*COMMANDS, None], "the submission step runs nothing"
        assert [s.returncode for s in run.steps[:4]] == [0, 0, 0, 0]
        assert "return a - b" in run.steps[0].output and run.steps[3].output.strip() == "fixed"
        assert all(s.cost == 0.01 and s.model == "scripted" for s in run.steps)
        assert run.timing.started <= run.timing.ended
    assert final.name == log.name == "calc-fixed"
    assert final.config["agent"]["step_limit"] == 0
    assert final.to_dict()["info"]["exit_status"] == "Submitted"


def test_a_final_file_without_its_log_still_has_its_steps(fixed_run, tmp_path):
    copy = tmp_path / "calc-fixed.traj.json"
    copy.write_text((fixed_run / "calc-fixed.traj.json").read_text())
    run = read_run(copy)
    assert_the_fix(run)
    assert run.records == [] and all(s.action is None for s in run.steps), (
        "the final file does not say what ran"
    )

    # Another run's log beside it (two runs written to one directory) lends it nothing.
    other = (fixed_run / "trajectory.jsonl").read_text().replace("return a - b", "return a * b")
    (tmp_path / "trajectory.jsonl").write_text(other)
    run = read_run(copy)
    assert len(run.records) == 6 and all(s.action is None for s in run.steps)


def test_a_crashed_run_is_its_log_up_to_the_line_it_was_writing(fixed_run, tmp_path):
    lines = (fixed_run / "trajectory.jsonl").read_text().splitlines(keepends=True)
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "trajectory.jsonl").write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    run = read_run(crashed)
    assert run.layout == "wren-jsonl" and not run.finished and run.exit_status == ""
    assert [s.action for s in run.steps] == COMMANDS[:2]
    assert run.model_stats.api_calls == 2 and round(run.model_stats.instance_cost, 4) == 0.02
    assert run.name == "crashed"

    (crashed / "trajectory.jsonl").write_text(lines[0] + "{not json\n" + lines[1])
    with pytest.raises(TrajectoryError, match=r"trajectory.jsonl:2 is not JSON"):
        read_run(crashed)


def test_a_mini_swe_agent_run_reads_with_its_actions_and_outputs(tmp_path):
    path = record_mini_run(tmp_path, "mini-calc")
    run = read_run(path)
    saved = json.loads(path.read_text())
    assert run.layout == "mini-swe-agent"
    assert run.exit_status == "Submitted" and "+    return a + b" in run.submission
    assert run.model_name == "mini-deterministic"
    assert run.model_stats.api_calls == 3
    assert run.model_stats.instance_cost == saved["info"]["model_stats"]["instance_cost"]
    assert [s.action for s in run.steps] == [
        "cat calc.py",
        "sed -i 's/a - b/a + b/' calc.py",
        "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff",
    ]
    assert "return a - b" in run.steps[0].output and run.steps[0].returncode == 0
    assert [m["role"] for m in run.opening] == ["system", "user"]
    assert run.name == "mini-calc"


def test_a_bare_message_list_is_the_oldest_layout(tmp_path):
    path = tmp_path / "old.json"
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": bash("ls")},
        {"role": "user", "content": "calc.py"},
    ]
    path.write_text(json.dumps(messages))
    run = read_run(path)
    assert run.layout == "message-list" and run.layout in LAYOUTS
    assert run.exit_status == "" and len(run.steps) == 1 and run.steps[0].answers[0]["content"] == "calc.py"
    assert run.name == "old"


DEMOS = [
    {"role": "user", "content": "Example: list the files."},
    {"role": "assistant", "content": bash("echo demonstration", "An example reply.")},
]


def test_demonstrations_are_in_the_opening_not_steps(tmp_path):
    out = record_wren_run(tmp_path, "demo", FIX, demonstrations=DEMOS)
    copy = tmp_path / "demo.traj.json"  # without its log: the config says how many turns are examples
    copy.write_text((out / "demo.traj.json").read_text())
    for run in (read_run(out), read_run(out / "trajectory.jsonl"), read_run(copy)):
        assert [m["role"] for m in run.opening] == ["system", "user", "assistant", "user"]
        assert len(run.steps) == 5 == run.model_stats.api_calls
        assert "echo demonstration" not in json.dumps([s.messages for s in run.steps])
        assert run.pages[0] == run.opening and len(run.pages) == 6


def test_replaying_a_run_with_demonstrations_replays_only_its_replies(tmp_path):
    from wren.environments.local import LocalEnvironment
    from wren.models.scripted import assistant_outputs
    from wren.replay import replay

    out = record_wren_run(tmp_path, "demo", FIX, demonstrations=DEMOS)
    outputs = assistant_outputs(out)
    assert [o["content"] for o in outputs] == FIX
    steps = replay(out / "demo.traj.json", LocalEnvironment(cwd=str(tmp_path / "repos" / "demo")))
    assert [s.action for s in steps][:2] == COMMANDS[:2] and [s.step for s in steps][:2] == [1, 2]
    assert "echo demonstration" not in [s.action for s in steps]


def test_unreadable_paths_are_trajectory_errors(tmp_path):
    assert issubclass(TrajectoryError, WrenError)
    with pytest.raises(TrajectoryError, match="does not exist"):
        read_run(tmp_path / "nope")
    with pytest.raises(TrajectoryError, match="no trajectories"):
        read_run(tmp_path)
    (tmp_path / "a.traj.json").write_text(json.dumps({"info": {}, "messages": "not a list"}))
    with pytest.raises(TrajectoryError, match="no `messages` list"):
        read_run(tmp_path / "a.traj.json")
    (tmp_path / "b.traj.json").write_text("{")
    with pytest.raises(TrajectoryError, match="cannot read"):
        read_run(tmp_path / "b.traj.json")
    for name in ("one", "two"):
        record_wren_run(tmp_path / "batch", name, FIX[-1:])
    with pytest.raises(TrajectoryError, match="holds 2 runs"):
        read_run(tmp_path / "batch" / "runs")
    assert [p.name for p in find_runs(tmp_path / "batch")] == ["one.traj.json", "two.traj.json"]
