"""Inputs no backend can take, sent to a real `wren gateway` process: each gets a JSON 400, nothing
is forwarded, and the gateway's log has one line for it and no traceback."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from tests.gateway.conftest import wait_for


@pytest.fixture
def gateway_process(scripted_server):
    backend = scripted_server(["ok"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "wren.cli.main", "gateway", "--backends", backend.url, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)/v1", line)
            if match:
                break
        else:
            pytest.fail(f"gateway did not start: {''.join(lines)}")
        yield match.group(1), backend, proc, lines
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "messages": "hi"}, "'messages' must be a list of message objects"),
        ({"model": "m", "messages": ["hi"]}, "'messages[0]' must be an object with a string 'role'"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "'messages[0]' must be an object"),
        ({"model": "m"}, "'messages' must be a list"),
    ],
)
def test_malformed_messages_get_a_json_400_and_are_not_forwarded(gateway_process, body, message):
    base, backend, _, _ = gateway_process
    r = httpx.post(base + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    assert message in r.json()["error"]["message"]
    assert backend.requests == []


def test_a_text_completion_without_prompt_is_refused(gateway_process):
    base, backend, _, _ = gateway_process
    r = httpx.post(base + "/v1/completions", json={"model": "m"}, timeout=30)
    assert r.status_code == 400 and "'prompt' is required" in r.json()["error"]["message"]
    assert backend.requests == []


def test_a_200_kb_header_gets_a_json_400_and_no_traceback(gateway_process):
    base, backend, proc, lines = gateway_process
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(base + "/v1/chat/completions", json=body, headers={"X-Big": "a" * 200_000}, timeout=30)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and "malformed HTTP request" in error["message"]
    assert backend.requests == []
    # The gateway still serves, and its log says what happened in one line.
    assert httpx.post(base + "/v1/chat/completions", json=body, timeout=30).status_code == 200
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    log = "".join(lines) + out
    assert "Traceback" not in log
    assert len(re.findall(r"refused a malformed HTTP request", log)) == 1


def test_program_id_from_metadata_is_read_and_removed(gateway_process):
    base, backend, _, _ = gateway_process
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"program_id": "from-meta", "user": "u1"},
    }
    assert httpx.post(base + "/v1/chat/completions", json=body, timeout=30).status_code == 200
    assert wait_for(lambda: httpx.get(base + "/programs/from-meta", timeout=10).status_code == 200)
    assert backend.requests[-1]["body"]["metadata"] == {"user": "u1"}  # the rest is forwarded
    only = {**body, "metadata": {"program_id": "only-id"}}
    assert httpx.post(base + "/v1/chat/completions", json=only, timeout=30).status_code == 200
    assert "metadata" not in backend.requests[-1]["body"]
