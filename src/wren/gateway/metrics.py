"""Prometheus metrics of the gateway (`GET /metrics`).

Counters and histograms are updated on the request path; gauges (capacity, used tokens, programs
by state) are read from the live state when the page is scraped, so they cost nothing per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from wren.gateway.backends import Backend
    from wren.gateway.programs import ProgramTable

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class _StateCollector:
    """Gauges computed from the gateway's state at scrape time."""

    def __init__(self, state: Callable[[], tuple[list[Backend], ProgramTable, float, int]]) -> None:
        self.state = state

    def collect(self) -> Iterable[Metric]:
        backends, programs, target, queued = self.state()
        cap = GaugeMetricFamily(
            "wren_gateway_backend_capacity_tokens", "KV capacity of a backend in tokens", labels=["backend"]
        )
        usable = GaugeMetricFamily(
            "wren_gateway_backend_usable_tokens",
            "Capacity the scheduler fills (after target and correction)",
            labels=["backend"],
        )
        used = GaugeMetricFamily(
            "wren_gateway_backend_used_tokens",
            "Tokens charged to a backend by resident programs",
            labels=["backend"],
        )
        healthy = GaugeMetricFamily(
            "wren_gateway_backend_healthy", "1 if the backend is healthy", labels=["backend"]
        )
        inflight = GaugeMetricFamily(
            "wren_gateway_backend_inflight_requests", "Requests in flight to a backend", labels=["backend"]
        )
        kv = GaugeMetricFamily(
            "wren_gateway_backend_kv_usage",
            "KV cache usage scraped from the backend (0..1)",
            labels=["backend"],
        )
        for b in backends:
            cap.add_metric([b.url], float(b.capacity or 0))
            u = b.usable_capacity(target)
            usable.add_metric([b.url], 0.0 if u == float("inf") else u)
            used.add_metric([b.url], float(b.used))
            healthy.add_metric([b.url], 1.0 if b.healthy else 0.0)
            inflight.add_metric([b.url], float(b.inflight))
            if b.kv_usage is not None:
                kv.add_metric([b.url], b.kv_usage)
        counts = {"reasoning": 0, "acting": 0, "paused": 0}
        for p in programs.programs.values():
            counts["paused" if not p.active else p.phase] += 1
        by_state = GaugeMetricFamily("wren_gateway_programs", "Live programs by state", labels=["state"])
        for state, n in counts.items():
            by_state.add_metric([state], float(n))
        queue = GaugeMetricFamily("wren_gateway_queue_length", "Programs waiting for admission or resume")
        queue.add_metric([], float(queued))
        cpt = GaugeMetricFamily("wren_gateway_chars_per_token", "Learned characters-per-token ratio")
        cpt.add_metric([], programs.estimator.chars_per_token)
        yield from (cap, usable, used, healthy, inflight, kv, by_state, queue, cpt)


class GatewayMetrics:
    """The gateway's registry and its request-path instruments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "wren_gateway_requests", "Requests by endpoint and status", ["endpoint", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "wren_gateway_request_seconds",
            "Request latency seen by clients",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.added_seconds = Histogram(
            "wren_gateway_added_latency_seconds",
            "Latency added by the gateway itself (excludes backend time and queueing)",
            buckets=_ADDED_BUCKETS,
            registry=r,
        )
        self.queue_seconds = Histogram(
            "wren_gateway_queue_wait_seconds",
            "Time requests were held waiting for admission or resume",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.pauses = Counter("wren_gateway_pauses", "Programs paused, by reason", ["reason"], registry=r)
        self.resumes = Counter("wren_gateway_resumes", "Programs resumed, by reason", ["reason"], registry=r)
        self.releases = Counter(
            "wren_gateway_releases", "Programs released, by reason", ["reason"], registry=r
        )
        self.retries = Counter("wren_gateway_retries", "Requests retried on another backend", registry=r)
        self.backend_errors = Counter(
            "wren_gateway_backend_errors", "Failed backend requests by kind", ["backend", "kind"], registry=r
        )
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}

    def attach_state(self, state: Callable[[], tuple[list[Backend], ProgramTable, float, int]]) -> None:
        self.registry.register(_StateCollector(state))  # type: ignore[arg-type]

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        # Cache label children: labels() is the costly part of an observation.
        key = (endpoint, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(endpoint, str(status))
        child.inc()
        hist = self._latency_children.get(endpoint)
        if hist is None:
            hist = self._latency_children[endpoint] = self.request_seconds.labels(endpoint)
        hist.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
