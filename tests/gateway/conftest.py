"""Fixtures: gateways, simulated servers and scripted backends on real loopback sockets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from wren.gateway.app import GatewayThread
from wren.gateway.config import GatewayConfig
from wren.gateway.sim import SimConfig, SimThread

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def gateway() -> Iterator[Callable[..., GatewayThread]]:
    """Start gateways in background threads: `gateway([url, ...], policy=..., ...)`."""
    started: list[GatewayThread] = []

    def start(backends: list[str], **kwargs: Any) -> GatewayThread:
        kwargs.setdefault("port", 0)
        g = GatewayThread(GatewayConfig(backends=backends, **kwargs)).start()
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


@pytest.fixture
def sim() -> Iterator[Callable[..., SimThread]]:
    """Start simulated servers in background threads: `sim(capacity_tokens=..., time_scale=...)`."""
    started: list[SimThread] = []

    def start(**kwargs: Any) -> SimThread:
        kwargs.setdefault("port", 0)
        s = SimThread(SimConfig(**kwargs)).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class SimProcess:
    """`wren gateway sim serve` in its own process, so a test can kill it."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wren.cli.main", "gateway", "sim", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"simulated server did not start: {line!r}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def sim_process() -> Iterator[Callable[..., SimProcess]]:
    started: list[SimProcess] = []

    def start(*args: str) -> SimProcess:
        p = SimProcess(*args)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.proc.poll() is None:
            p.kill()


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; returns its value or fails the test (a bound for what has
    gone wrong, generous so that a busy machine is not taken for one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def chat(
    url: str, *, program_id: str | None = None, where: str = "header", timeout: float = 30.0, **body: Any
) -> httpx.Response:
    """One chat completion; the program id goes in the header, the body or extra_body."""
    payload: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    headers = {}
    if program_id is not None:
        if where == "header":
            headers["X-Program-Id"] = program_id
        elif where == "body":
            payload["program_id"] = program_id
        else:
            payload["extra_body"] = {"program_id": program_id}
    return httpx.post(url + "/chat/completions", json=payload, headers=headers, timeout=timeout)


def programs(g: GatewayThread) -> dict:
    return httpx.get(g.base + "/programs", timeout=10).json()


def program(g: GatewayThread, pid: str) -> dict | None:
    r = httpx.get(f"{g.base}/programs/{pid}", timeout=10)
    return r.json() if r.status_code == 200 else None


def metric(g: GatewayThread | str, name: str, **labels: str) -> float:
    """A sample's value from a /metrics page (0 if absent)."""
    from wren.gateway.backends import parse_prometheus

    base = g.base if isinstance(g, GatewayThread) else g
    samples = parse_prometheus(httpx.get(base + "/metrics", timeout=10).text)
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == val for k, val in labels.items()))
