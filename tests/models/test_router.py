from __future__ import annotations

from tests.conftest import SUBMIT, bash
from wren import DefaultAgent
from wren.environments import get_environment
from wren.models import get_model


def test_router_sends_hard_calls_to_the_large_model(scripted_server, tmp_path):
    small = scripted_server(["I am not sure.", bash("ls"), bash("ls"), SUBMIT])
    large = scripted_server([bash("pwd", "planning"), bash("echo fixed"), bash("echo unstuck")])
    model = get_model(
        {
            "model_class": "router",
            "models": [
                {"name": "openai/small", "api_base": small.url},
                {"name": "openai/large", "api_base": large.url},
            ],
            "router": {"large_first": 1},
        }
    )
    result = DefaultAgent(model, get_environment("local", cwd=str(tmp_path))).run("t")
    assert result.exit_status == "Submitted"
    # planning, small's format error -> large, small, small repeats itself -> large, small submits
    assert model.routes == ["large", "small", "large", "small", "large", "small"]
    assert model.n_calls == 7 and len(small.requests) == 4 and len(large.requests) == 3
    assert all(r["headers"].get("X-Program-Id") is None for r in small.requests)


def test_router_falls_back_to_large_when_small_fails(scripted_server, tmp_path):
    small = scripted_server([{"status": 500}])
    large = scripted_server([SUBMIT])
    model = get_model(
        {
            "model_class": "router",
            "models": [
                {"name": "openai/small", "api_base": small.url, "retries": 1},
                {"name": "openai/large", "api_base": large.url},
            ],
        }
    )
    model.program_id = "p1"
    result = DefaultAgent(model, get_environment("local", cwd=str(tmp_path))).run("t")
    assert result.exit_status == "Submitted" and model.routes == ["large"]
    assert large.requests[0]["headers"]["X-Program-Id"] == "p1"
