"""The gateway as an OpenAI-compatible proxy: passthrough, streaming, program ids, errors, auth."""

from __future__ import annotations

import json
import time

import httpx

from tests.gateway.conftest import chat, metric, program, programs


def test_non_streaming_passthrough_records_usage(gateway, scripted_server):
    backend = scripted_server(
        [{"content": "hello there", "usage": {"prompt_tokens": 50, "completion_tokens": 7}}]
    )
    g = gateway([backend.url])
    r = chat(g.url, program_id="p1")
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "hello there"
    assert r.json()["usage"]["prompt_tokens"] == 50
    p = program(g, "p1")
    assert p["steps"] == 1 and p["context_tokens"] == 57 and p["tokens_from_usage"] is True
    assert p["phase"] == "acting" and p["inflight"] == 0 and p["backend"] == backend.url.removesuffix("/v1")


def test_reservations_are_the_backends_usage_in_whole_kv_blocks(gateway, scripted_server):
    usage = {"prompt_tokens": 50, "completion_tokens": 7}
    backend = scripted_server([{"content": "x" * 4000, "usage": usage}])
    g = gateway([backend.url], capacity_tokens={"*": 10_000}, kv_block_tokens=16, policy="program")
    assert chat(g.url, program_id="p").status_code == 200
    p = program(g, "p")
    # 57 tokens by the backend's count (the reply's 4000 characters do not matter): 4 blocks of 16.
    assert p["tokens_from_usage"] is True and p["context_tokens"] == 57 and p["charged_tokens"] == 64


def test_program_id_from_body_extra_body_and_header_is_stripped(gateway, scripted_server):
    backend = scripted_server(["ok"])
    g = gateway([backend.url])
    for where, pid in (("body", "from-body"), ("extra_body", "from-extra"), ("header", "from-header")):
        assert chat(g.url, program_id=pid, where=where).status_code == 200
    ids = {p["program_id"] for p in programs(g)["programs"]}
    assert ids == {"from-body", "from-extra", "from-header"}
    for req in backend.requests:
        assert "program_id" not in req["body"]
        assert "program_id" not in json.dumps(req["body"].get("extra_body", {}))
        assert not any(k.lower() == "x-program-id" for k in req["headers"])
    # extra_body emptied by the removal is dropped; other extra_body keys stay.
    assert "extra_body" not in backend.requests[1]["body"]
    r = httpx.post(
        g.url + "/chat/completions",
        json={"model": "m", "messages": [], "extra_body": {"program_id": "x", "keep": 1}},
    )
    assert r.status_code == 200
    assert backend.requests[-1]["body"]["extra_body"] == {"keep": 1}


def test_request_without_program_id_is_its_own_program(gateway, scripted_server):
    backend = scripted_server(["a", "b"])
    g = gateway([backend.url])
    assert chat(g.url).status_code == 200
    assert chat(g.url).status_code == 200
    # Each was an ephemeral program, released when its request ended: nothing shared, nothing left.
    assert programs(g)["count"] == 0
    assert metric(g, "wren_gateway_releases_total", reason="request_end") == 2


def test_streaming_passthrough_requests_usage_and_hides_it_when_not_asked(gateway, scripted_server):
    backend = scripted_server(
        [{"content": "streamed reply text", "usage": {"prompt_tokens": 40, "completion_tokens": 5}}]
    )
    g = gateway([backend.url])
    with httpx.stream(
        "POST",
        g.url + "/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True},
        headers={"X-Program-Id": "s1"},
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join((c["choices"][0].get("delta") or {}).get("content") or "" for c in chunks if c["choices"])
    assert text == "streamed reply text"
    # The client did not ask for usage: the usage-only chunk the gateway requested is not passed on.
    assert all(c["choices"] for c in chunks)
    assert backend.requests[0]["body"]["stream_options"] == {"include_usage": True}
    assert program(g, "s1")["context_tokens"] == 45


def test_streaming_keeps_usage_when_client_asks(gateway, scripted_server):
    backend = scripted_server([{"content": "abc", "usage": {"prompt_tokens": 9, "completion_tokens": 1}}])
    g = gateway([backend.url])
    body = {"model": "m", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", g.url + "/chat/completions", json=body) as r:
        events = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
    usage = [json.loads(e)["usage"] for e in events[:-1] if json.loads(e).get("usage")]
    assert usage and usage[0]["prompt_tokens"] == 9


def test_streaming_arrives_chunk_by_chunk(gateway, sim):
    # A simulated server at real speed: 40 tokens take about 40 decode steps of ~8 ms.
    s = sim(time_scale=1.0, capacity_tokens=4096)
    g = gateway([s.url])
    times = []
    with httpx.stream(
        "POST",
        g.url + "/chat/completions",
        json={
            "model": "m",
            "messages": [{"role": "user", "content": "go"}],
            "stream": True,
            "max_tokens": 40,
        },
        timeout=30,
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                times.append(time.monotonic())
    assert len(times) >= 40
    # Had the gateway buffered the stream, every event would arrive at once.
    assert times[-1] - times[0] > 0.15


def test_completions_and_models(gateway, scripted_server):
    backend = scripted_server(["done"], model="the-model")
    g = gateway([backend.url])
    r = httpx.post(g.url + "/completions", json={"model": "m", "prompt": "x", "program_id": "c1"})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "done"
    assert "program_id" not in backend.requests[0]["body"]
    assert program(g, "c1")["steps"] == 1
    models = httpx.get(g.url + "/models").json()
    assert models["data"][0]["id"] == "the-model"


def test_malformed_json_gets_400(gateway, scripted_server):
    backend = scripted_server(["x"])
    g = gateway([backend.url])
    r = httpx.post(
        g.url + "/chat/completions",
        content=b'{"model": "m", "messages": [',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]["message"]
    r = httpx.post(g.url + "/chat/completions", json=[1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["error"]["message"]
    r = httpx.post(g.url + "/chat/completions", json={"model": "m", "messages": [], "program_id": {"a": 1}})
    assert r.status_code == 400 and "program_id" in r.json()["error"]["message"]
    r = httpx.post(g.base + "/programs/release", content=b"nope")
    assert r.status_code == 400
    assert backend.requests == []
    assert programs(g)["count"] == 0


def test_backend_errors_pass_through_and_end_the_step(gateway, scripted_server):
    backend = scripted_server([{"status": 422, "error": "bad things"}, "fine"])
    g = gateway([backend.url])
    r = chat(g.url, program_id="e1")
    assert r.status_code == 422 and r.json()["error"]["message"] == "bad things"
    p = program(g, "e1")
    assert p["errors"] == 1 and p["steps"] == 0 and p["inflight"] == 0
    assert chat(g.url, program_id="e1").status_code == 200
    assert program(g, "e1")["steps"] == 1


def test_api_key_and_backend_key(gateway, scripted_server):
    backend = scripted_server(["ok"])
    g = gateway([backend.url], api_key="client-secret", backend_api_key="backend-secret")
    assert chat(g.url).status_code == 401
    r = httpx.post(
        g.url + "/chat/completions",
        json={"model": "m", "messages": []},
        headers={"Authorization": "Bearer client-secret"},
    )
    assert r.status_code == 200
    headers = {k.lower(): v for k, v in backend.requests[0]["headers"].items()}
    assert headers["authorization"] == "Bearer backend-secret"
    assert httpx.post(g.base + "/programs/release", json={"program_id": "x"}).status_code == 401


def test_forwarded_auth_header(gateway, scripted_server):
    backend = scripted_server(["ok"])
    g = gateway([backend.url], forward_headers=["authorization", "x-trace"])
    httpx.post(
        g.url + "/chat/completions",
        json={"model": "m", "messages": []},
        headers={"Authorization": "Bearer user-key", "X-Trace": "t1", "X-Other": "no"},
    )
    headers = {k.lower(): v for k, v in backend.requests[0]["headers"].items()}
    assert (
        headers["authorization"] == "Bearer user-key"
        and headers["x-trace"] == "t1"
        and "x-other" not in headers
    )


def test_metrics_page(gateway, scripted_server):
    backend = scripted_server([{"content": "x", "usage": {"prompt_tokens": 10, "completion_tokens": 2}}])
    g = gateway([backend.url], capacity_tokens={"*": 5000})
    chat(g.url, program_id="m1")
    text = httpx.get(g.base + "/metrics").text
    for family in (
        "wren_gateway_backend_capacity_tokens",
        "wren_gateway_backend_used_tokens",
        "wren_gateway_programs",
        "wren_gateway_request_seconds_bucket",
        "wren_gateway_added_latency_seconds_bucket",
    ):
        assert family in text, family
    assert metric(g, "wren_gateway_backend_capacity_tokens") == 5000
    assert metric(g, "wren_gateway_programs", state="acting") == 1
    assert metric(g, "wren_gateway_requests_total", endpoint="chat", status="200") == 1
    assert metric(g, "wren_gateway_added_latency_seconds_count") == 1
