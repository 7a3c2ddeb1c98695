"""Configuration of the gateway (`wren gateway`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wren.gateway.policies import DEFAULT_POLICY, POLICIES
from wren.validation import validate


class GatewayConfig(BaseModel):
    """How the gateway listens, where it forwards and how it schedules programs."""

    model_config = ConfigDict(extra="forbid")

    backends: list[str] = Field(min_length=1)
    """OpenAI-compatible backend base URLs (`http://host:port` or `http://host:port/v1`)."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = Field(default=8100, ge=0, le=65535)
    """Port to listen on (0 picks a free one)."""
    policy: str = DEFAULT_POLICY
    """Scheduling policy: a name from `wren.gateway.policies` (`program-ttl`, `program`, `program-fcfs`,
    `program-las`, `program-ttl-fcfs`, `program-ttl-las`, `round-robin`, `least-loaded`) or a dotted
    path to a Policy class."""
    capacity_tokens: dict[str, int] = {}
    """KV capacity in tokens per backend URL (`*` for all) when it cannot be read from the backend."""
    api_key: str | None = None
    """If set, clients must send `Authorization: Bearer <key>`."""
    backend_api_key: str | None = None
    """If set, sent to backends as `Authorization: Bearer <key>` (replaces any forwarded one)."""
    forward_headers: list[str] = ["authorization"]
    """Client request headers copied to the backend (the client's Authorization is never forwarded when `api_key` is set)."""
    lease_seconds: float = Field(default=600.0, gt=0)
    """A program with no request for this long is released (its client went away)."""
    target_utilization: float = Field(default=0.95, gt=0, le=1.5)
    """Fraction of a backend's KV capacity the `program` policy fills before pausing programs."""
    resume_headroom: float = Field(default=0.05, ge=0, lt=1)
    """Fraction of usable capacity left free when resuming or admitting, so running programs can grow before more pauses."""
    kv_block_tokens: int = Field(default=16, ge=1)
    """Tokens per KV-cache block of the backends: a program is charged its tokens (from the backend's
    `usage` once it has answered) rounded up to whole blocks, as the backend allocates them."""
    step_growth_tokens: int = Field(default=512, ge=0)
    """Assumed context growth of a program's next step before its own growth has been observed."""
    affinity_wait_seconds: float = Field(default=30.0, ge=0)
    """How long a paused program waits for room on the backend holding its cache before moving."""
    ageing_seconds: float = Field(default=60.0, ge=0)
    """After waiting this long, a queued program stops later ones from being resumed ahead of it."""
    max_pause_seconds: float = Field(default=100.0, ge=0)
    """A program paused or waiting for admission this long is overdue: programs that have run longer make room for it on the backend holding its cache."""
    min_run_seconds: float = Field(default=60.0, ge=0)
    """A program runs at least this long after it is admitted or resumed before it may be paused to make room for an overdue one."""
    tool_ttl_initial_seconds: float = Field(default=5.0, ge=0)
    """`*-ttl` policies: how long an acting program's KV is kept before its tool times are known."""
    tool_ttl_factor: float = Field(default=2.0, ge=0)
    """`*-ttl` policies: the time-to-live is this many times the program's median tool time."""
    tool_ttl_max_seconds: float = Field(default=30.0, ge=0)
    """`*-ttl` policies: the longest time-to-live."""
    max_queue_seconds: float = Field(default=300.0, gt=0)
    """A request held at the gateway this long is answered 503 with Retry-After."""
    retry_after_seconds: float = Field(default=5.0, ge=0)
    """The Retry-After (seconds) sent with that 503."""
    oversize_tolerance: float = Field(default=1.25, ge=1.0)
    """A prompt estimated at more than this times the largest backend KV capacity gets a 400 at once (the margin covers estimating tokens from characters)."""
    health_interval_seconds: float = Field(default=5.0, gt=0)
    """Seconds between backend health checks."""
    scrape_interval_seconds: float = Field(default=2.0, gt=0)
    """Seconds between scrapes of backend metrics (KV usage, queue, preemptions)."""
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    """Timeout for connecting to a backend."""
    read_timeout_seconds: float = Field(default=600.0, gt=0)
    """A backend that sends nothing for this long fails the request."""
    max_program_id_length: int = Field(default=256, ge=1)
    """Longest accepted program id."""
    record_dir: str = ""
    """Directory where every completion request is written per program with the backend's tokens and log-probs ('' = none)."""
    record_logprobs: bool = True
    """While recording, ask backends for log-probabilities when the client did not."""

    @field_validator("backends")
    @classmethod
    def _check_backends(cls, value: list[str]) -> list[str]:
        out = []
        for url in value:
            url = url.strip().rstrip("/")
            if not url.startswith("http://"):
                raise ValueError(f"backend URL must start with http://, got {url!r}")
            out.append(url.removesuffix("/v1"))
        return out

    @field_validator("policy")
    @classmethod
    def _check_policy(cls, value: str) -> str:
        return POLICIES.check(value)

    def capacity_for(self, url: str) -> int | None:
        """The configured capacity of one backend, if any."""
        for key in (url, url + "/v1", "*"):
            if key in self.capacity_tokens:
                return self.capacity_tokens[key]
        return None


def load_gateway_config(data: dict[str, Any]) -> GatewayConfig:
    """Validate a mapping as a GatewayConfig (ConfigError names the bad key)."""
    return validate(GatewayConfig, data, where="gateway")
