"""Scheduling policies: which backend serves a request, and whether a program runs now.

A policy is a plain state machine. Every decision (admit, pause, resume, place, reject) is a method
call with the current time passed in; nothing here waits, sleeps or does I/O. `request()` answers
a backend or None (hold the request); a held request is looked at again with `retry()` once the
policy calls `wake(program)` or its wait runs out. Refusals are exceptions: `PromptTooLarge`
(400), `QueueTimeout` (503 with Retry-After), `NoHealthyBackend`, `ProgramReleased`.

`program` treats each agent run as a program whose context should stay in one backend's KV cache
between its steps. It charges every resident program (reasoning or acting) its projected context
against the backend's capacity; when the projection overflows it pauses just enough programs to fit
(acting ones first, then the least progressed), holds their next requests at the gateway, and
resumes them in the order they queued. A queued program waits a bounded time for room on the
backend holding its cache before moving to the emptiest one. The wait itself is bounded too: a
program queued for `max_pause_seconds` is overdue, and room is made for it on the backend that
holds its cache by pausing the programs there that have run longest (at least `min_run_seconds`
each) as soon as they are between steps; nobody behind an overdue program is resumed first.

`round-robin` and `least-loaded` are the baselines: per request, no stickiness, no pausing.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from wren.exceptions import ConfigError
from wren.gateway.metrics import GatewayMetrics
from wren.gateway.policies import POLICIES
from wren.gateway.programs import REASONING, ProgramReleased, ProgramState

if TYPE_CHECKING:
    from wren.gateway.backends import Backend
    from wren.gateway.config import GatewayConfig

log = logging.getLogger("wren.gateway")

TOOL_HISTORY = 8  # tool times kept per program to predict its next one


class NoHealthyBackend(Exception):
    """Every backend is marked unhealthy."""


class Rejected(Exception):
    """The gateway refuses a request: `status` is its HTTP status."""

    status = 400
    kind = "invalid_request_error"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PromptTooLarge(Rejected):
    """No backend could ever hold the request's prompt."""

    kind = "prompt_too_large"


class QueueTimeout(Rejected):
    """The request was held at the gateway for longer than the configured bound."""

    status = 503
    kind = "queue_timeout"


class Policy:
    """Base policy: picks a backend per request and never holds one."""

    name = "base"

    def __init__(
        self, backends: list[Backend], config: GatewayConfig, metrics: GatewayMetrics | None = None
    ) -> None:
        self.backends = backends
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        self.wake: Callable[[ProgramState], None] = lambda prog: None
        """Called when a held program should be looked at again (resumed, released, no backend)."""

    def healthy(self) -> list[Backend]:
        return [b for b in self.backends if b.healthy]

    def queue_length(self) -> int:
        return 0

    # the request path
    def request(
        self, prog: ProgramState, prompt_tokens: int, now: float, least_tokens: int | None = None
    ) -> Backend | None:
        """A request of `prompt_tokens` arrives: the backend it goes to now, or None to hold it.

        `least_tokens`, a low estimate of its size, is what is checked against the largest capacity
        (default: `prompt_tokens`).
        """
        self._check_size(prompt_tokens if least_tokens is None else least_tokens)
        if prog.arrived < 0:
            prog.arrived = now
        if prog.acting_since >= 0:
            prog.tool_seconds.append(now - prog.acting_since)
            del prog.tool_seconds[:-TOOL_HISTORY]
            prog.acting_since = -1.0
        prog.pinned_until = float("inf")
        prog.pending_tokens = max(prog.pending_tokens, prompt_tokens)
        if prog.holding == 0:
            prog.held_since = now
        prog.holding += 1
        return self.retry(prog, now)

    def retry(self, prog: ProgramState, now: float) -> Backend | None:
        """Look again at a held request: its backend, None to keep holding it, or a refusal."""
        try:
            if prog.released:
                raise ProgramReleased(f"program {prog.program_id} was released")
            if not self.healthy():
                raise NoHealthyBackend("no healthy backend")
            waited = now - prog.held_since
            bound = self.config.max_queue_seconds
            if waited >= bound:
                raise QueueTimeout(
                    f"request held {waited:.0f}s at the gateway, past max_queue_seconds={bound:g}",
                    retry_after=self.config.retry_after_seconds,
                )
            backend = self.place(prog, now)
        except BaseException:
            prog.holding -= 1
            raise
        if backend is not None:
            prog.holding -= 1
            prog.inflight += 1
            prog.sent_at = now
            backend.inflight += 1
        return backend

    def abandon(self, prog: ProgramState, now: float) -> None:
        """A held request went away (its client disconnected)."""
        prog.holding -= 1

    def unsend(self, prog: ProgramState, backend: Backend, now: float) -> None:
        """A request placed on `backend` never reached it (connection refused); it will be placed again."""
        prog.inflight -= 1
        backend.inflight -= 1

    def finish(self, prog: ProgramState, backend: Backend | None, now: float) -> None:
        """A request on `backend` ended (the program's state is already updated from it); None: one
        that was taken back with `unsend` and could not be placed again."""
        if backend is not None:
            prog.inflight -= 1
            backend.inflight -= 1
            prog.service_seconds += max(0.0, now - prog.sent_at)
        if prog.inflight == 0 and prog.holding == 0:
            prog.acting_since = now

    def _check_size(self, prompt_tokens: int) -> None:
        healthy = self.healthy()
        if not healthy or any(b.capacity is None for b in healthy):
            return
        largest = max(min(b.capacity or 0, b.request_limit or b.capacity or 0) for b in healthy)
        if prompt_tokens > largest * self.config.oversize_tolerance:
            raise PromptTooLarge(
                f"the prompt is at least {prompt_tokens} tokens (estimated from its size); "
                f"the largest backend KV capacity is {largest} tokens"
            )

    # decisions of the subclasses
    def place(self, prog: ProgramState, now: float) -> Backend | None:
        """The backend for the program's request now, or None to hold it."""
        backend = self.pick(prog)
        prog.backend = backend
        return backend

    def pick(self, prog: ProgramState) -> Backend:
        raise NotImplementedError

    def release(self, prog: ProgramState, now: float) -> None:
        """The program is gone."""
        if prog.holding:
            self.wake(prog)

    def backend_down(self, backend: Backend, now: float) -> None:
        """A backend was marked unhealthy."""

    def backend_up(self, backend: Backend, now: float) -> None:
        """A backend is healthy again."""

    def tick(self, now: float) -> None:
        """Called periodically (timeouts that are not driven by requests)."""


class RoundRobinPolicy(Policy):
    """Each request goes to the next healthy backend in turn."""

    name = "round-robin"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._counter = itertools.count()

    def pick(self, prog: ProgramState) -> Backend:
        healthy = self.healthy()
        return healthy[next(self._counter) % len(healthy)]


class LeastLoadedPolicy(Policy):
    """Each request goes to the healthy backend with the fewest requests in flight."""

    name = "least-loaded"

    def pick(self, prog: ProgramState) -> Backend:
        return min(self.healthy(), key=lambda b: b.inflight)


class ProgramPolicy(Policy):
    """Sticky, capacity-aware program scheduling with a bounded pause (see the module docstring)."""

    name = "program"
    order = "queued"
    """Which queued program resumes first: `queued` (the order they queued), `program` (the program
    that arrived first, whole programs first-come-first-served) or `service` (least attained
    service: the program that has had the least time on backends)."""
    tool_ttl = False
    """Keep an acting program's KV only for a time-to-live predicted from its own tool times."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.queue: dict[ProgramState, None] = {}  # insertion-ordered: arrival order
        self._placing: ProgramState | None = None  # the program whose request is being placed

    def rank(self, prog: ProgramState) -> tuple[float, ...]:
        """Priority of a program under `order`: lower runs first, and is paused last."""
        if self.order == "program":
            return (prog.arrived, prog.created)
        if self.order == "service":
            return (prog.service_seconds, prog.arrived)
        return (prog.queued_since,)

    def _queued(self) -> list[ProgramState]:
        if self.order == "queued":
            return list(self.queue)
        return sorted(self.queue, key=self.rank)

    def pin_seconds(self, prog: ProgramState) -> float:
        """How long to keep the program's KV while it runs a tool: a margin over its typical tool time.

        Continuum's idea: a program whose tools return quickly is worth keeping (its next step reuses
        the cache), one whose tool runs long is not (its blocks serve others better meanwhile).
        """
        cfg = self.config
        hist = prog.tool_seconds
        if not hist:
            return cfg.tool_ttl_initial_seconds
        typical = sorted(hist)[len(hist) // 2]
        return min(cfg.tool_ttl_max_seconds, cfg.tool_ttl_factor * typical)

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
        block = self.config.kv_block_tokens
        return -(-int(tokens) // block) * block  # whole blocks

    def _uncharge(self, prog: ProgramState) -> None:
        b = prog.charged
        if b is not None:
            b.used -= prog.charge
            b.residents.pop(prog, None)
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
            b.residents[prog] = None
        new = self.projection(prog)
        b.used += new - prog.charge
        prog.charge = new

    def _room(self, b: Backend, prog: ProgramState) -> float:
        """Tokens `b` could still take for `prog` (its own charge there counts as free)."""
        own = prog.charge if prog.charged is b else 0
        return self.capacity(b) * (1.0 - self.config.resume_headroom) - (b.used - own)

    def _fits(self, b: Backend, prog: ProgramState) -> bool:
        own = prog.charge if prog.charged is b else 0
        if b.used - own <= 0:
            return True  # an empty backend takes anything, even a program larger than it
        return self.projection(prog) <= self._room(b, prog)

    # the request path
    def place(self, prog: ProgramState, now: float) -> Backend | None:
        if not prog.active:
            return None
        self._placing = prog
        try:
            return self._place(prog, now)
        finally:
            self._placing = None

    def _place(self, prog: ProgramState, now: float) -> Backend | None:
        b = prog.backend
        if b is not None and b.healthy:
            self._charge(prog)
            if b.used > self.capacity(b):
                self._make_room(b, now)
            return b if prog.active else None
        reason = "admission" if prog.steps == 0 and b is None else "backend_down"
        self._enqueue(prog, reason, now)
        self._schedule(now)
        if prog.active:
            return self._place(prog, now)
        self.metrics.pauses.labels(reason).inc()
        log.info("hold %s (%s): %d tokens projected", prog.program_id, reason, self.projection(prog))
        return None

    def finish(self, prog: ProgramState, backend: Backend | None, now: float) -> None:
        super().finish(prog, backend, now)
        if prog.inflight == 0:
            prog.pending_tokens = 0
            if self.tool_ttl and prog.holding == 0:
                prog.pinned_until = now + self.pin_seconds(prog)
        b = prog.charged
        self._charge(prog)
        if b is not None and b.used > self.capacity(b):
            self._make_room(b, now)
        if self.queue:
            self._schedule(now)

    def release(self, prog: ProgramState, now: float) -> None:
        self._uncharge(prog)
        self.queue.pop(prog, None)
        super().release(prog, now)
        if self.queue:
            self._schedule(now)

    def backend_down(self, backend: Backend, now: float) -> None:
        for prog in list(backend.residents):
            self._uncharge(prog)  # its cache there is gone
            if prog.backend is backend:
                prog.backend = None
            if prog.active:
                self._pause(prog, "backend_down", now)
        for prog in self.queue:
            if prog.backend is backend:
                prog.backend = None
        if not self.healthy():
            for prog in list(self.queue):
                if prog.holding:
                    self.wake(prog)  # to be refused: nothing can serve it
        self._schedule(now)

    def backend_up(self, backend: Backend, now: float) -> None:
        self._schedule(now)

    def tick(self, now: float) -> None:
        if self.queue:
            self._schedule(now)

    # pausing and resuming
    def _enqueue(self, prog: ProgramState, reason: str, now: float) -> None:
        prog.active = False
        prog.pause_reason = reason
        prog.queued_since = now
        self.queue.pop(prog, None)
        self.queue[prog] = None
        self._charge(prog)

    def _pause(self, prog: ProgramState, reason: str, now: float) -> None:
        self._enqueue(prog, reason, now)
        self.metrics.pauses.labels(reason).inc()
        log.info(
            "pause %s (%s): %d tokens, %d steps, %s",
            prog.program_id,
            reason,
            prog.context_tokens,
            prog.steps,
            prog.phase,
        )

    def _make_room(self, b: Backend, now: float) -> None:
        """Pause just enough of the backend's active programs to bring its projection under capacity."""
        actives = [p for p in b.residents if p.active]
        over = sum(p.charge for p in actives) - self.capacity(b)
        if over <= 0 or len(actives) <= 1:
            return
        # Acting programs first (nothing running), those past their pin first; then the least
        # progressed (or the lowest ranked), newest first among equals.
        if self.order == "queued":
            order = sorted(
                actives, key=lambda p: (p.phase == REASONING, p.pinned_until > now, p.steps, -p.created)
            )
        else:
            order = sorted(
                actives,
                key=lambda p: (p.phase == REASONING, p.pinned_until > now, [-x for x in self.rank(p)]),
            )
        chosen = self._enough(order[:-1], over)  # always keep one running
        for p in chosen:
            self._pause(p, "kv_overflow", now)

    @staticmethod
    def _enough(candidates: list[ProgramState], over: float) -> list[ProgramState]:
        """The first candidates whose charges add up to `over`, less any that turn out unneeded."""
        chosen: list[ProgramState] = []
        freed = 0
        for p in candidates:
            if freed >= over:
                break
            chosen.append(p)
            freed += p.charge
        # Never more than needed: drop victims whose pause turned out unnecessary.
        for p in reversed(chosen[:-1]):
            if freed - p.charge >= over:
                chosen.remove(p)
                freed -= p.charge
        return chosen

    def _schedule(self, now: float) -> None:
        """Resume queued programs in arrival order while they fit; make room for overdue ones."""
        cfg = self.config
        for prog in self._queued():
            waited = now - prog.queued_since
            target, reason = self._target(prog, now)
            if target is None and waited >= cfg.max_pause_seconds:
                target, reason = self._displace(prog, now), "overdue"
            if target is not None:
                self._resume(prog, target, reason, now)
            elif waited >= min(cfg.ageing_seconds, cfg.max_pause_seconds):
                break  # it has waited long enough: capacity that frees up is kept for it

    def _target(self, prog: ProgramState, now: float) -> tuple[Backend | None, str]:
        orig = self._home(prog)
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

    def _home(self, prog: ProgramState) -> Backend | None:
        """The healthy backend holding the program's cache, if any."""
        b = prog.backend
        return b if b is not None and b.healthy else None

    def _displace(self, prog: ProgramState, now: float) -> Backend | None:
        """Make room for an overdue program by pausing, between their steps, the programs that have run
        longest: on the backend holding its cache if enough can be freed there, else on one where it can.

        Returns the backend once the program fits there; until then the room freed stays reserved for it.
        """
        healthy = self.healthy()
        if not healthy:
            return None
        home = self._home(prog)
        order = ([home] if home is not None else []) + sorted(
            (b for b in healthy if b is not home), key=lambda b: -self._room(b, prog)
        )
        need = {b: self.projection(prog) - self._room(b, prog) for b in order}
        victims = {b: self._idle_victims(b, prog, now) for b in order}
        b = next((b for b in order if need[b] <= sum(p.charge for p in victims[b])), order[0])
        if need[b] > 0:
            for p in self._enough(victims[b], need[b]):
                self._pause(p, "time_slice", now)
        return b if self._fits(b, prog) else None

    def _idle_victims(self, b: Backend, prog: ProgramState, now: float) -> list[ProgramState]:
        """Programs on `b` between steps that have run at least `min_run_seconds`, longest running first."""
        quantum = self.config.min_run_seconds
        idle = [
            p
            for p in b.residents
            if p.active
            and p is not prog
            and p.phase != REASONING
            and (now - p.resumed_at >= quantum or p.pinned_until <= now)
        ]
        # Those whose tool outlived their pin first: their cache is the least likely to be used soon.
        idle.sort(key=lambda p: (p.pinned_until > now, p.resumed_at))
        return idle

    def _resume(self, prog: ProgramState, b: Backend, reason: str, now: float) -> None:
        self.queue.pop(prog, None)
        was_paused = prog.pause_reason
        if prog.backend is not b:
            self._uncharge(prog)
            prog.backend = b
        prog.active = True
        prog.queued_since = 0.0
        prog.resumed_at = now
        prog.pause_reason = ""
        self._charge(prog)
        # A new program admitted at once was never paused: count only real waits.
        if was_paused and (was_paused != "admission" or prog is not self._placing):
            self.metrics.resumes.labels(reason).inc()
            log.info("resume %s (%s) on %s after %s", prog.program_id, reason, b.url, was_paused)
        if prog.holding:
            self.wake(prog)


class ProgramTTLPolicy(ProgramPolicy):
    """`program` with a KV time-to-live during tool calls (Continuum)."""

    name = "program-ttl"
    tool_ttl = True


class ProgramFCFSPolicy(ProgramPolicy):
    """`program` resuming whole programs first-come-first-served by their first request."""

    name = "program-fcfs"
    order = "program"


class ProgramLASPolicy(ProgramPolicy):
    """`program` with program-level least-attained-service priority (Autellix)."""

    name = "program-las"
    order = "service"


class ProgramTTLLASPolicy(ProgramPolicy):
    """`program` with both the tool-call time-to-live and least-attained-service priority."""

    name = "program-ttl-las"
    order = "service"
    tool_ttl = True


class ProgramTTLFCFSPolicy(ProgramPolicy):
    """`program` with the tool-call time-to-live and programs first-come-first-served (Continuum)."""

    name = "program-ttl-fcfs"
    order = "program"
    tool_ttl = True


def get_policy_class(name: str) -> type[Policy]:
    """A policy class by short name or dotted path (`package.module.Class`)."""
    cls = POLICIES.get(name)
    if not issubclass(cls, Policy):
        raise ConfigError(f"policy {name!r} is not a {Policy.__module__}.{Policy.__name__} class")
    return cls
