"""Lifecycle safety: release, lease, dead and killed backends, client disconnects, many programs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

import httpx

from tests.gateway.conftest import chat, metric, program, programs, wait_for


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_release_removes_the_program(gateway, scripted_server):
    backend = scripted_server([{"content": "x", "usage": {"prompt_tokens": 100, "completion_tokens": 10}}])
    g = gateway([backend.url], capacity_tokens={"*": 10_000})
    chat(g.url, program_id="r1")
    assert program(g, "r1") is not None
    r = httpx.post(g.base + "/programs/release", json={"program_id": "r1"})
    assert r.status_code == 200 and r.json() == {"released": True, "program_id": "r1"}
    assert program(g, "r1") is None
    assert httpx.post(g.base + "/programs/release", json={"program_id": "r1"}).status_code == 404
    assert g.call(lambda: g.gateway.backends[0].used) == 0


def test_lease_releases_programs_whose_client_went_away(gateway, scripted_server):
    backend = scripted_server(["x"])
    g = gateway([backend.url], lease_seconds=0.4)
    assert chat(g.url, program_id="gone").status_code == 200
    # Released for its idle lease (not by a client, not at its request's end).
    wait_for(lambda: metric(g, "wren_gateway_releases_total", reason="lease") == 1)
    assert program(g, "gone") is None


def test_dead_backend_request_is_retried_elsewhere(gateway, scripted_server):
    backend = scripted_server(["from the live one"])
    dead = dead_url()
    g = gateway([dead, backend.url], policy="round-robin", health_interval_seconds=60)
    # The startup probe already marks the dead one down; bring it back so the request picks it.
    g.call(lambda: setattr(g.gateway.backends[0], "healthy", True))
    r = chat(g.url, program_id="retry")
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "from the live one"
    assert metric(g, "wren_gateway_retries_total") == 1
    health = httpx.get(g.base + "/health").json()
    assert [b["healthy"] for b in health["backends"]] == [False, True]
    assert health["status"] == "degraded"


def test_all_backends_dead_gives_a_clean_error(gateway):
    g = gateway([dead_url()])
    r = chat(g.url, program_id="nobody")
    assert r.status_code == 503 and "backend" in r.json()["error"]["message"]
    assert program(g, "nobody")["inflight"] == 0
    assert metric(g, "wren_gateway_queue_wait_seconds_count") == 0  # refused at once, never held


def test_backend_killed_mid_stream(gateway, sim_process):
    backend = sim_process("--time-scale", "1")
    g = gateway([backend.url], health_interval_seconds=0.5)
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "long"}],
        "stream": True,
        "max_tokens": 5000,
    }
    received = []
    t_kill = None
    with httpx.stream(
        "POST", g.url + "/chat/completions", json=body, headers={"X-Program-Id": "k1"}, timeout=30
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            received.append(line)
            if len(received) == 5:
                backend.kill()
                t_kill = time.monotonic()
    assert t_kill is not None
    # The stream ended after the kill with an error event the client can see.
    last = json.loads(received[-1][5:])
    assert last["error"]["code"] == 502
    p = program(g, "k1")
    assert p["inflight"] == 0 and p["phase"] == "acting" and p["held_requests"] == 0
    # The dead backend is found out; the next request fails fast instead of hanging.
    wait_for(lambda: httpx.get(g.base + "/health").json()["status"] == "down")
    assert chat(g.url, program_id="k1").status_code in (502, 503)
    assert metric(g, "wren_gateway_queue_wait_seconds_count") == 0  # failed at once, never held


def test_client_disconnect_ends_the_step_and_the_backend_request(gateway, sim):
    s = sim(time_scale=1.0, capacity_tokens=100_000)
    g = gateway([s.url])
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "long"}],
        "stream": True,
        "max_tokens": 5000,
    }
    with httpx.stream(
        "POST", g.url + "/chat/completions", json=body, headers={"X-Program-Id": "d1"}, timeout=30
    ) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i == 3:
                break  # leave mid-stream; closing the response drops the connection
    wait_for(lambda: (program(g, "d1") or {}).get("inflight") == 0)
    p = program(g, "d1")
    assert p["phase"] == "acting" and p["steps"] == 1  # ended without usage, estimated
    assert p["context_tokens"] > 0
    # The gateway dropped its backend connection, and the simulated server stopped generating.
    wait_for(lambda: metric(s.url.removesuffix("/v1"), "vllm:num_requests_running") == 0)

    # Same for a plain request held at the backend.
    client = httpx.Client(timeout=0.5)
    with contextlib.suppress(httpx.TimeoutException):
        client.post(
            g.url + "/chat/completions", json={**body, "stream": False}, headers={"X-Program-Id": "d2"}
        )
    client.close()
    wait_for(lambda: (program(g, "d2") or {}).get("inflight") == 0)
    assert program(g, "d2")["errors"] == 1


def test_ten_thousand_programs_leave_no_state(gateway, sim_process):
    import aiohttp

    s = sim_process("--time-scale", "1000", "--capacity", "1000000")
    g = gateway([s.url])
    n = 10_000

    async def drive() -> int:
        sem = asyncio.Semaphore(32)
        async with aiohttp.ClientSession() as client:

            async def one(i: int) -> bool:
                body = {"model": "m", "messages": [{"role": "user", "content": f"task {i}"}], "max_tokens": 1}
                async with sem:
                    async with client.post(
                        g.url + "/chat/completions", json=body, headers={"X-Program-Id": f"p{i}"}
                    ) as r:
                        await r.read()
                        ok = r.status == 200
                    async with client.post(g.base + "/programs/release", json={"program_id": f"p{i}"}) as rel:
                        await rel.read()
                        return ok and rel.status == 200

            return sum(await asyncio.gather(*(one(i) for i in range(n))))

    assert asyncio.run(drive()) == n
    listing = programs(g)
    assert listing["count"] == 0 and listing["queued"] == 0

    def internal_state():
        gw = g.gateway
        return (
            len(gw.programs.programs),
            [b.used for b in gw.backends],
            [len(b.residents) for b in gw.backends],
            [b.inflight for b in gw.backends],
            len(gw.policy.queue),
        )

    assert g.call(internal_state) == (0, [0], [0], [0], 0)
    assert metric(g, "wren_gateway_releases_total", reason="client") == n
    assert metric(g, "wren_gateway_programs", state="acting") == 0
