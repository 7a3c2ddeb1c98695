"""The loop's curriculum over two rounds, on tasks synthesized from a real project, with real agent
runs judged by the real judge. The model is a policy behind an OpenAI-compatible server that can
make the fix only when the statement gives it (L4): the loop withdraws L4's hint from every family
it passed, and gives it back to a family whose every sample failed at L3."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.peers.openai_server import ScriptedOpenAIServer
from tests.synth.conftest import make_project
from wren.learn.data.demos import SUBMIT, Hunk, edit_command
from wren.learn.data.export import read_jsonl
from wren.learn.loop import Loop
from wren.learn.loop_config import LoopConfig
from wren.learn.report import write_report
from wren.learn.served_model import ServedModel

SPAN = re.compile(r"(?:Lines? (\d+)(?:-(\d+))? of|(?:after line|missing after line) (\d+) of) `([^`]+)`")
FENCE = re.compile(r"```python\n(.*?)\n```", re.S)


def reply(thought: str, command: str) -> str:
    return f"THOUGHT: {thought}\n```bash\n{command}\n```"


def hint_reader(body: dict) -> str:
    """Makes the fix the statement spells out (L4), else an edit that changes nothing; then submits."""
    messages = body.get("messages") or []
    task = max(
        (i for i, m in enumerate(messages) if m.get("role") == "user" and SPAN.search(str(m.get("content")))),
        default=None,
    )
    if task is None:
        return reply("Nothing to go on.", SUBMIT)
    if any(m.get("role") == "assistant" for m in messages[task + 1 :]):
        return reply("Done.", SUBMIT)
    text = str(messages[task]["content"])
    first, last, after, path = SPAN.search(text).groups()
    blocks = FENCE.findall(text)
    if "must read" in text:
        start = int(first)
        old = "\n".join(blocks[-2].split("\n")) + "\n"
        command = edit_command([Hunk(path, start, old, blocks[-1] + "\n")])
    elif "must be removed" in text:
        start = int(first)
        count = int(last) - start + 1 if last else 1
        command = edit_command([Hunk(path, start, "x\n" * count, "")])
    elif "Insert" in text:
        command = edit_command([Hunk(path, int(after) + 1, "", blocks[-1] + "\n")])
    else:
        command = f"sed -i 's/$//' {path}"  # an edit that changes nothing: the fix is not known
    return reply("I make the change the task names.", command)


@pytest.fixture
def loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Loop:
    project = make_project(tmp_path / "mathlib-project")
    config = LoopConfig(
        work_dir=str(tmp_path / "work"),
        train_repos=[str(project)],
        heldout_repos=[],
        workers=2,
        step_limit=4,
        synth={"python": sys.executable, "timeout": 60},
        curriculum={"start_level": 4, "min_level": 1, "samples": 2, "regain_after": 1},
        export={"max_tokens": 1280, "edit_window": {"steps_before": 0, "steps_after": 0}},
    )
    loop = Loop(config, log=lambda line: None)
    loop._synth([str(project)], loop.work / "tasks" / "train.jsonl", 4)
    return loop


def test_hints_are_withdrawn_after_a_pass_and_regained_after_a_round_of_failures(
    loop: Loop, tiny_model: Path
):
    tasks = loop.tasks("train")
    assert len(tasks) >= 2
    with ScriptedOpenAIServer([], respond=hint_reader) as server:
        first = loop._curriculum_round(0, ServedModel(server.url))
        second = loop._curriculum_round(1, ServedModel(server.url))
    families = {t["instance_id"] for t in tasks}
    assert set(first["before"]) == families and all(s["level"] == 4 for s in first["before"].values())
    passed = {f for f, n in first["passes"].items() if n > 0}
    assert passed, first  # the policy makes the fixes L4 spells out
    for family, state in first["after"].items():
        # one hint withdrawn where a sample passed; kept (L4 is the top) where every sample failed
        assert state["level"] == (3 if family in passed else 4), (family, first)
    assert first["rungs"]["L4"]["families"] == len(families)
    assert first["rungs"]["L4"]["resolved"] == sum(first["passes"].values())
    # Round 1 tries the passed families at L3: the statement names the wrong line, not the fix.
    round_tasks = [json.loads(line) for line in (loop.work / "rounds" / "round-1" / "tasks.jsonl").open()]
    at_l3 = [t for t in round_tasks if t["hint_level"] == 3]
    assert {t["family"] for t in at_l3} == passed
    assert all(
        t["instance_id"] == f"{t['family']}.L3" and "must read" not in t["problem_statement"] for t in at_l3
    )
    assert second["before"] == first["after"]
    for family in passed:
        assert second["passes"][family] == 0
        assert second["after"][family]["level"] == 4  # every sample failed at L3: the hint comes back
        assert second["after"][family]["lowest_passed"] == 4
    assert second["rungs"]["L3"] == {
        "families": len(passed),
        "runs": 2 * len(passed),
        "resolved": 0,
        "rate": 0.0,
        "pass_any": 0.0,
    }
    # A loop run again resumes: the finished rounds are read, not run again.
    assert loop._curriculum_round(1, ServedModel("http://127.0.0.1:9/v1")) == second
    report = {"rounds": [], "evaluations": {}, "stage_seconds": {}, "curriculum": [first, second]}
    html = write_report(report, loop.work / "report.json").with_suffix(".html").read_text()
    assert "Resolve rate per rung" in html and "<th>L3</th>" in html and "0 / " in html

    # The round's training data: every judged demonstration at every rung, and the successes so far,
    # each an edit window that keeps its rung, repository and family.
    demos = loop._demos(tasks, loop.work / "demos")
    counts = loop.round_data(1, tiny_model)
    records = read_jsonl(loop.work / "rounds" / "round-1" / "data" / "sft.jsonl")
    levels = Counter(r["hint_level"] for r in records)
    successes = sum(first["passes"].values())
    assert counts["demos_not_retold"] == 0 and counts["rollout_resolved"] == 0  # round 1 passed nothing
    assert levels == {1: demos["kept"], 2: demos["kept"], 3: demos["kept"], 4: demos["kept"] + successes}
    assert {r["family"] for r in records} <= families and all(r["repo"] for r in records)
    for record in records:
        replies = [m["content"] for m in record["messages"] if m["role"] == "assistant" and m["train"]]
        assert len(replies) == 2 and "sed -i" in replies[0] and "COMPLETE_TASK_AND_SUBMIT" in replies[1]
