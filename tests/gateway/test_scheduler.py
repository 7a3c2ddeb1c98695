"""Scheduling: the program policy's pauses, resumes and admission order; the baselines; capacity."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.gateway.conftest import chat, metric, program, wait_for

USAGE = {"prompt_tokens": 500, "completion_tokens": 100}
SMALL = {"prompt_tokens": 100, "completion_tokens": 50}
TIGHT = {
    "capacity_tokens": {"*": 1000},
    "target_utilization": 1.0,
    "step_growth_tokens": 0,
    "resume_headroom": 0.0,
}


class Background:
    """A request running in a thread, to see whether it is held."""

    def __init__(self, fn, *args, **kwargs) -> None:
        self.result = None
        self.done_at = None
        self.thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, fn, args, kwargs) -> None:
        self.result = fn(*args, **kwargs)
        self.done_at = time.monotonic()

    def join(self, timeout: float = 30) -> httpx.Response:
        self.thread.join(timeout)
        assert self.result is not None, "request did not finish"
        return self.result


def test_overflow_pauses_just_enough_and_release_resumes(gateway, scripted_server):
    # Two programs start small (150 tokens each) and grow to 600 each on a 1000-token backend.
    backend = scripted_server(
        [{"content": "x", "usage": SMALL, "repeat": 2}, {"content": "x", "usage": USAGE}]
    )
    g = gateway([backend.url], **TIGHT)
    for pid in ("A", "B", "A", "B"):
        assert chat(g.url, program_id=pid).status_code == 200
    # One pause is enough: the newer of two equally progressed programs.
    assert program(g, "B")["state"] == "paused" and program(g, "B")["pause_reason"] == "kv_overflow"
    assert program(g, "A")["state"] == "active"
    assert metric(g, "wren_gateway_pauses_total", reason="kv_overflow") == 1

    held = Background(chat, g.url, program_id="B")
    wait_for(lambda: program(g, "B")["held_requests"] == 1)
    time.sleep(0.3)
    assert held.result is None  # waits at the gateway, not at the backend
    assert len(backend.requests) == 4
    released_at = time.monotonic()
    httpx.post(g.base + "/programs/release", json={"program_id": "A"})
    assert held.join().status_code == 200
    assert held.done_at >= released_at
    assert program(g, "B")["state"] == "active"
    assert metric(g, "wren_gateway_resumes_total", reason="original_backend") == 1
    assert metric(g, "wren_gateway_queue_wait_seconds_count") >= 1


def test_acting_programs_pause_before_reasoning_ones(gateway, scripted_server):
    script = [
        {"content": "x", "usage": SMALL, "repeat": 2},
        {"content": "x", "usage": USAGE, "repeat": 2},
        {"content": "x", "usage": {"prompt_tokens": 1900, "completion_tokens": 100}},
    ]
    backend = scripted_server(script)
    g = gateway([backend.url], **{**TIGHT, "capacity_tokens": {"*": 2200}})
    for pid in ("old", "new", "old", "new"):  # projected 1050 + 1050 of 2200 tokens
        assert chat(g.url, program_id=pid).status_code == 200
    # "new" sends a much longer prompt: its projection overflows while it reasons. "old" is acting,
    # so it is paused, although "new" is the newer of two equally progressed programs.
    r = chat(g.url, program_id="new", messages=[{"role": "user", "content": "w" * 2000}])
    assert r.status_code == 200
    assert program(g, "old")["state"] == "paused"
    assert program(g, "new")["state"] == "active"
    assert metric(g, "wren_gateway_pauses_total", reason="kv_overflow") == 1


@pytest.mark.parametrize("ageing, bypass", [(0.0, False), (60.0, True)])
def test_admission_in_arrival_order_with_ageing(gateway, scripted_server, ageing, bypass):
    backend = scripted_server(["x"])  # usage: prompt characters / 4
    g = gateway([backend.url], **TIGHT, ageing_seconds=ageing)
    chat(g.url, program_id="A", messages=[{"role": "user", "content": "a" * 2400}])  # about 600 tokens
    big = Background(chat, g.url, program_id="big", messages=[{"role": "user", "content": "b" * 2000}])
    wait_for(lambda: (program(g, "big") or {}).get("held_requests") == 1)
    small = Background(chat, g.url, program_id="small")
    # With ageing 0 the waiting big prompt keeps its place; otherwise a small one may pass it for a while.
    if bypass:
        wait_for(lambda: small.result is not None, timeout=60)
    else:
        wait_for(lambda: (program(g, "small") or {}).get("held_requests") == 1, timeout=60)
        assert small.result is None
    assert big.result is None
    httpx.post(g.base + "/programs/release", json={"program_id": "A"})
    assert big.join().status_code == 200
    assert small.join().status_code == 200
    if not bypass:
        assert small.done_at >= big.done_at - 0.05


def test_program_policy_is_sticky_and_spreads_new_programs(gateway, scripted_server):
    b0 = scripted_server([{"content": "x", "usage": USAGE}])
    b1 = scripted_server([{"content": "x", "usage": USAGE}])
    g = gateway([b0.url, b1.url], capacity_tokens={"*": 100_000})
    for _ in range(3):
        chat(g.url, program_id="A")
        chat(g.url, program_id="B")
    assert program(g, "A")["backend"] != program(g, "B")["backend"]
    assert len(b0.requests) == 3 and len(b1.requests) == 3


def test_round_robin_and_least_loaded(gateway, scripted_server):
    b0 = scripted_server(["x"])
    b1 = scripted_server(["x"])
    g = gateway([b0.url, b1.url], policy="round-robin")
    for _ in range(4):
        chat(g.url, program_id="same")
    assert len(b0.requests) == 2 and len(b1.requests) == 2  # not sticky

    slow = scripted_server([{"content": "slow", "delay": 1.5}])
    fast = scripted_server(["fast"])
    g2 = gateway([slow.url, fast.url], policy="least-loaded")
    first = Background(chat, g2.url, program_id="p")
    wait_for(lambda: len(slow.requests) == 1)
    for _ in range(3):
        assert chat(g2.url, program_id="p").json()["choices"][0]["message"]["content"] == "fast"
    first.join()


def test_dead_backend_programs_move(gateway, sim_process):
    sims = [sim_process("--time-scale", "100"), sim_process("--time-scale", "100")]
    g = gateway([s.url for s in sims], health_interval_seconds=0.2)
    assert chat(g.url, program_id="A", max_tokens=4).status_code == 200
    where = program(g, "A")["backend"]
    victim = next(s for s in sims if s.url.removesuffix("/v1") == where)
    victim.kill()
    wait_for(
        lambda: not all(b["healthy"] for b in httpx.get(g.base + "/health").json()["backends"]), timeout=10
    )
    r = chat(g.url, program_id="A", max_tokens=4)
    assert r.status_code == 200
    assert program(g, "A")["backend"] not in (where, None)
    assert metric(g, "wren_gateway_pauses_total", reason="backend_down") == 1


def test_capacity_from_vllm_metrics_and_sglang_info(gateway, sim):
    s = sim(capacity_tokens=8192, block_size=16)
    info = {"max_total_num_tokens": 12345}

    class SGLang(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            if self.path == "/get_server_info":
                body = json.dumps(info).encode()
                self.send_response(200)
            else:
                body = b"{}"
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), SGLang)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sglang = f"http://127.0.0.1:{server.server_address[1]}"
        g = gateway([s.url, sglang])
        backends = httpx.get(g.base + "/health").json()["backends"]
        assert (backends[0]["capacity_tokens"], backends[0]["capacity_source"]) == (8192, "vllm-metrics")
        assert (backends[1]["capacity_tokens"], backends[1]["capacity_source"]) == (
            12345,
            "sglang-server-info",
        )
        g2 = gateway([s.url], capacity_tokens={s.url: 777})
        assert httpx.get(g2.base + "/health").json()["backends"][0]["capacity_tokens"] == 777
    finally:
        server.shutdown()
        server.server_close()


def test_preemptions_scraped_from_the_backend_lower_the_usable_capacity(gateway, sim):
    # Round-robin does not pause, so a tiny KV cache preempts; the scrape sees it.
    # Two 800-token prompts fit in 2048 tokens; their 400-token replies do not.
    s = sim(capacity_tokens=2048, time_scale=5.0)
    g = gateway([s.url], policy="round-robin", scrape_interval_seconds=0.2)
    body = {"model": "m", "max_tokens": 400}
    threads = [
        Background(
            chat,
            g.url,
            program_id=f"p{i}",
            messages=[{"role": "user", "content": "z" * 3200 + str(i)}],
            **body,
        )
        for i in range(4)
    ]
    lowest = 1.0
    deadline = time.monotonic() + 60
    while any(t.result is None for t in threads) and time.monotonic() < deadline:
        backend = httpx.get(g.base + "/health").json()["backends"][0]
        lowest = min(lowest, backend["correction"])
        time.sleep(0.05)
    for t in threads:
        assert t.join(60).status_code == 200
    assert metric(s.url.removesuffix("/v1"), "vllm:num_preemptions_total") > 0
    assert lowest < 1.0
    assert (
        wait_for(lambda: httpx.get(g.base + "/health").json()["backends"][0]["preemptions"], timeout=10) > 0
    )
