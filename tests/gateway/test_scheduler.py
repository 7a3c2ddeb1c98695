"""Scheduling end to end over sockets: a pause and its resume, stickiness, the baselines, a dead
backend, capacity from backends, preemptions scraped. The decisions themselves are tested without
sockets in test_core.py."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

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
    assert len(backend.requests) == 4  # it waits at the gateway, not at the backend
    released_at = time.monotonic()
    httpx.post(g.base + "/programs/release", json={"program_id": "A"})
    assert held.join().status_code == 200
    assert held.done_at >= released_at
    assert program(g, "B")["state"] == "active"
    assert metric(g, "wren_gateway_resumes_total", reason="original_backend") == 1
    assert metric(g, "wren_gateway_queue_wait_seconds_count") >= 1


def test_program_policy_is_sticky_and_spreads_new_programs(gateway, scripted_server):
    b0 = scripted_server([{"content": "x", "usage": USAGE}])
    b1 = scripted_server([{"content": "x", "usage": USAGE}])
    g = gateway([b0.url, b1.url], capacity_tokens={"*": 100_000})
    for _ in range(3):
        chat(g.url, program_id="A")
        chat(g.url, program_id="B")
    assert program(g, "A")["backend"] != program(g, "B")["backend"]
    assert len(b0.requests) == 3 and len(b1.requests) == 3


def test_round_robin_is_not_sticky(gateway, scripted_server):
    b0 = scripted_server(["x"])
    b1 = scripted_server(["x"])
    g = gateway([b0.url, b1.url], policy="round-robin")
    for _ in range(4):
        chat(g.url, program_id="same")
    assert len(b0.requests) == 2 and len(b1.requests) == 2


def test_dead_backend_programs_move(gateway, sim_process):
    sims = [sim_process("--time-scale", "100"), sim_process("--time-scale", "100")]
    g = gateway([s.url for s in sims], health_interval_seconds=0.2)
    assert chat(g.url, program_id="A", max_tokens=4).status_code == 200
    where = program(g, "A")["backend"]
    victim = next(s for s in sims if s.url.removesuffix("/v1") == where)
    victim.kill()
    wait_for(
        lambda: not all(b["healthy"] for b in httpx.get(g.base + "/health").json()["backends"]),
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


def test_preemptions_scraped_from_the_backend(gateway, sim):
    # Round-robin does not pause, so a small KV cache preempts. A long reply (200 + 1500 tokens) is
    # running when an 800-token prompt asking for 800 more arrives: 2048 tokens hold both prompts as
    # long as the first has made fewer than about 1000 tokens (16 s at half speed), and cannot hold
    # both as they grow, however early the second came.
    s = sim(capacity_tokens=2048, time_scale=0.5)
    base = s.url.removesuffix("/v1")
    g = gateway([s.url], policy="round-robin", scrape_interval_seconds=0.2)
    long = Background(
        chat,
        g.url,
        program_id="long",
        messages=[{"role": "user", "content": "z" * 800}],
        max_tokens=1500,
        timeout=120,
    )
    wait_for(lambda: metric(base, "vllm:num_requests_running") == 1)
    short = chat(
        g.url,
        program_id="short",
        messages=[{"role": "user", "content": "y" * 3200}],
        max_tokens=800,
        timeout=120,
    )
    assert short.status_code == 200 and long.join(120).status_code == 200
    assert metric(base, "vllm:num_preemptions_total") > 0
    # The gateway's scrape sees them (how they lower the usable capacity: test_backends.py).
    assert wait_for(lambda: httpx.get(g.base + "/health").json()["backends"][0]["preemptions"]) > 0
