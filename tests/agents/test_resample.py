"""Asking again for a reply that reruns the step before it: a real HTTP model, a real shell."""

from __future__ import annotations

import pytest

from tests.conftest import SUBMIT, bash, make_git_repo
from wren import DefaultAgent
from wren.agents.repeats import list_parts, reruns
from wren.environments import get_environment
from wren.exceptions import ConfigError
from wren.models import get_model

WRONG = (
    "sed -i '1c\\def add(a, b): return a * b' calc.py && python3 -m pytest -q test_calc.py 2>&1 | tail -n 3"
)
RIGHT = (
    "sed -i '1c\\def add(a, b): return a + b' calc.py && python3 -m pytest -q test_calc.py 2>&1 | tail -n 3"
)
RETRY_WRONG = f"git checkout -- calc.py && {WRONG}"
RETRY_RIGHT = f"git checkout -- calc.py && {RIGHT}"


def test_reruns_finds_an_earlier_command_inside_a_later_one():
    assert list_parts("a &&  b | c ;d\n e") == ["a", "b | c", "d", "e"]
    assert reruns(RETRY_WRONG, WRONG) and reruns(WRONG, WRONG)
    assert not reruns(RETRY_RIGHT, WRONG)
    # Part by part, not character by character: `ls` inside `ls -la` is another command.
    assert not reruns("ls -la", "ls") and reruns("cd src && ls", "ls")
    assert not reruns("anything", "  ")


def agent_over(server, repo, **config):
    model = get_model(
        {"name": "openai/scripted", "api_base": server.url, "api_key": "k", "completion_kwargs": {"seed": 7}}
    )
    return DefaultAgent(model, get_environment("local", cwd=str(repo)), step_limit=6, cost_limit=0, **config)


@pytest.fixture
def repo(tmp_path):
    return make_git_repo(
        tmp_path / "repo",
        {
            "calc.py": "def add(a, b): return a - b\n",
            "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
        },
    )


def test_a_retry_of_the_same_edit_is_drawn_again_with_a_new_seed(scripted_server, repo):
    server = scripted_server([bash(WRONG), bash(RETRY_WRONG), "no block here", bash(RETRY_RIGHT), SUBMIT])
    agent = agent_over(server, repo, resample={"tries": 3, "temperature": 0.9})
    result = agent.run("Fix add()")

    assert result.exit_status == "Submitted" and "return a + b" in result.submission
    # The step that took three calls is one step: the wrong edit, the right one, the submit.
    assert result.n_steps == 3
    bodies = [r["body"] for r in server.completions]
    assert [b.get("seed") for b in bodies] == [7, 7, 8, 9, 7]
    assert [b.get("temperature") for b in bodies[2:4]] == [0.9, 0.9]
    # The draws answer the history without the set-aside reply in it.
    assert bodies[2]["messages"] == bodies[1]["messages"]
    replies = [m for m in result.messages if m["role"] == "assistant"]
    assert [m["content"] for m in replies] == [bash(WRONG), bash(RETRY_RIGHT), SUBMIT]
    set_aside = replies[1]["extra"]["resampled"]
    assert [m["content"] for m in set_aside] == [bash(RETRY_WRONG), "no block here"]
    assert "1 passed" in result.messages[result.messages.index(replies[1]) + 1]["content"]


def test_when_every_draw_repeats_the_first_reply_runs(scripted_server, repo):
    server = scripted_server([bash(WRONG), bash(WRONG), bash(RETRY_WRONG), SUBMIT])
    result = agent_over(server, repo, resample={"tries": 1}).run("Fix add()")
    replies = [m for m in result.messages if m["role"] == "assistant"]
    assert [m["content"] for m in replies] == [bash(WRONG), bash(WRONG), SUBMIT]
    assert [m["content"] for m in replies[1]["extra"]["resampled"]] == [bash(RETRY_WRONG)]
    assert result.n_steps == 3 and len(server.completions) == 4


def test_a_draw_that_fails_leaves_the_first_reply_in_the_trajectory(scripted_server, repo):
    server = scripted_server([bash(WRONG), bash(RETRY_WRONG), {"status": 400, "error": "gone"}])
    result = agent_over(server, repo, resample={"tries": 2}).run("Fix add()")
    assert result.exit_status == "PermanentModelError" and "gone" in result.messages[-1]["content"]
    replies = [m for m in result.messages if m["role"] == "assistant"]
    assert [m["content"] for m in replies] == [bash(WRONG), bash(RETRY_WRONG)]
    assert replies[-1]["extra"]["resampled"] == []


def test_off_by_default_and_a_rerun_after_another_step_is_not_a_repeat(scripted_server, repo):
    test = "python3 -m pytest -q test_calc.py"
    edit = "sed -i 's/a - b/a + b/' calc.py"
    server = scripted_server([bash(test), bash(edit), bash(test), SUBMIT])
    result = agent_over(server, repo, resample={"tries": 2}).run("Fix add()")
    assert result.exit_status == "Submitted" and len(server.completions) == 4
    assert not any("resampled" in (m.get("extra") or {}) for m in result.messages)

    again = scripted_server([bash(test), bash(test), SUBMIT])
    result = agent_over(again, repo).run("Fix add()")
    assert result.n_steps == 3 and len(again.completions) == 3


def test_bad_resample_settings_are_refused(scripted_server, repo):
    server = scripted_server([SUBMIT])
    with pytest.raises(ConfigError, match="tries"):
        agent_over(server, repo, resample={"tries": -1})
