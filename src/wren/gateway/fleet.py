"""A fleet in simulated time: workload programs, the gateway's policy and simulated engines.

This is a discrete-event simulation of what `gateway_scheduling.py` otherwise runs as separate
processes over loopback sockets: the workload's programs (`ProgramRun`), the gateway's accounting
(`ProgramTable`) and policy, and one `SimEngine` per backend. Simulated time advances from event to
event, so the figures do not depend on how busy the machine is, and a run is deterministic given
its seed. What it leaves out is the HTTP path itself: proxy overhead, and the wall-clock lag a
loaded machine adds to the live processes.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from wren.gateway.admission import REFUSALS, Admission, Held
from wren.gateway.backends import Backend, parse_prometheus
from wren.gateway.config import GatewayConfig
from wren.gateway.engine import SimConfig, SimEngine, SimRequest, block_hashes, render_messages
from wren.gateway.metrics import GatewayMetrics
from wren.gateway.programs import ProgramState, ProgramTable, StepOutcome
from wren.gateway.scheduler import get_policy_class
from wren.gateway.workload import ProgramRun, WorkloadConfig, WorkloadResult, system_prompt


@dataclass(eq=False)
class _Call:
    """One model call of a program, from its arrival at the gateway to its reply."""

    run: ProgramRun
    prog: ProgramState
    body_chars: int
    estimate: int
    max_tokens: int
    started: float
    backend: Backend | None = None
    request: SimRequest | None = None


@dataclass
class FleetResult:
    """The workload's result, and what the engines and the gateway counted."""

    workload: WorkloadResult
    preemptions: int = 0
    prefix_hit_rate: float = 0.0
    prefill_share: float = 0.0
    counters: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            **self.workload.summary(),
            "preemptions": self.preemptions,
            "prefix_hit_rate": round(self.prefix_hit_rate, 3),
            "prefill_share": round(self.prefill_share, 2),
            **{k: int(v) for k, v in self.counters.items()},
        }


class Fleet:
    """Runs a workload against simulated backends through a gateway policy, in simulated time."""

    def __init__(self, workload: WorkloadConfig, sim: SimConfig, gateway: GatewayConfig) -> None:
        self.workload = workload
        self.gateway = gateway
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._done: list[list[SimRequest]] = [[] for _ in gateway.backends]  # finished in the last step
        self.engines = [SimEngine(sim, clock=self._clock, on_finish=done.append) for done in self._done]
        self._stepping = [False] * len(self.engines)
        self.backends = [
            Backend.create(url, capacity=gateway.capacity_for(url), connect_timeout=1.0, read_timeout=1.0)
            for url in gateway.backends
        ]
        self._engine_of = {id(b): k for k, b in enumerate(self.backends)}
        self.metrics = GatewayMetrics()
        self.programs = ProgramTable()
        self.policy = get_policy_class(gateway.policy)(self.backends, gateway, self.metrics)
        self.admission = Admission(
            self.policy,
            gateway.max_queue_seconds,
            self._clock,
            lambda delay, fn: self.at(self.now + delay, fn),
        )
        self.result = WorkloadResult()
        self._system = system_prompt(workload)
        self._next = 0
        self._calls: dict[SimRequest, _Call] = {}
        self._started: dict[ProgramState, float] = {}

    def _clock(self) -> float:
        return self.now

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (t, next(self._seq), fn))

    def run(self) -> FleetResult:
        cfg = self.workload
        duration = cfg.duration_seconds or float("inf")
        self._scrape()
        workers = min(cfg.concurrency or cfg.programs, cfg.programs)
        for _ in range(workers):
            self.at(0.0, lambda: self._start_program(first=True))
        self.at(0.1, self._tick)
        self.at(self.gateway.scrape_interval_seconds, self._scrape_round)
        while self._events:
            t, _, fn = heapq.heappop(self._events)
            if t > duration:
                break
            self.now = t
            fn()
            if self._next >= cfg.programs and not self._calls and not self.admission.held and self._idle():
                break
        self.result.elapsed_seconds = min(self.now, duration) if duration != float("inf") else self.now
        return self._summary()

    def _idle(self) -> bool:
        return not any(e.has_work for e in self.engines) and self.programs_running == 0

    @property
    def programs_running(self) -> int:
        return len(self.programs)

    # background rounds of the gateway
    def _tick(self) -> None:
        self.policy.tick(self.now)
        self.at(self.now + 0.1, self._tick)

    def _scrape(self) -> None:
        for b, engine in zip(self.backends, self.engines, strict=True):
            b.apply_metrics(parse_prometheus(engine.metrics_text()))

    def _scrape_round(self) -> None:
        self._scrape()
        self.at(self.now + self.gateway.scrape_interval_seconds, self._scrape_round)

    # programs
    def _start_program(self, first: bool = False) -> None:
        if self._next >= self.workload.programs:
            return
        run = ProgramRun(self.workload, self._next, self._system, first)
        self._next += 1
        prog, _ = self.programs.get_or_create(run.pid)
        prog.created = prog.last_activity = self.now
        self._started[prog] = self.now
        self._call(run, prog)

    def _end_program(self, prog: ProgramState, finished: bool) -> None:
        self.programs.remove(prog)
        self.policy.release(prog, self.now)
        started = self._started.pop(prog)
        if finished:
            self.result.programs_finished += 1
            self.result.completion_seconds.append(self.now - started)
        self._start_program()

    def _call(self, run: ProgramRun, prog: ProgramState) -> None:
        nxt = run.next_call()
        if nxt is None:
            self._end_program(prog, finished=True)
            return
        messages, max_tokens = nxt
        chars = len(
            orjson.dumps({"model": self.workload.model, "messages": messages, "max_tokens": max_tokens})
        )
        prog.last_activity = self.now
        call = _Call(
            run, prog, chars, self.programs.estimate_prompt_tokens(prog, chars), max_tokens, self.now
        )
        least = self.programs.least_prompt_tokens(prog, chars)
        try:
            placed = self.admission.submit(
                prog,
                call.estimate,
                least,
                lambda b: self._dispatch(call, b),
                lambda e: self._fail(call, f"{type(e).__name__}: {e}"),
            )
        except REFUSALS as e:
            self._fail(call, f"{type(e).__name__}: {e}")
            return
        if not isinstance(placed, Held):
            self._dispatch(call, placed)

    def _dispatch(self, call: _Call, backend: Backend) -> None:
        k = self._engine_of[id(backend)]
        engine = self.engines[k]
        text = render_messages(call.run.messages)
        tokens = engine.tokens_of(text)
        call.backend = backend
        if tokens + call.max_tokens > engine.context_limit():
            self._account(call, StepOutcome(call.body_chars, call.estimate))
            self._fail(call, f"HTTP 400: {tokens} prompt tokens exceed the context length")
            return
        req = SimRequest(text, tokens, block_hashes(text, engine.chars_per_block), call.max_tokens)
        call.request = req
        self._calls[req] = call
        engine.submit(req)
        if not self._stepping[k]:
            self._stepping[k] = True
            engine.now = max(engine.now, self.now)
            self.at(engine.now, lambda: self._step(k))

    def _step(self, k: int) -> None:
        engine = self.engines[k]
        engine.step()
        done = self._done[k][:]
        self._done[k].clear()
        if done:
            self.at(engine.now, lambda: self._replies(done))
        if engine.has_work:
            self.at(engine.now, lambda: self._step(k))
        else:
            self._stepping[k] = False

    def _replies(self, done: list[SimRequest]) -> None:
        for req in done:
            call = self._calls.pop(req)
            usage = (req.prompt_tokens, req.output)
            self._account(call, StepOutcome(call.body_chars, call.estimate, usage=usage, completed=True))
            r = self.result
            r.steps += 1
            r.step_latencies.append(self.now - call.started)
            r.prompt_tokens += req.prompt_tokens
            r.completion_tokens += req.output
            r.cached_tokens += max(0, req.cached_tokens)
            tool = call.run.record_reply(req.reply)
            self.at(self.now + tool, lambda c=call: self._call(c.run, c.prog))

    def _account(self, call: _Call, step: StepOutcome) -> None:
        self.programs.end_step(call.prog, step, self.now)
        self.policy.finish(call.prog, call.backend, self.now)

    def _fail(self, call: _Call, message: str) -> None:
        r = self.result
        r.errors += 1
        if len(r.error_messages) < 20:
            r.error_messages.append(message)
        self._end_program(call.prog, finished=False)

    def _summary(self) -> FleetResult:
        stats = [e.stats for e in self.engines]
        queries = sum(s["prefix_queries"] for s in stats)
        busy = sum(e.busy for e in self.engines)
        counters = {"pauses": _total(self.metrics.pauses), "resumes": _total(self.metrics.resumes)}
        return FleetResult(
            workload=self.result,
            preemptions=sum(s["preemptions"] for s in stats),
            prefix_hit_rate=sum(s["prefix_hits"] for s in stats) / queries if queries else 0.0,
            prefill_share=sum(e.prefill_seconds for e in self.engines) / busy if busy else 0.0,
            counters=counters,
        )


def _total(counter: Any) -> float:
    """The sum over the labels of a prometheus counter."""
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


def simulate_fleet(workload: WorkloadConfig, sim: SimConfig, gateway: GatewayConfig) -> FleetResult:
    """Run `workload` through `gateway`'s policy onto one simulated engine per backend URL."""
    return Fleet(workload, sim, gateway).run()
