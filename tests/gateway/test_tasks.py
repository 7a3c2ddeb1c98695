"""The gateway holds every background task it starts until the task ends (real sockets, real servers)."""

from __future__ import annotations

import httpx

from tests.gateway.conftest import wait_for


def test_background_tasks_are_held_until_they_end(gateway, sim_process):
    backend = sim_process("--time-scale", "1")
    # Health rounds are an hour apart: only the re-check started by the failed stream finds the
    # dead backend.
    g = gateway([backend.url], health_interval_seconds=3600)
    held = g.gateway.tasks
    assert len(held) == 4 and not any(t.done() for t in held)  # health, scrape, lease, policy tick
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True, "max_tokens": 5000}
    with httpx.stream("POST", g.url + "/chat/completions", json=body, timeout=60) as r:
        for n, _ in enumerate(r.iter_lines()):
            if n == 3:
                backend.kill()
    wait_for(lambda: httpx.get(g.base + "/health").json()["status"] == "down", timeout=60)
    wait_for(lambda: len(g.gateway.tasks) == 4, timeout=60)  # the re-check ended and was let go
    g.stop()
    assert not g.gateway.tasks or all(t.done() for t in g.gateway.tasks)
