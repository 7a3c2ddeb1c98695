"""model.constrain: the request fields that ask a server for exactly one THOUGHT and one bash block."""

from __future__ import annotations

import re

import pytest

from tests.conftest import bash
from wren.models import get_model
from wren.models.actions import BASH_TOOL
from wren.models.constrain import GRAMMARS, REGEXES

MESSAGES = [{"role": "user", "content": "Task: list files"}]


def sent_body(scripted_server, **model) -> dict:
    server = scripted_server([bash("ls")])
    llm = get_model({"name": "openai/scripted", "api_base": server.url, "api_key": "k", **model})
    llm.query(MESSAGES, tools=model.pop("_tools", None))
    return [r for r in server.requests if r["path"].endswith("/chat/completions")][-1]["body"]


@pytest.mark.parametrize("client", ["direct", "litellm"])
def test_grammar_mode_sends_a_gbnf_grammar(scripted_server, client):
    body = sent_body(scripted_server, constrain="grammar", client=client)
    assert body["grammar"] == GRAMMARS["full"]
    assert "structured_outputs" not in body


def test_regex_mode_sends_the_regex_in_each_servers_words(scripted_server):
    body = sent_body(scripted_server, constrain="regex", constrain_form="fence")
    assert body["structured_outputs"] == {"regex": REGEXES["fence"]}
    assert body["guided_regex"] == body["regex"] == REGEXES["fence"]


def test_auto_sends_nothing_to_a_server_that_supports_neither(scripted_server):
    body = sent_body(scripted_server, constrain="auto")
    assert not {"grammar", "regex", "structured_outputs", "tool_choice"} & set(body)


def test_off_is_the_default(scripted_server):
    assert "grammar" not in sent_body(scripted_server)


def test_tool_calls_are_constrained_by_tool_choice(scripted_server):
    server = scripted_server([bash("ls")])
    llm = get_model(
        {"name": "openai/scripted", "api_base": server.url, "api_key": "k", "constrain": "grammar"}
    )
    llm.query(MESSAGES, tools=[BASH_TOOL])
    body = server.requests[-1]["body"]
    assert body["tool_choice"] == "required" and "grammar" not in body


@pytest.mark.parametrize("form", ["full", "fence"])
def test_the_regexes_accept_the_reply_format_and_reject_others(form):
    pattern = re.compile(REGEXES[form])
    assert pattern.fullmatch("THOUGHT: I list.\n```bash\nls -la | grep `whoami`\n```")
    assert not pattern.fullmatch("THOUGHT: I list.\n```bash\nls\n```\n```bash\npwd\n```")
    assert not pattern.fullmatch("THOUGHT: no block")


def test_an_unknown_mode_is_an_error_that_names_the_key(scripted_server):
    from wren.exceptions import ConfigError

    with pytest.raises(ConfigError, match="constrain"):
        get_model({"name": "openai/x", "api_base": "http://127.0.0.1:9/v1", "constrain": "json"})


def test_a_bare_yaml_off_means_off():
    from wren.config.loader import load_config_dict
    from wren.models import model_config_from

    data = load_config_dict(["model.constrain=off"])
    assert model_config_from(data["model"]).constrain == "off"
