"""History for small contexts: what the model is sent, read back from a real HTTP server's records."""

from __future__ import annotations

import pytest

from tests.conftest import SUBMIT, bash
from wren import DefaultAgent
from wren.agents.config import HistoryConfig
from wren.agents.history import n_stubbed, shorten
from wren.config.loader import validate
from wren.environments import get_environment
from wren.exceptions import ConfigError
from wren.models import get_model

N_STEPS = 12
LONG = "seq 1 400"  # 400 lines, about 1,900 characters


def run_recorded(scripted_server, tmp_path, history: dict) -> tuple[object, list[list[dict]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    server = scripted_server([{"content": bash(LONG), "repeat": N_STEPS}, SUBMIT])
    model = get_model({"name": "openai/scripted", "api_base": server.url, "api_key": "k"})
    agent = DefaultAgent(
        model, get_environment("local", cwd=str(tmp_path)), step_limit=0, cost_limit=0, history=history
    )
    result = agent.run("Print numbers.")
    sent = [r["body"]["messages"] for r in server.requests if r["path"].endswith("/chat/completions")]
    return result, sent


def prefix_breaks(sent: list[list[dict]]) -> int:
    """Requests whose messages do not start with all of the previous request's messages."""
    return sum(1 for before, after in zip(sent, sent[1:], strict=False) if after[: len(before)] != before)


def test_old_observations_become_stubs_and_the_trajectory_keeps_them_whole(scripted_server, tmp_path):
    history = {"keep_last": 2, "block": 1, "max_observation_tokens": 50}
    result, sent = run_recorded(scripted_server, tmp_path, history)
    assert result.exit_status == "Submitted"
    last = sent[-1]
    assert [m["role"] for m in last[:2]] == ["system", "user"]
    assert "Print numbers." in last[1]["content"]
    observations = [m["content"] for m in last[2:] if m["role"] == "user"]
    assert len(observations) == N_STEPS
    stubs = [o for o in observations if o.startswith("[output of an earlier command elided")]
    assert len(stubs) == N_STEPS - 2
    lines = int(stubs[0].split(": ")[1].split()[0])  # the stub says how long the observation was
    assert lines == result.messages[3]["content"].count("\n") + 1 and lines > 400
    for kept in observations[-2:]:  # capped at about 50 tokens: head and tail with the elision between
        assert "characters elided" in kept and len(kept) < 400 and "400" in kept
    # The saved run is not shortened.
    saved = [m["content"] for m in result.messages if m["role"] == "user"][1:]
    assert all("characters elided" not in o and "\n200\n" in o for o in saved)


def test_block_elision_keeps_the_prompt_prefix_stable_between_blocks(scripted_server, tmp_path):
    _, every_step = run_recorded(scripted_server, tmp_path / "a", {"keep_last": 2, "block": 1})
    _, in_blocks = run_recorded(scripted_server, tmp_path / "b", {"keep_last": 2, "block": 4})
    # Eliding at every step changes an early message at every step once the window is full;
    # eliding four at a time changes it once per four steps.
    assert prefix_breaks(every_step) == N_STEPS - 2
    assert prefix_breaks(in_blocks) == (N_STEPS - 2) // 4
    # Both send the same number of whole observations at most: keep_last plus up to block - 1.
    whole = [sum(1 for m in s if m["role"] == "user" and "\n200\n" in m["content"]) for s in in_blocks]
    assert max(whole) == 2 + 3


def test_old_replies_command_keeps_only_the_commands_of_stubbed_steps(scripted_server, tmp_path):
    history = {"keep_last": 2, "block": 4, "old_replies": "command"}
    result, sent = run_recorded(scripted_server, tmp_path, history)
    assert result.exit_status == "Submitted"
    replies = [m["content"] for m in sent[-1] if m["role"] == "assistant"]
    stubs = sum(m["content"].startswith("[output of an earlier") for m in sent[-1])
    assert stubs == 8 and len(replies) == N_STEPS  # 12 observations: 2 kept, 8 stubbed, 2 in the open block
    assert replies[:stubs] == [f"```bash\n{LONG}\n```"] * stubs
    assert all(r == bash(LONG) for r in replies[stubs:])
    # Replies are shortened in the same block as their observations: the prefix still breaks once a block.
    assert prefix_breaks(sent) == (N_STEPS - 2) // 4
    saved = [m["content"] for m in result.messages if m["role"] == "assistant" and "latency" in m["extra"]]
    assert saved[:N_STEPS] == [bash(LONG)] * N_STEPS


def test_a_tool_call_reply_keeps_its_call_and_a_reply_without_a_command_stays_whole():
    call = {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "task"},
        {"role": "assistant", "content": "I list the files.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "a\nb"},
        {"role": "assistant", "content": "no command here"},
        {"role": "user", "content": "Format error"},
        {"role": "assistant", "content": bash("ls")},
        {"role": "user", "content": "a\nb"},
    ]
    out = shorten(messages, 2, HistoryConfig(keep_last=1, old_replies="command"))
    assert out[2] == {**messages[2], "content": ""} and out[2]["tool_calls"] == [call]
    assert out[4] == messages[4] and out[6] == messages[6]  # the last reply's observation is kept whole
    assert [m["content"] for m in out[3:6:2]] == [
        f"[output of an earlier command elided: {n} lines]" for n in (2, 1)
    ]


def test_the_defaults_send_the_history_unchanged(scripted_server, tmp_path):
    result, sent = run_recorded(scripted_server, tmp_path, {})
    assert prefix_breaks(sent) == 0
    assert len(sent[-1]) == len([m for m in result.messages if m["role"] != "exit"]) - 1


def test_n_stubbed_moves_in_whole_blocks():
    assert [n_stubbed(n, 3) for n in range(8)] == [0, 0, 0, 3, 3, 3, 6, 6]
    assert [n_stubbed(n, 1) for n in range(3)] == [0, 1, 2]


def test_demonstrations_and_task_are_never_shortened():
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "demo output " * 100},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "task"},
        *[
            m
            for i in range(5)
            for m in ({"role": "assistant", "content": f"r{i}"}, {"role": "user", "content": "x\n" * 500})
        ],
    ]
    out = shorten(messages, 4, HistoryConfig(keep_last=1, max_observation_tokens=10))
    assert out[:4] == messages[:4]
    assert [m["content"] for m in out[4::2]] == [f"r{i}" for i in range(5)]
    assert sum(m["content"].startswith("[output of") for m in out) == 4


def test_an_unknown_history_key_is_an_error_that_names_it():
    from wren.agents.config import AgentConfig
    from wren.config.loader import read_yaml

    agent = read_yaml("default")["agent"] | {"history": {"keep_lst": 3}}
    with pytest.raises(ConfigError, match="keep_lst"):
        validate(AgentConfig, agent, where="agent")
    agent["history"] = {"old_replies": "thoughts"}
    with pytest.raises(ConfigError, match="old_replies"):
        validate(AgentConfig, agent, where="agent")
