"""Edit windows: short SFT records around a run's first edit, and demonstrations retold at each rung."""

from __future__ import annotations

import pytest

from tests.learn.test_export import GOLD, HEAD, episode, reply
from wren.learn.data.episodes import Episode
from wren.learn.data.export import EditWindow, ExportConfig, sft_records
from wren.learn.data.rungs import at_levels, retold

STEPS = [
    reply("python -m pytest tests/test_m.py", "run the tests"),
    reply('grep -rn "def f(" .', "find f"),
    reply("nl -ba m.py | sed -n '1,5p'", "read f"),
    reply("sed -i '2c\\    return -x' m.py", "fix line 2"),
    reply("python -m pytest tests/test_m.py", "rerun"),
    reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached", "submit"),
]


def contents(record: dict, role: str) -> list[str]:
    return [m["content"] for m in record["messages"] if m["role"] == role]


def test_an_edit_window_keeps_the_head_the_steps_before_the_edit_and_what_follows():
    config = ExportConfig(edit_window=EditWindow(steps_before=1))
    (record,) = sft_records([episode(STEPS)], config)
    replies = contents(record, "assistant")
    assert [r.split("\n")[0] for r in replies] == [
        "THOUGHT: read f",
        "THOUGHT: fix line 2",
        "THOUGHT: rerun",
        "THOUGHT: submit",
    ]
    users = contents(record, "user")
    # the task, the note of the two steps left out, and the output the first kept reply answers
    # (one user turn: roles alternate)
    assert users[0].startswith(HEAD[1]["content"]) and "[2 earlier steps omitted]" in users[0]
    assert "output 1" in users[0] and "output 0" not in users[0]
    assert record["messages"][0]["role"] == "system"
    whole = list(sft_records([episode(STEPS)], ExportConfig()))
    trained = sum(len(c) for r in whole for c in contents(r, "assistant"))
    assert sum(len(c) for c in replies) < trained  # the edit is a larger share than in the whole run


def test_with_no_steps_before_the_window_opens_on_the_output_the_edit_answers():
    (record,) = sft_records([episode(STEPS)], ExportConfig(edit_window=EditWindow(steps_before=0)))
    assert contents(record, "assistant")[0].startswith("THOUGHT: fix line 2")
    assert (
        "output 2" in contents(record, "user")[0]
        and "[3 earlier steps omitted]" in contents(record, "user")[0]
    )


def test_a_run_without_an_edit_is_cut_into_windows_as_before():
    plain = episode(STEPS[:2] + STEPS[-1:])
    windows = list(sft_records([plain], ExportConfig(edit_window=EditWindow())))
    assert windows == list(sft_records([plain], ExportConfig()))


def test_records_keep_the_rung_and_the_repository_of_their_task():
    run = episode(STEPS)
    run.instance = {"instance_id": "t-1", "patch": GOLD, "repo": "o/r", "hint_level": 3, "family": "t"}
    (record,) = sft_records([run], ExportConfig(edit_window=EditWindow()))
    assert (record["repo"], record["hint_level"], record["family"]) == ("o/r", 3, "t")


def task() -> dict:
    return {
        "instance_id": "o__r-7",
        "repo": "o/r",
        "patch": GOLD,
        "statement_l0": "f gives the wrong sign.",
        "statement_l1": "Fix f in m.py.",
        "problem_statement": "Fix f in m.py.\n",
        "hint_level": 1,
        "mutation": {
            "file": "m.py",
            "function": "f",
            "line": 2,
            "now": ["    return x"],
            "must": ["    return -x"],
        },
    }


def test_a_demonstration_is_retold_at_each_rung_with_only_its_statement_changed():
    run = episode(STEPS)
    run.instance = task()
    copies, missed = at_levels([run], [1, 3, 4])
    assert missed == 0 and [c.instance_id for c in copies] == ["o__r-7.L1", "o__r-7.L3", "o__r-7.L4"]
    l3, l4 = copies[1], copies[2]
    assert "return x" in l4.messages[1]["content"] and "return -x" in l4.messages[1]["content"]
    assert (
        "return -x" not in l3.messages[1]["content"]
        and "Line 2 of `m.py` is wrong" in l3.messages[1]["content"]
    )
    assert l4.messages[2:] == run.messages[2:] and l4.verdict == run.verdict
    assert l4.instance["hint_level"] == 4 and l4.instance["family"] == "o__r-7"
    (record,) = sft_records([l4], ExportConfig(edit_window=EditWindow()))
    assert record["hint_level"] == 4 and record["family"] == "o__r-7"


def test_demonstrations_told_at_one_rung_each_take_the_rungs_in_turn():
    runs = []
    for n in range(5):
        run = episode(STEPS)
        run.instance = task() | {"instance_id": f"o__r-{n}"}
        runs.append(run)
    one, missed = at_levels(runs, [1, 3, 4], per_episode=1)
    assert missed == 0
    assert [c.instance_id for c in one] == ["o__r-0.L1", "o__r-1.L3", "o__r-2.L4", "o__r-3.L1", "o__r-4.L3"]
    two, _ = at_levels(runs[:3], [1, 3, 4], per_episode=2)
    assert [c.instance_id for c in two] == [
        "o__r-0.L1",
        "o__r-0.L3",
        "o__r-1.L4",
        "o__r-1.L1",
        "o__r-2.L3",
        "o__r-2.L4",
    ]
    with pytest.raises(ValueError, match="1 to 3"):
        at_levels(runs, [1, 3, 4], per_episode=4)


def test_a_run_whose_prompt_does_not_hold_the_statement_is_not_retold():
    run = episode(STEPS)
    run.instance = task() | {"problem_statement": "Something else entirely."}
    assert retold(run, 4) is None
    bare = Episode("x", run.messages, "Submitted", "", instance=None)
    assert at_levels([bare], [2, 4]) == ([], 2)


def test_steps_after_the_edit_can_be_left_out_but_the_submit_stays():
    config = ExportConfig(edit_window=EditWindow(steps_before=0, steps_after=0))
    (record,) = sft_records([episode(STEPS)], config)
    replies = [r.split("\n")[0] for r in contents(record, "assistant")]
    assert replies == ["THOUGHT: fix line 2", "THOUGHT: submit"]
    users = contents(record, "user")
    assert (
        "output 3" in users[1] and "[1 earlier steps omitted]" in users[1]
    )  # the edit's output, then the note
    keep_one = ExportConfig(edit_window=EditWindow(steps_before=0, steps_after=1))
    (record,) = sft_records([episode(STEPS)], keep_one)
    assert [r.split("\n")[0] for r in contents(record, "assistant")] == [
        "THOUGHT: fix line 2",
        "THOUGHT: rerun",
        "THOUGHT: submit",
    ]


def test_a_window_that_opens_on_the_task_teaches_its_first_kept_step_as_the_runs_first():
    settings = EditWindow(steps_before=2, steps_after=0, opens_on_task=True)
    (record,) = sft_records([episode(STEPS)], ExportConfig(edit_window=settings))
    assert [r.split("\n")[0] for r in contents(record, "assistant")] == [
        "THOUGHT: find f",
        "THOUGHT: read f",
        "THOUGHT: fix line 2",
        "THOUGHT: submit",
    ]
    messages = record["messages"]
    # The task, then at once the grep: no note of the test run left out, none of its output.
    assert messages[1]["content"] == HEAD[1]["content"] and messages[2]["role"] == "assistant"
    users = contents(record, "user")
    assert not any("output 0" in u for u in users) and "[" not in users[0]
    assert "output 1" in users[1] and "output 2" in users[2]
    # the rerun left out between the edit and the submit is still noted
    assert "[1 earlier steps omitted]" in users[3]


def test_records_take_the_window_of_their_rung():
    settings = EditWindow(
        steps_before=0,
        steps_after=0,
        rungs={2: {"steps_before": 2, "steps_after": 0, "opens_on_task": True}},
    )
    runs = []
    for level in (2, 4):
        run = episode(STEPS)
        run.instance = task() | {"hint_level": level}
        runs.append(run)
    l2, l4 = sft_records(runs, ExportConfig(edit_window=settings))
    first = [contents(r, "assistant")[0].split("\n")[0] for r in (l2, l4)]
    assert first == ["THOUGHT: find f", "THOUGHT: fix line 2"]
    bare = episode(STEPS)  # a task off the ladder takes the window's own steps
    (record,) = sft_records([bare], ExportConfig(edit_window=settings))
    assert contents(record, "assistant")[0].startswith("THOUGHT: fix line 2")


def test_rung_windows_are_validated_with_the_export_config():
    from wren.config.loader import validate
    from wren.exceptions import ConfigError

    config = validate(ExportConfig, {"edit_window": {"rungs": {"1": {"steps_before": 2}}}}, where="export")
    assert config.edit_window.at(1).steps_before == 2 and config.edit_window.at(3).steps_before == 1
    with pytest.raises(ConfigError, match="opens_on_tsk"):
        validate(ExportConfig, {"edit_window": {"rungs": {"1": {"opens_on_tsk": True}}}}, where="export")
    with pytest.raises(ConfigError):
        validate(ExportConfig, {"edit_window": {"rungs": {"one": {}}}}, where="export")
