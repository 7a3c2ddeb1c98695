"""The step display of `wren run`: bash highlighted without fence lines, demonstrations not a step."""

from __future__ import annotations

import io

from rich.console import Console

from tests.conftest import SUBMIT, bash
from wren import DefaultAgent
from wren.config.loader import load_config_dict
from wren.environments import get_environment
from wren.models import get_model
from wren.ui.console import StepPrinter, render_reply, step_title


def printed(hook_run) -> str:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system="truecolor", force_terminal=True)
    hook_run(StepPrinter(console))
    return out.getvalue()


def plain(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_a_run_with_demonstrations_shows_code_highlighted_and_no_step_zero(scripted_server, tmp_path):
    server = scripted_server([bash("echo hello > notes.txt", "I write the file."), SUBMIT])
    model = get_model({"name": "openai/scripted", "api_base": server.url, "api_key": "k"})
    agent_cfg = load_config_dict([], base=("default", "slm"))["agent"]
    assert agent_cfg["demonstrations"], "the slm config has few-shot turns"

    def run(hook):
        agent = DefaultAgent(model, get_environment("local", cwd=str(tmp_path)), hooks=[hook], **agent_cfg)
        assert agent.run("Create notes.txt").exit_status == "Submitted"

    raw = printed(run)
    text = plain(raw)
    assert "```" not in text  # fences are not printed, the code is
    assert "echo hello > notes.txt" in text
    assert "\x1b[" in raw  # highlighted: the code carries colour codes
    assert "step 0" not in text
    for demo in agent_cfg["demonstrations"]:  # shown once as a note, not as turns
        first = demo["content"].splitlines()[0]
        if not first.startswith("Output"):  # observation headers look the same as the run's own
            assert first[:40] not in text
    assert text.count("few-shot examples") == 1
    # Each step's title says its latency and its tokens.
    titles = [line for line in text.splitlines() if "step 1 · assistant" in line]
    assert titles and "s ·" in titles[0] and "tokens" in titles[0]


def test_step_title_and_reply_rendering():
    title = step_title(3, {"latency": 1.234, "prompt_tokens": 250, "completion_tokens": 24, "cost": 0.0})
    assert title == "step 3 · assistant · 1.23s · 250+24 tokens"
    out = io.StringIO()
    Console(file=out, width=80).print(render_reply("THOUGHT: look.\n```sh\nls -la\n```\ntrailing words"))
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    assert lines[0] == "THOUGHT: look." and "ls -la" in lines[1] and lines[-1] == "trailing words"
