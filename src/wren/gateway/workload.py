"""A workload generator that replays agent programs against an OpenAI-compatible endpoint.

Each program is an agent run: a shared system prompt and its own task, then steps that each send
the whole conversation, get a reply, "run a tool" for a while, and append the reply and the tool's
output, so the context grows step by step. At the end the program is released at the gateway.
Programs are derived from the seed alone (sizes, step counts, tool times), so two runs send the
same programs whatever the timing. `concurrency` workers run programs back to back, as a batch
runner's workers do; times are simulated seconds, run `time_scale` times faster.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WorkloadConfig(BaseModel):
    """Which programs to replay, how many at once, and against what."""

    model_config = ConfigDict(extra="forbid")

    url: str
    """OpenAI base URL to send to (a gateway's or a server's `/v1`)."""
    model: str = "sim-model"
    """Model name to request."""
    programs: int = Field(default=128, ge=1)
    """Total programs to run."""
    concurrency: int | None = Field(default=None, ge=1)
    """Programs running at once (default: all of them)."""
    duration_seconds: float | None = Field(default=None, gt=0)
    """Stop after this many simulated seconds (default: when every program has finished)."""
    seed: int = 0
    """Seed of the programs."""
    time_scale: float = Field(default=1.0, gt=0)
    """Simulated seconds per wall-clock second (match the simulated server's)."""
    chars_per_token: int = Field(default=4, ge=1)
    """Characters per token (match the simulated server's)."""
    system_prompt_tokens: int = Field(default=800, ge=1)
    """Tokens of the system prompt every program shares."""
    task_tokens: tuple[int, int] = (500, 2500)
    """Range of a program's task description in tokens."""
    steps: tuple[int, int] = (10, 40)
    """Range of a program's number of steps."""
    completion_tokens: tuple[int, int] = (60, 300)
    """Range of a step's reply length in tokens (sent as max_tokens)."""
    observation_tokens_median: float = Field(default=300.0, gt=0)
    """Median tool output in tokens (log-normal)."""
    observation_tokens_max: int = Field(default=3000, ge=1)
    """Largest tool output in tokens."""
    tool_seconds_median: float = Field(default=2.0, ge=0)
    """Median tool time in simulated seconds (log-normal)."""
    tool_seconds_max: float = Field(default=60.0, ge=0)
    """Longest tool time in simulated seconds."""
    spread: float = Field(default=1.0, ge=0)
    """Sigma of the log-normal distributions."""
    program_id_in: Literal["all", "header", "body", "extra_body", "none"] = "all"
    """Where requests carry the program id: `all` puts it in the X-Program-Id header, the body's
    `program_id` and `extra_body.program_id`, where the program-aware gateways read it."""
    stream: bool = False
    """Send streaming requests."""
    release: bool = True
    """Release each program at the gateway when it ends."""
    request_timeout: float = Field(default=600.0, gt=0)
    """Wall-clock timeout of one request."""
    steady_start: bool = False
    """Start each worker's first program part-way through (its earlier steps already in its context),
    so a short run measures the steady state instead of the start-up, when all contexts are small."""


@dataclass
class ProgramSpec:
    """One program, fixed by the seed."""

    index: int
    task_tokens: int
    completions: list[int]
    observations: list[int]
    tool_seconds: list[float]

    @property
    def steps(self) -> int:
        return len(self.completions)


def _lognormal(rng: random.Random, median: float, sigma: float, cap: float) -> float:
    return min(cap, median * math.exp(rng.gauss(0.0, sigma)))


def program_spec(config: WorkloadConfig, index: int) -> ProgramSpec:
    """The program at `index` of the seeded sequence (independent of timing and of other programs)."""
    rng = random.Random(f"{config.seed}:{index}")
    n = rng.randint(*config.steps)
    return ProgramSpec(
        index=index,
        task_tokens=rng.randint(*config.task_tokens),
        completions=[rng.randint(*config.completion_tokens) for _ in range(n)],
        observations=[
            max(
                1,
                int(
                    _lognormal(
                        rng, config.observation_tokens_median, config.spread, config.observation_tokens_max
                    )
                ),
            )
            for _ in range(n)
        ],
        tool_seconds=[
            _lognormal(rng, config.tool_seconds_median, config.spread, config.tool_seconds_max)
            for _ in range(n)
        ],
    )


_FILLER = "".join(random.Random(12345).choices("abcdefghijklmnopqrstuvwxyz     ", k=8192))


def filler(tokens: int, chars_per_token: int, offset: int = 0) -> str:
    """Text of about `tokens` tokens (cheap: slices of a fixed random text)."""
    n = tokens * chars_per_token
    out = []
    pos = offset % len(_FILLER)
    while n > 0:
        piece = _FILLER[pos : pos + n]
        out.append(piece)
        n -= len(piece)
        pos = 0
    return "".join(out)


def system_prompt(config: WorkloadConfig) -> str:
    """The system prompt every program of the workload shares."""
    return f"You are agent {config.seed}. " + filler(config.system_prompt_tokens, config.chars_per_token)


class ProgramRun:
    """One program's conversation, step by step: the same for a live run and a simulated one.

    With `steady_start`, a worker's first program starts part-way through: its earlier steps are
    already in its context (replies made of filler), so a short run measures the steady state.
    """

    def __init__(self, config: WorkloadConfig, index: int, system: str, first: bool = False) -> None:
        self.config = config
        self.spec = spec = program_spec(config, index)
        self.pid = f"wl{config.seed}-{index}"
        self.step = 0
        self.skip = (
            random.Random(f"{config.seed}:skip:{index}").randrange(spec.steps)
            if first and config.steady_start
            else 0
        )
        task = filler(spec.task_tokens, config.chars_per_token, index * 7919)
        self.messages: list[dict[str, str]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Task {self.pid}: " + task},
        ]

    def next_call(self) -> tuple[list[dict[str, str]], int] | None:
        """The messages and max_tokens of the next model call, or None when the program is done."""
        cfg, spec = self.config, self.spec
        while self.step < self.skip:
            self._append(
                filler(spec.completions[self.step], cfg.chars_per_token, spec.index * 17 + self.step)
            )
        if self.step >= spec.steps:
            return None
        return self.messages, spec.completions[self.step]

    def record_reply(self, reply: str) -> float:
        """Append the reply and its tool's output; returns the tool's time in simulated seconds."""
        tool = self.spec.tool_seconds[self.step]
        self._append(reply)
        return tool

    def _append(self, reply: str) -> None:
        cfg, step = self.config, self.step
        obs = filler(self.spec.observations[step], cfg.chars_per_token, self.spec.index * 31 + step * 131)
        self.messages.append({"role": "assistant", "content": reply})
        self.messages.append({"role": "user", "content": f"Output of step {step}:\n{obs}"})
        self.step += 1


def quantile(values: list[float], q: float) -> float:
    """The `q` quantile of `values` (0 when empty)."""
    if not values:
        return 0.0
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


@dataclass
class WorkloadResult:
    """What a workload run did, in simulated time."""

    steps: int = 0
    programs_finished: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    elapsed_seconds: float = 0.0  # simulated
    step_latencies: list[float] = field(default_factory=list)  # simulated seconds
    completion_seconds: list[float] = field(default_factory=list)  # first request to release, per program
    error_messages: list[str] = field(default_factory=list)

    @property
    def steps_per_minute(self) -> float:
        return self.steps / (self.elapsed_seconds / 60.0) if self.elapsed_seconds > 0 else 0.0

    def latency(self, q: float) -> float:
        return quantile(self.step_latencies, q)

    @property
    def completion_mean(self) -> float:
        xs = self.completion_seconds
        return sum(xs) / len(xs) if xs else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "steps_per_minute": round(self.steps_per_minute, 2),
            "programs_finished": self.programs_finished,
            "errors": self.errors,
            "elapsed_seconds": round(self.elapsed_seconds, 2),
            "step_latency_p50": round(self.latency(0.5), 3),
            "step_latency_p99": round(self.latency(0.99), 3),
            "completion_mean": round(self.completion_mean, 2),
            "completion_p99": round(quantile(self.completion_seconds, 0.99), 2),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "first_errors": self.error_messages[:5],
        }


class Workload:
    """Runs the programs of a WorkloadConfig."""

    def __init__(self, config: WorkloadConfig) -> None:
        self.config = config
        self.result = WorkloadResult()
        self._next = 0
        self._system = system_prompt(config)

    async def run(self) -> WorkloadResult:
        import aiohttp

        cfg = self.config
        workers = min(cfg.concurrency or cfg.programs, cfg.programs)
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=cfg.request_timeout)
        t0 = time.monotonic()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tasks = [asyncio.ensure_future(self._worker(session, t0)) for _ in range(workers)]
            deadline = cfg.duration_seconds / cfg.time_scale if cfg.duration_seconds else None
            done, pending = await asyncio.wait(tasks, timeout=deadline)
            # Time ends here: cancelling and releasing the unfinished programs is not part of the run.
            t_end = time.monotonic()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        self.result.elapsed_seconds = (t_end - t0) * cfg.time_scale
        return self.result

    async def _worker(self, session: Any, t0: float) -> None:
        first = True
        while self._next < self.config.programs:
            index = self._next
            self._next += 1
            run = ProgramRun(self.config, index, self._system, first)
            first = False
            await self._program(session, run)

    async def _program(self, session: Any, run: ProgramRun) -> None:
        cfg = self.config
        started = time.monotonic()
        try:
            while (call := run.next_call()) is not None:
                reply = await self._step(session, run.pid, *call)
                if reply is None:
                    return
                await asyncio.sleep(run.record_reply(reply) / cfg.time_scale)
            self.result.programs_finished += 1
            self.result.completion_seconds.append((time.monotonic() - started) * cfg.time_scale)
        finally:
            # Release wherever the program ran: a gateway that does not know the id answers 404.
            if cfg.release and cfg.program_id_in != "none":
                await self._release(session, run.pid)

    async def _step(self, session: Any, pid: str, messages: list[dict], max_tokens: int) -> str | None:
        cfg = self.config
        body: dict[str, Any] = {"model": cfg.model, "messages": messages, "max_tokens": max_tokens}
        headers = {}
        where = cfg.program_id_in
        if where in ("all", "header"):
            headers["X-Program-Id"] = pid
        if where in ("all", "body"):
            body["program_id"] = pid
        if where in ("all", "extra_body"):
            body["extra_body"] = {"program_id": pid}
        if cfg.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        started = time.monotonic()
        try:
            async with session.post(
                cfg.url.rstrip("/") + "/chat/completions", json=body, headers=headers
            ) as resp:
                if resp.status != 200:
                    self._error(f"HTTP {resp.status}: {(await resp.text())[:200]}")
                    return None
                if cfg.stream:
                    content, usage = await self._read_stream(resp)
                else:
                    data = await resp.json()
                    content = data["choices"][0]["message"]["content"] or ""
                    usage = data.get("usage") or {}
        except Exception as e:  # a failed step ends the program, as it would end an agent run
            self._error(f"{type(e).__name__}: {e}")
            return None
        r = self.result
        r.steps += 1
        r.step_latencies.append((time.monotonic() - started) * cfg.time_scale)
        r.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        r.completion_tokens += int(usage.get("completion_tokens") or 0)
        r.cached_tokens += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
        return content

    @staticmethod
    async def _read_stream(resp: Any) -> tuple[str, dict]:
        import orjson

        parts: list[str] = []
        usage: dict = {}
        async for line in resp.content:
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            obj = orjson.loads(payload)
            if "error" in obj:
                raise ValueError(f"stream error: {obj['error']}")
            if obj.get("usage"):
                usage = obj["usage"]
            for choice in obj.get("choices") or []:
                parts.append((choice.get("delta") or {}).get("content") or "")
        return "".join(parts), usage

    def _error(self, message: str) -> None:
        self.result.errors += 1
        if len(self.result.error_messages) < 20:
            self.result.error_messages.append(message)

    async def _release(self, session: Any, pid: str) -> None:
        base = self.config.url.rstrip("/").removesuffix("/v1")
        try:
            async with session.post(base + "/programs/release", json={"program_id": pid}) as resp:
                await resp.read()
        except Exception as e:
            self._error(f"release {pid}: {type(e).__name__}: {e}")


def run_workload(config: WorkloadConfig) -> WorkloadResult:
    """Run a workload to its end (or its duration) on a fresh event loop."""
    from wren.gateway.serving import new_event_loop

    loop = new_event_loop()
    try:
        return loop.run_until_complete(Workload(config).run())
    finally:
        loop.close()
