"""The client helpers the model uses, an unmodified mini-swe-agent as a gateway client, and the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx

from tests.gateway.conftest import program
from wren.gateway.client import forget, is_gateway, release_program


def test_is_gateway_and_release_program(gateway, scripted_server):
    backend = scripted_server([{"content": "x"}])
    g = gateway([backend.url])
    forget()
    assert is_gateway(g.url) is True
    assert is_gateway(backend.url) is False  # answers /health, but is not a gateway
    assert is_gateway("http://127.0.0.1:9/v1", timeout=0.5) is False  # nothing there
    httpx.post(
        g.url + "/chat/completions", json={"model": "m", "messages": []}, headers={"X-Program-Id": "run-1"}
    )
    assert release_program(g.url, "run-1") is True
    assert program(g, "run-1") is None
    assert release_program(g.url, "run-1") is False  # already gone
    assert release_program("http://127.0.0.1:9/v1", "x", timeout=0.5) is False


def test_unmodified_mini_swe_agent_through_the_gateway(gateway, scripted_server, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT", "1"
    )  # fail fast instead of retrying for minutes
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.environments.local import LocalEnvironment
    from minisweagent.models.litellm_model import LitellmModel

    backend = scripted_server(
        [
            {"tool_calls": [{"name": "bash", "arguments": {"command": "echo hello > note.txt"}}]},
            {
                "tool_calls": [
                    {
                        "name": "bash",
                        "arguments": {
                            "command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && cat note.txt"
                        },
                    }
                ]
            },
        ]
    )
    g = gateway([backend.url])
    model = LitellmModel(
        model_name="openai/scripted-model",
        model_kwargs={
            "api_base": g.url,
            "api_key": "none",
            "extra_body": {"program_id": "mini-run-1"},
            # litellm 1.106 imports the optional `mcp` package for any call with tools unless told not to.
            "_skip_mcp_handler": True,
        },
        cost_tracking="ignore_errors",
    )
    env = LocalEnvironment(cwd=str(tmp_path))
    agent = DefaultAgent(
        model,
        env,
        system_template="You are a helpful assistant.",
        instance_template="{{task}}",
        step_limit=5,
        cost_limit=0,
    )
    result = agent.run("Write hello to note.txt and submit.")
    assert result["exit_status"] == "Submitted"
    assert result["submission"].strip() == "hello"
    assert len(backend.requests) == 2
    for req in backend.requests:
        assert "program_id" not in json.dumps(req["body"])
    p = program(g, "mini-run-1")
    assert p is not None and p["steps"] == 2 and p["context_tokens"] > 0
    assert release_program(g.url, "mini-run-1") is True


def test_cli_runs_the_gateway_and_rejects_bad_settings(scripted_server):
    backend = scripted_server(["x"])
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    bad = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "gateway", "--backends", backend.url, "--policy", "fastest"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert bad.returncode != 0 and "unknown policy 'fastest'" in bad.stderr
    none = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "gateway"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert none.returncode != 0 and "--backends" in none.stderr + none.stdout
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "wren.cli.main",
            "gateway",
            "--backends",
            backend.url,
            "--port",
            "0",
            "--policy",
            "least-loaded",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", line)
            if match or len(seen) > 20:
                break
        assert match, seen
        health = httpx.get(match.group(1).removesuffix("/v1") + "/health", timeout=10).json()
        assert health["gateway"] == "wren" and health["policy"] == "least-loaded"
    finally:
        proc.terminate()
        proc.wait(10)
