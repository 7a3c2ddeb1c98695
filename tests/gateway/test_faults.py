"""Honest ends over real sockets: streams cut short, resets, prompts too large, the queue bound."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import httpx
import pytest

from tests.gateway.conftest import chat, metric, program, wait_for
from tests.peers.faulty_server import FaultyServer


def stream_events(url: str, **body) -> tuple[int, list[str]]:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, **body}
    with httpx.stream("POST", url + "/chat/completions", json=payload, timeout=30) as r:
        return r.status_code, [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]


@pytest.mark.parametrize("mode", ["sse-close", "sse-reset"])
def test_a_stream_that_stops_without_a_finish_ends_with_an_error_event(gateway, mode):
    with FaultyServer(mode) as backend:
        g = gateway([backend.url])
        status, events = stream_events(g.url, program_id="p")
        assert status == 200  # the head was sent before the backend failed
        assert "[DONE]" not in events
        last = json.loads(events[-1])
        assert last["error"]["type"] == "upstream_error" and "mid-stream" in last["error"]["message"]
        if mode == "sse-close":
            # What did arrive is passed on before the error.
            assert [json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]] == ["par", "tial"]
            assert "without [DONE]" in last["error"]["message"]
        kinds = "StreamCutShort" if mode == "sse-close" else "UpstreamDisconnected"
        assert wait_for(lambda: metric(g, "wren_gateway_backend_errors_total", kind=kinds)) == 1
        assert metric(g, "wren_gateway_requests_total", endpoint="chat", status="502") == 1
        p = program(g, "p")
        assert p["inflight"] == 0 and p["held_requests"] == 0


def test_a_reset_plain_response_is_a_502(gateway):
    with FaultyServer("json-reset") as backend:
        g = gateway([backend.url])
        r = chat(g.url, program_id="p")
        assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
        assert "reset" in r.json()["error"]["message"]


def test_a_prompt_no_backend_can_hold_is_refused_at_once(gateway, scripted_server):
    backend = scripted_server(["ok"])
    g = gateway([backend.url], capacity_tokens={"*": 4096})
    big = "x" * 2_000_000  # about 500k tokens, against 4096
    r = chat(g.url, program_id="big", messages=[{"role": "user", "content": big}])
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "prompt_too_large"
    assert "4096" in error["message"] and "at least 500" in error["message"]
    assert backend.requests == []  # never forwarded
    # An ordinary request of the same program still goes through.
    assert chat(g.url, program_id="big").status_code == 200


def test_a_request_held_past_the_queue_bound_gets_503_with_retry_after(gateway, scripted_server):
    backend = scripted_server([{"content": "x", "usage": {"prompt_tokens": 900, "completion_tokens": 50}}])
    settings = {"target_utilization": 1.0, "resume_headroom": 0.0, "step_growth_tokens": 0}
    g = gateway(
        [backend.url],
        capacity_tokens={"*": 1000},
        max_queue_seconds=1.0,
        retry_after_seconds=3,
        max_pause_seconds=600,
        **settings,
    )
    assert chat(g.url, program_id="A").status_code == 200  # A holds 950 of 1000 tokens
    result: dict = {}
    held = threading.Thread(
        target=lambda: result.update(
            r=chat(g.url, program_id="B", messages=[{"role": "user", "content": "y" * 800}])
        )
    )
    held.start()
    wait_for(lambda: (program(g, "B") or {}).get("held_requests") == 1)
    held.join(30)
    r = result["r"]
    assert r.status_code == 503 and r.headers["Retry-After"] == "3"
    assert r.json()["error"]["type"] == "queue_timeout"
    assert len(backend.requests) == 1  # B never reached the backend
    assert program(g, "B")["held_requests"] == 0
    # Once A is released, B's retry goes through.
    httpx.post(g.base + "/programs/release", json={"program_id": "A"})
    assert chat(g.url, program_id="B").status_code == 200


def test_cli_tail_controls_are_validated():
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "wren.cli.main",
            "gateway",
            "--backends",
            "http://127.0.0.1:9",
            "--max-queue",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "gateway.max_queue_seconds" in bad.stderr and "greater than 0" in bad.stderr
