"""Scheduling policies: which backend serves a request, and whether a program runs now.

`program` treats each agent run as a program whose context should stay in one backend's KV cache
between its steps. It charges every resident program (reasoning or acting) its projected context
against the backend's capacity; when the projection overflows it pauses just enough programs to fit
(acting ones first, then the least progressed), holds their next requests at the gateway, and
resumes them in the order they queued. A queued program waits a bounded time for room on the
backend holding its cache before moving to the emptiest one; once it has waited past the ageing
bound nobody behind it is resumed first, so large prompts are not starved by bursts of small ones.

`round-robin` and `least-loaded` are the baselines: per request, no stickiness, no pausing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING

from wren.gateway.programs import REASONING, ProgramReleased, ProgramState
from wren.registry import Registry

if TYPE_CHECKING:
    from wren.gateway.backends import Backend
    from wren.gateway.config import GatewayConfig
    from wren.gateway.metrics import GatewayMetrics

log = logging.getLogger("wren.gateway")


class NoHealthyBackend(Exception):
    """Every backend is marked unhealthy."""


class Policy:
    """Base policy: picks a backend per request and never holds one."""

    name = "base"

    def __init__(self, backends: list[Backend], config: GatewayConfig, metrics: GatewayMetrics) -> None:
        self.backends = backends
        self.config = config
        self.metrics = metrics

    def healthy(self) -> list[Backend]:
        return [b for b in self.backends if b.healthy]

    def queue_length(self) -> int:
        return 0

    async def acquire(self, prog: ProgramState, prompt_tokens: int) -> Backend:
        """The backend for a request of this program; may wait until the program may run."""
        backend = self.pick(prog)
        prog.backend = backend
        return backend

    def pick(self, prog: ProgramState) -> Backend:
        raise NotImplementedError

    def finish(self, prog: ProgramState) -> None:
        """A request of the program ended (its state is already updated)."""

    def release(self, prog: ProgramState) -> None:
        """The program is gone."""

    def backend_down(self, backend: Backend) -> None:
        """A backend was marked unhealthy."""

    def backend_up(self, backend: Backend) -> None:
        """A backend is healthy again."""

    def tick(self) -> None:
        """Called periodically (timeouts that are not driven by requests)."""


class RoundRobinPolicy(Policy):
    """Each request goes to the next healthy backend in turn."""

    name = "round-robin"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._counter = itertools.count()

    def pick(self, prog: ProgramState) -> Backend:
        healthy = self.healthy()
        if not healthy:
            raise NoHealthyBackend("no healthy backend")
        return healthy[next(self._counter) % len(healthy)]


class LeastLoadedPolicy(Policy):
    """Each request goes to the healthy backend with the fewest requests in flight."""

    name = "least-loaded"

    def pick(self, prog: ProgramState) -> Backend:
        healthy = self.healthy()
        if not healthy:
            raise NoHealthyBackend("no healthy backend")
        return min(healthy, key=lambda b: b.inflight)


class ProgramPolicy(Policy):
    """Sticky, capacity-aware program scheduling (see the module docstring)."""

    name = "program"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.queue: dict[ProgramState, None] = {}  # insertion-ordered: arrival order

    def queue_length(self) -> int:
        return len(self.queue)

    # accounting
    def capacity(self, b: Backend) -> float:
        return b.usable_capacity(self.config.target_utilization)

    def projection(self, prog: ProgramState) -> int:
        """Tokens the program will hold: its context, and while it reasons, the growth of this step.

        An acting program is charged only its context: its next request says how much it grew,
        and is checked against the capacity when it arrives.
        """
        tokens = max(prog.context_tokens, prog.pending_tokens)
        if prog.inflight or prog.holding:
            tokens += prog.growth_tokens if prog.growth_tokens >= 0 else self.config.step_growth_tokens
        return int(tokens)

    def _uncharge(self, prog: ProgramState) -> None:
        b = prog.charged
        if b is not None:
            b.used -= prog.charge
            b.residents.discard(prog)
        prog.charge = 0
        prog.charged = None

    def _charge(self, prog: ProgramState) -> None:
        """Charge the program to its backend while it is resident there (active, or still running)."""
        b = prog.backend
        if b is None or prog.released or not (prog.active or prog.inflight > 0):
            self._uncharge(prog)
            return
        if prog.charged is not b:
            self._uncharge(prog)
            prog.charged = b
            b.residents.add(prog)
        new = self.projection(prog)
        b.used += new - prog.charge
        prog.charge = new

    def _fits(self, b: Backend, prog: ProgramState) -> bool:
        own = prog.charge if prog.charged is b else 0
        if b.used - own <= 0:
            return True  # an empty backend takes anything, even a program larger than it
        return b.used - own + self.projection(prog) <= self.capacity(b) * (1.0 - self.config.resume_headroom)

    # the request path
    async def acquire(self, prog: ProgramState, prompt_tokens: int) -> Backend:
        prog.pending_tokens = max(prog.pending_tokens, prompt_tokens)
        prog.holding += 1
        started = 0.0
        try:
            while True:
                if prog.released:
                    raise ProgramReleased(f"program {prog.program_id} was released")
                if not self.healthy():
                    raise NoHealthyBackend("no healthy backend")
                if prog.active:
                    b = prog.backend
                    if b is not None and b.healthy:
                        self._charge(prog)
                        if b.used > self.capacity(b):
                            self._make_room(b)
                        if prog.active:
                            return b
                    else:
                        reason = "admission" if prog.steps == 0 and b is None else "backend_down"
                        self._enqueue(prog, reason)
                        self._schedule()
                        if prog.active:
                            continue
                        self.metrics.pauses.labels(reason).inc()
                        log.info(
                            "hold %s (%s): %d tokens projected",
                            prog.program_id,
                            reason,
                            self.projection(prog),
                        )
                if not started:
                    started = time.monotonic()
                fut = asyncio.get_running_loop().create_future()
                prog.waiters.append(fut)
                try:
                    await fut
                finally:
                    if fut in prog.waiters:
                        prog.waiters.remove(fut)
        finally:
            prog.holding -= 1
            if started:
                self.metrics.queue_seconds.observe(time.monotonic() - started)

    def finish(self, prog: ProgramState) -> None:
        if prog.inflight == 0:
            prog.pending_tokens = 0
        b = prog.charged
        self._charge(prog)
        if b is not None and b.used > self.capacity(b):
            self._make_room(b)
        if self.queue:
            self._schedule()

    def release(self, prog: ProgramState) -> None:
        self._uncharge(prog)
        self.queue.pop(prog, None)
        for fut in prog.waiters:
            if not fut.done():
                fut.set_exception(ProgramReleased(f"program {prog.program_id} was released"))
        if self.queue:
            self._schedule()

    def backend_down(self, backend: Backend) -> None:
        for prog in list(backend.residents):
            self._uncharge(prog)  # its cache there is gone
            if prog.backend is backend:
                prog.backend = None
            if prog.active:
                self._pause(prog, "backend_down")
        for prog in self.queue:
            if prog.backend is backend:
                prog.backend = None
        if not self.healthy():
            for prog in list(self.queue):
                for fut in prog.waiters:
                    if not fut.done():
                        fut.set_exception(NoHealthyBackend("no healthy backend"))
        self._schedule()

    def backend_up(self, backend: Backend) -> None:
        self._schedule()

    def tick(self) -> None:
        if self.queue:
            self._schedule()

    # pausing and resuming
    def _enqueue(self, prog: ProgramState, reason: str) -> None:
        prog.active = False
        prog.pause_reason = reason
        prog.queued_since = time.monotonic()
        self.queue.pop(prog, None)
        self.queue[prog] = None
        self._charge(prog)

    def _pause(self, prog: ProgramState, reason: str) -> None:
        self._enqueue(prog, reason)
        self.metrics.pauses.labels(reason).inc()
        log.info(
            "pause %s (%s): %d tokens, %d steps, %s",
            prog.program_id,
            reason,
            prog.context_tokens,
            prog.steps,
            prog.phase,
        )

    def _make_room(self, b: Backend) -> None:
        """Pause just enough of the backend's active programs to bring its projection under capacity."""
        actives = [p for p in b.residents if p.active]
        over = sum(p.charge for p in actives) - self.capacity(b)
        if over <= 0 or len(actives) <= 1:
            return
        # Acting programs first (nothing running), then the least progressed; newest first among equals.
        order = sorted(actives, key=lambda p: (p.phase == REASONING, p.steps, -p.created))
        chosen: list[ProgramState] = []
        freed = 0
        for p in order[:-1]:  # always keep one running
            if freed >= over:
                break
            chosen.append(p)
            freed += p.charge
        # Never more than needed: drop victims whose pause turned out unnecessary.
        for p in reversed(chosen[:-1]):
            if freed - p.charge >= over:
                chosen.remove(p)
                freed -= p.charge
        for p in chosen:
            self._pause(p, "kv_overflow")

    def _schedule(self) -> None:
        """Resume queued programs in arrival order while they fit."""
        now = time.monotonic()
        for prog in list(self.queue):
            target, reason = self._target(prog, now)
            if target is not None:
                self._resume(prog, target, reason)
            elif now - prog.queued_since >= self.config.ageing_seconds:
                break  # it has waited long enough: capacity that frees up is kept for it

    def _target(self, prog: ProgramState, now: float) -> tuple[Backend | None, str]:
        orig = prog.backend if prog.backend is not None and prog.backend.healthy else None
        if orig is not None:
            if self._fits(orig, prog):
                return orig, "original_backend"
            if now - prog.queued_since < self.config.affinity_wait_seconds:
                return None, ""
        candidates = [b for b in self.healthy() if b is not orig and self._fits(b, prog)]
        if not candidates:
            return None, ""
        best = max(candidates, key=lambda b: self.capacity(b) - b.used)
        return best, ("admitted" if prog.backend is None and prog.steps == 0 else "moved")

    def _resume(self, prog: ProgramState, b: Backend, reason: str) -> None:
        self.queue.pop(prog, None)
        was_paused = prog.pause_reason
        if prog.backend is not b:
            self._uncharge(prog)
            prog.backend = b
        prog.active = True
        prog.queued_since = 0.0
        prog.pause_reason = ""
        self._charge(prog)
        # A new program admitted at once was never paused: count only real waits.
        if was_paused and (was_paused != "admission" or prog.waiters):
            self.metrics.resumes.labels(reason).inc()
            log.info("resume %s (%s) on %s after %s", prog.program_id, reason, b.url, was_paused)
        for fut in prog.waiters:
            if not fut.done():
                fut.set_result(None)


POLICIES: Registry[Policy] = Registry(
    "policy",
    {"program": ProgramPolicy, "round-robin": RoundRobinPolicy, "least-loaded": LeastLoadedPolicy},
    base=Policy,
)


def get_policy_class(name: str) -> type[Policy]:
    """A policy class by short name or dotted path (`package.module.Class`)."""
    return POLICIES.get(name)
