"""Backends: their connections, KV capacity, health and scraped load.

Capacity in tokens comes, in order, from the gateway's configuration, a vLLM `/metrics` page
(`vllm:cache_config_info`: kv_cache_size_tokens, else block_size x num_gpu_blocks), llama.cpp's
`/slots` (the slots' n_ctx added up; one request must fit in one slot) or SGLang's
`/get_server_info` (`max_total_num_tokens`); without any of them it is unknown and the `program`
policy cannot pause.
Scraped KV usage, queued requests and preemptions correct the scheduler's estimate: each new
preemption (or a queue at a full cache) shrinks the usable fraction of the capacity, and quiet
scrapes let it recover.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from wren.gateway.upstream import ConnectionPool, UpstreamError

log = logging.getLogger("wren.gateway")

_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

# Gauges/counters read from a vLLM-style metrics page; first name found wins (v1 names, then v0).
_KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_RUNNING = ("vllm:num_requests_running", "llamacpp:requests_processing")
_WAITING = ("vllm:num_requests_waiting", "llamacpp:requests_deferred")
_PREEMPTIONS = ("vllm:num_preemptions_total", "vllm:num_preemptions")


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples of a Prometheus text page: name -> [(labels, value)]. Comments are skipped."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace >= 0:
            close = line.rfind("}")
            name = line[:brace]
            labels = dict(_LABEL.findall(line[brace + 1 : close]))
            rest = line[close + 1 :].split()
        else:
            parts = line.split()
            name, labels, rest = parts[0], {}, parts[1:]
        if not rest:
            continue
        try:
            value = float(rest[0])
        except ValueError:
            continue
        out.setdefault(name, []).append((labels, value))
    return out


def _sum(samples: dict[str, list[tuple[dict[str, str], float]]], names: tuple[str, ...]) -> float | None:
    for name in names:
        if name in samples:
            return sum(v for _, v in samples[name])
    return None


def capacity_from_vllm_metrics(samples: dict[str, list[tuple[dict[str, str], float]]]) -> int | None:
    """KV tokens from `vllm:cache_config_info`: its `kv_cache_size_tokens` where newer vLLM reports it
    (hybrid models, e.g. sliding-window layers, hold fewer tokens than blocks x block size), else
    block_size x num_gpu_blocks."""
    for labels, _ in samples.get("vllm:cache_config_info", []):
        size = labels.get("kv_cache_size_tokens", "")
        if size.isdigit() and int(size) > 0:
            return int(size)
        try:
            blocks = int(labels["num_gpu_blocks"])
            block_size = int(labels["block_size"])
        except (KeyError, ValueError):
            continue
        if blocks > 0 and block_size > 0:
            return blocks * block_size
    return None


@dataclass(eq=False)
class Backend:
    """One inference server behind the gateway."""

    url: str
    pool: ConnectionPool
    control: ConnectionPool  # short timeouts, for health checks and scrapes
    capacity: int | None = None
    capacity_source: str = "unknown"
    configured_capacity: int | None = None
    request_limit: int | None = None  # most tokens one request can hold (llama.cpp: a slot), if less
    healthy: bool = True
    last_error: str = ""
    inflight: int = 0
    used: int = 0  # tokens charged by the scheduler (resident programs)
    residents: dict = field(
        default_factory=dict
    )  # programs charged here, in the order they came (a set that keeps runs repeatable)
    correction: float = 1.0  # usable fraction of capacity, lowered by observed preemptions
    kv_usage: float | None = None  # scraped, 0..1
    running: float | None = None
    waiting: float | None = None
    preemptions: float | None = None
    last_scrape: float = 0.0

    @classmethod
    def create(
        cls, url: str, *, capacity: int | None, connect_timeout: float, read_timeout: float
    ) -> Backend:
        backend = cls(
            url=url,
            pool=ConnectionPool(url, connect_timeout=connect_timeout, read_timeout=read_timeout),
            control=ConnectionPool(url, connect_timeout=min(connect_timeout, 2.0), read_timeout=5.0),
            configured_capacity=capacity,
        )
        if capacity is not None:
            backend.capacity, backend.capacity_source = capacity, "configured"
        return backend

    def usable_capacity(self, target: float) -> float:
        """Tokens the scheduler may fill (infinite when the capacity is unknown)."""
        if self.capacity is None:
            return float("inf")
        return self.capacity * target * self.correction

    def mark_down(self, reason: str) -> bool:
        """Mark unhealthy; True if it was healthy."""
        was = self.healthy
        self.healthy = False
        self.last_error = reason
        if was:
            log.warning("backend %s marked unhealthy: %s", self.url, reason)
        return was

    def mark_up(self) -> bool:
        """Mark healthy; True if it was not."""
        was = self.healthy
        self.healthy = True
        if not was:
            log.warning("backend %s is healthy again", self.url)
        return not was

    async def get(self, path: str) -> tuple[int, bytes]:
        resp = await self.control.request("GET", path)
        try:
            return resp.status, await resp.read()
        finally:
            resp.release()

    async def check_health(self) -> bool:
        """GET /health (or /v1/models where there is none); False on no answer or a 5xx."""
        try:
            status, _ = await self.get("/health")
            if status == 404:
                status, _ = await self.get("/v1/models")
        except UpstreamError as e:
            self.last_error = str(e)
            return False
        # A server without either route (404) still answers: only server errors count as down.
        if status >= 500:
            self.last_error = f"health check answered HTTP {status}"
            return False
        return True

    async def scrape(self) -> None:
        """Read capacity (once) and load from the backend's metrics or server info."""
        self.last_scrape = time.monotonic()
        try:
            status, body = await self.get("/metrics")
        except UpstreamError:
            return
        if status == 200:
            self.apply_metrics(parse_prometheus(body.decode("utf-8", "replace")))
        if self.capacity is None:
            await self._llamacpp_capacity()
        if self.capacity is None:
            await self._sglang_capacity()

    def apply_metrics(self, samples: dict[str, list[tuple[dict[str, str], float]]]) -> None:
        """Take capacity (unless configured) and load from the samples of a vLLM-style metrics page."""
        if self.configured_capacity is None:
            cap = capacity_from_vllm_metrics(samples)
            if cap is not None and cap != self.capacity:
                self.capacity, self.capacity_source = cap, "vllm-metrics"
                log.info("backend %s: KV capacity %d tokens (vLLM metrics)", self.url, cap)
        self._observe(samples)

    def _observe(self, samples: dict[str, list[tuple[dict[str, str], float]]]) -> None:
        self.kv_usage = _sum(samples, _KV_USAGE)
        self.running = _sum(samples, _RUNNING)
        self.waiting = _sum(samples, _WAITING)
        preemptions = _sum(samples, _PREEMPTIONS)
        if preemptions is not None:
            if self.preemptions is not None and preemptions > self.preemptions:
                # The backend evicted running requests: our token estimate is optimistic here.
                # Back off gently and come back soon: a burst of new programs whose size was
                # guessed from characters also preempts, and must not cost capacity for long.
                self.correction = max(0.75, self.correction * 0.95)
            elif self.waiting and self.kv_usage is not None and self.kv_usage >= 0.95:
                # Requests queue at a full cache: running ones fill it, a preemption is near.
                self.correction = max(0.75, self.correction * 0.98)
            else:
                self.correction = min(1.0, self.correction + 0.02)
            self.preemptions = preemptions

    async def _get_json(self, path: str) -> Any:
        """What a 200 answer to GET `path` holds as JSON; None on no answer, another status or not JSON."""
        try:
            status, body = await self.get(path)
        except UpstreamError:
            return None
        if status != 200:
            return None
        try:
            return json.loads(body)
        except ValueError:
            return None

    async def _llamacpp_capacity(self) -> None:
        slots = await self._get_json("/slots")
        try:
            sizes = [int(slot["n_ctx"]) for slot in slots]
        except (ValueError, TypeError, KeyError):  # None, or not llama.cpp's slot list
            return
        if sizes and min(sizes) > 0:
            # Each slot holds its own KV cache (without --kv-unified): what the slots hold together.
            self.capacity, self.capacity_source = sum(sizes), "llama.cpp-slots"
            self.request_limit = max(sizes)
            log.info(
                "backend %s: KV capacity %d tokens in %d slots (llama.cpp)",
                self.url,
                self.capacity,
                len(sizes),
            )

    async def _sglang_capacity(self) -> None:
        info = await self._get_json("/get_server_info")
        try:
            cap = int(info.get("max_total_num_tokens") or 0)
        except (ValueError, TypeError, AttributeError):  # None, or not SGLang's server info
            return
        if cap > 0:
            self.capacity, self.capacity_source = cap, "sglang-server-info"
            log.info("backend %s: KV capacity %d tokens (SGLang server info)", self.url, cap)

    def summary(self, target: float) -> dict:
        usable = self.usable_capacity(target)
        return {
            "url": self.url,
            "healthy": self.healthy,
            "last_error": self.last_error or None,
            "capacity_tokens": self.capacity,
            "capacity_source": self.capacity_source,
            "request_limit_tokens": self.request_limit,
            "usable_tokens": None if usable == float("inf") else int(usable),
            "used_tokens": self.used,
            "programs": len(self.residents),
            "inflight": self.inflight,
            "kv_usage": self.kv_usage,
            "running": self.running,
            "waiting": self.waiting,
            "preemptions": self.preemptions,
            "correction": round(self.correction, 3),
        }

    def close(self) -> None:
        self.pool.close()
        self.control.close()
