"""The model clients against a real scripted HTTP server: direct client and LiteLLM alike."""

from __future__ import annotations

import logging

import pytest

from wren.models import GLOBAL_STATS, get_model
from wren.models.errors import ContextWindowExceeded, PermanentModelError, RetryableModelError

CLIENTS = ["direct", "litellm"]
MESSAGES = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi", "extra": {"internal": 1}}]


def model_for(server, client, **kwargs):
    config = {
        "name": "hosted_vllm/scripted-model",
        "api_base": server.url,
        "client": client,
        "retry_wait": 0.01,
        **kwargs,
    }
    return get_model(config)


@pytest.mark.parametrize("client", CLIENTS)
def test_query_returns_content_tokens_and_zero_cost_for_a_local_model(scripted_server, client, caplog):
    server = scripted_server(
        [{"content": "hello there", "usage": {"prompt_tokens": 40, "completion_tokens": 3}}]
    )
    model = model_for(server, client)
    with caplog.at_level(logging.INFO, logger="wren.models.cost"):
        message = model.query(MESSAGES)
        model.query(MESSAGES)
    assert message["content"] == "hello there"
    assert message["extra"]["prompt_tokens"] == 40 and message["extra"]["completion_tokens"] == 3
    assert message["extra"]["cost"] == 0.0 and model.cost == 0.0
    assert (model.n_calls, model.prompt_tokens, model.completion_tokens) == (2, 80, 6)
    body = server.requests[0]["body"]
    assert body["model"] == "scripted-model" and body["temperature"] == 0.0
    assert all("extra" not in m for m in body["messages"])  # bookkeeping never goes on the wire
    notes = [r for r in caplog.records if "no price known" in r.getMessage()]
    assert len(notes) <= 1  # one note per model name per process, never an error


@pytest.mark.parametrize("client", CLIENTS)
def test_configured_price_is_charged_and_counted_globally(scripted_server, client):
    server = scripted_server([{"content": "x", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}])
    model = model_for(server, client, input_cost_per_token=1e-6, output_cost_per_token=1e-5)
    before = GLOBAL_STATS.cost
    message = model.query(MESSAGES)
    assert message["extra"]["cost"] == pytest.approx(1000 * 1e-6 + 100 * 1e-5)
    assert GLOBAL_STATS.cost - before == pytest.approx(message["extra"]["cost"])


@pytest.mark.parametrize("client", CLIENTS)
def test_retries_server_errors_then_succeeds(scripted_server, client):
    server = scripted_server([{"status": 503}, {"status": 500}, "finally"])
    assert model_for(server, client, retries=3).query(MESSAGES)["content"] == "finally"
    assert len(server.requests) == 3


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (401, "invalid api key", PermanentModelError),
        (404, "model not found", PermanentModelError),
        (400, "This model's maximum context length is 4096 tokens", ContextWindowExceeded),
    ],
)
def test_never_retries_auth_not_found_or_context_window(scripted_server, client, status, error, expected):
    server = scripted_server([{"status": status, "error": error}, "should not be reached"])
    with pytest.raises(expected):
        model_for(server, client, retries=4).query(MESSAGES)
    assert len(server.requests) == 1


def test_retries_give_up_with_a_clear_error(scripted_server):
    server = scripted_server([{"status": 503}])
    with pytest.raises(RetryableModelError, match="503"):
        model_for(server, "direct", retries=2).query(MESSAGES)
    assert len(server.requests) == 2


def test_dead_backend_is_a_clean_error_not_a_hang():
    model = get_model(
        {"name": "openai/x", "api_base": "http://127.0.0.1:9/v1", "retries": 2, "retry_wait": 0.01}
    )
    with pytest.raises(RetryableModelError, match="cannot reach"):
        model.query(MESSAGES)


def test_fallback_model_answers_when_the_first_fails(scripted_server):
    broken = scripted_server([{"status": 503}])
    backup = scripted_server(["from the backup"])
    model = model_for(
        broken, "direct", retries=2, fallbacks=[{"name": "openai/backup", "api_base": backup.url}]
    )
    message = model.query(MESSAGES)
    assert message["content"] == "from the backup" and message["extra"]["model"] == "openai/backup"
    assert model.n_calls == 1


@pytest.mark.parametrize("client", CLIENTS)
def test_api_key_from_environment_and_program_id_header(scripted_server, client, monkeypatch):
    monkeypatch.setenv("WREN_TEST_KEY", "sk-test-123456789")
    server = scripted_server(["ok"])
    model = model_for(server, client, api_key="$WREN_TEST_KEY")
    model.program_id = "prog-1"
    model.query(MESSAGES)
    headers = {k.lower(): v for k, v in server.requests[0]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-test-123456789"
    assert headers["x-program-id"] == "prog-1"
    # Program-aware gateways also read the id from the body: the direct client (self-hosted servers)
    # puts it there; through LiteLLM (hosted APIs refuse unknown keys) only the header carries it.
    assert server.requests[0]["body"].get("program_id") == ("prog-1" if client == "direct" else None)
    assert model.config.public_dump()["api_key"] == "$WREN_TEST_KEY"


def test_plain_api_key_is_redacted_from_dumps():
    model = get_model({"name": "openai/x", "api_base": "http://h/v1", "api_key": "sk-plain-secret-value"})
    assert model.config.public_dump()["api_key"] == "***"
    assert "sk-plain-secret-value" in model.config.secret_values()


@pytest.mark.parametrize(
    ("name", "preset", "expected"),
    [
        ("hosted_vllm/q", "high", {"reasoning_effort": "high"}),
        (
            "hosted_vllm/q",
            "disabled",
            {"reasoning_effort": "none", "chat_template_kwargs": {"enable_thinking": False}},
        ),
        ("openrouter/q", "disabled", {"reasoning": {"enabled": False}}),
        ("openrouter/q", "low", {"reasoning": {"effort": "low", "enabled": True, "exclude": False}}),
    ],
)
def test_thinking_presets(name, preset, expected):
    from wren.models.config import ModelConfig
    from wren.models.litellm_model import reasoning_params

    api_base = None if name.startswith("openrouter") else "http://h/v1"
    assert reasoning_params(ModelConfig(name=name, reasoning=preset, api_base=api_base)) == expected


def test_reasoning_preset_reaches_the_server(scripted_server):
    server = scripted_server(["ok"])
    model_for(server, "direct", reasoning="medium", max_output_tokens=77).query(MESSAGES)
    body = server.requests[0]["body"]
    assert body["reasoning_effort"] == "medium" and body["max_tokens"] == 77


@pytest.mark.parametrize("client", CLIENTS)
def test_tool_calls_come_back(scripted_server, client):
    server = scripted_server([{"tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}]}])
    from wren.models.actions import BASH_TOOL, parse_action

    message = model_for(server, client).query(MESSAGES, tools=[BASH_TOOL])
    assert parse_action(message, "toolcall").command == "ls"
    assert server.requests[0]["body"]["tools"][0]["function"]["name"] == "bash"


def test_max_input_tokens_stops_before_an_oversized_request(scripted_server):
    server = scripted_server([{"content": "ok", "usage": {"prompt_tokens": 90, "completion_tokens": 1}}])
    model = model_for(server, "direct", max_input_tokens=100)
    model.query(MESSAGES)
    with pytest.raises(ContextWindowExceeded, match="max_input_tokens=100"):
        model.query([*MESSAGES, {"role": "user", "content": "x" * 400}])
    assert len(server.requests) == 1


def test_message_encoding_is_cached_and_follows_edits():
    from wren.models.openai_client import MessageEncoder

    encoder = MessageEncoder()
    message = {"role": "user", "content": "a"}
    first = encoder.encode(message)
    assert encoder.encode(message) is first
    message["content"] = "changed"
    assert "changed" in encoder.encode(message)


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("hosted_vllm/Org/M-7B", "Org/M-7B"),
        ("openai/gemma", "gemma"),
        ("Qwen/Qwen2.5-Coder", "Qwen/Qwen2.5-Coder"),
    ],
)
def test_direct_client_sends_the_name_without_litellm_prefix(scripted_server, name, sent):
    server = scripted_server(["ok"])
    model = get_model({"name": name, "api_base": server.url})
    assert model.use_direct
    model.query(MESSAGES)
    assert server.requests[0]["body"]["model"] == sent


@pytest.mark.parametrize("client", CLIENTS)
def test_a_temperature_given_to_one_query_goes_on_the_wire_for_that_call_only(scripted_server, client):
    server = scripted_server([{"content": "a"}, {"content": "b"}])
    model = model_for(server, client)
    model.query(MESSAGES, temperature=0.8)
    model.query(MESSAGES)
    assert [r["body"]["temperature"] for r in server.completions] == [0.8, 0.0]
    assert model.config.temperature == 0.0
