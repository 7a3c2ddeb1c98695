"""Program state: one agent run, seen as a sequence of model calls separated by tool time."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wren.gateway.backends import Backend

REASONING = "reasoning"  # waiting on the model
ACTING = "acting"  # running a tool between model calls


class ProgramReleased(Exception):
    """The program was released while one of its requests was held at the gateway."""


@dataclass(eq=False, slots=True)
class ProgramState:
    """What the gateway knows about one program."""

    program_id: str
    ephemeral: bool = False  # a request without a program id: its own program, released when it ends
    backend: Backend | None = None  # where its KV cache lives (sticky)
    context_tokens: int = 0  # prompt + completion of its latest step (usage, else estimate)
    tokens_from_usage: bool = False
    prompt_tokens: int = 0  # prompt tokens of its latest step with usage
    prompt_chars: int = 0  # request size of that step, to estimate the next one's growth
    growth_tokens: float = -1.0  # moving average of context growth per step (-1: not seen yet)
    steps: int = 0
    errors: int = 0
    inflight: int = 0  # requests sent to a backend and not finished
    holding: int = 0  # requests inside the scheduler (waiting for admission or resume)
    pending_tokens: int = 0  # estimated prompt tokens of its requests in flight
    active: bool = True  # False while paused by the scheduler
    pause_reason: str = ""
    charge: int = 0  # tokens charged to `charged` by the scheduler
    charged: Backend | None = None
    created: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    queued_since: float = 0.0  # when it joined the resume queue (0 if not queued)
    resumed_at: float = 0.0  # when it was last admitted or resumed
    held_since: float = 0.0  # when the oldest of its held requests arrived
    arrived: float = -1.0  # when its first request reached the scheduler (-1: none yet)
    acting_since: float = -1.0  # when its last reply ended, while it runs a tool (-1: not acting)
    tool_seconds: list[float] = field(default_factory=list)  # its latest tool times, oldest first
    pinned_until: float = float("inf")  # while acting, its KV is kept for it until then
    sent_at: float = 0.0  # when its request in flight was placed on a backend
    service_seconds: float = 0.0  # time its requests have spent on backends (attained service)
    released: bool = False

    @property
    def phase(self) -> str:
        return REASONING if self.inflight > 0 or self.holding > 0 else ACTING

    def summary(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "program_id": self.program_id,
            "backend": self.backend.url if self.backend is not None else None,
            "phase": self.phase,
            "state": "active" if self.active else "paused",
            "pause_reason": self.pause_reason or None,
            "context_tokens": self.context_tokens,
            "tokens_from_usage": self.tokens_from_usage,
            "charged_tokens": self.charge,
            "steps": self.steps,
            "errors": self.errors,
            "inflight": self.inflight,
            "held_requests": self.holding,
            "idle_seconds": round(now - self.last_activity, 3),
            "age_seconds": round(now - self.created, 3),
        }


@dataclass(slots=True)
class StepOutcome:
    """What one forwarded request showed of its step."""

    chars: int  # size of the request body
    estimate: int  # its prompt tokens as estimated before sending
    usage: tuple[int, int] | None = None  # (prompt, completion) tokens the backend reported
    completed: bool = False  # the backend answered it in full
    events: int = 0  # stream events relayed (about one token each) when usage never came


class TokenEstimator:
    """Characters-per-token ratio learned from usage, to estimate tokens before usage arrives."""

    def __init__(self, initial: float = 4.0, weight: float = 0.05) -> None:
        self.chars_per_token = initial
        self.weight = weight
        self.samples = 0

    def learn(self, chars: int, tokens: int) -> None:
        if chars <= 0 or tokens <= 0:
            return
        ratio = chars / tokens
        # Learn fast at first, then settle into a slow moving average.
        w = max(self.weight, 1.0 / (self.samples + 1))
        self.chars_per_token += w * (ratio - self.chars_per_token)
        self.samples += 1

    def tokens(self, chars: int) -> int:
        return int(chars / self.chars_per_token) + 1


class ProgramTable:
    """All live programs, by id."""

    def __init__(self, estimator: TokenEstimator | None = None) -> None:
        self.programs: dict[str, ProgramState] = {}
        self.estimator = estimator or TokenEstimator()
        self._anon = itertools.count(1)
        self.created_total = 0
        self.released_total = 0

    def __len__(self) -> int:
        return len(self.programs)

    def get(self, program_id: str) -> ProgramState | None:
        return self.programs.get(program_id)

    def get_or_create(self, program_id: str | None) -> tuple[ProgramState, bool]:
        """The program with this id (created if new); a None id makes an ephemeral program."""
        if program_id is None:
            prog = ProgramState(f"anon-{next(self._anon)}", ephemeral=True)
            self.programs[prog.program_id] = prog
            self.created_total += 1
            return prog, True
        prog = self.programs.get(program_id)
        if prog is not None:
            return prog, False
        prog = ProgramState(program_id)
        self.programs[program_id] = prog
        self.created_total += 1
        return prog, True

    def remove(self, prog: ProgramState) -> None:
        if self.programs.get(prog.program_id) is prog:
            del self.programs[prog.program_id]
            self.released_total += 1
        prog.released = True

    def estimate_prompt_tokens(self, prog: ProgramState, chars: int) -> int:
        """Tokens of a request of `chars` characters from this program."""
        if prog.tokens_from_usage and prog.prompt_chars:
            grown = max(0, chars - prog.prompt_chars)
            return prog.prompt_tokens + self.estimator.tokens(grown)
        return self.estimator.tokens(chars)

    def least_prompt_tokens(self, prog: ProgramState, chars: int) -> int:
        """A low estimate of a request's tokens, to refuse only what surely fits nowhere: at most one
        token per 4 characters (what the learned ratio says when it says fewer), and never less than
        the program's last prompt."""
        cpt = max(self.estimator.chars_per_token, 4.0)
        last = prog.prompt_tokens if prog.tokens_from_usage else 0
        return max(last, int(chars / cpt))

    def record_usage(
        self, prog: ProgramState, chars: int, prompt_tokens: int, completion_tokens: int
    ) -> None:
        """Update a program from a step's usage."""
        self.estimator.learn(chars, prompt_tokens)
        self._grow(prog, prompt_tokens + completion_tokens)
        prog.prompt_tokens = prompt_tokens
        prog.prompt_chars = chars
        prog.tokens_from_usage = True

    def record_estimate(self, prog: ProgramState, prompt_tokens: int, completion_tokens: int) -> None:
        """Update a program from a step that ended without usage (error, disconnect)."""
        self._grow(prog, prompt_tokens + completion_tokens)

    def end_step(self, prog: ProgramState, step: StepOutcome, now: float) -> None:
        """Account one request that a backend handled: a step with usage, a step without, or an error."""
        prog.last_activity = now
        if step.usage is not None:
            self.record_usage(prog, step.chars, *step.usage)
            prog.steps += 1
        elif step.completed or step.events:
            self.record_estimate(prog, step.estimate, step.events)
            prog.steps += 1
        else:
            prog.errors += 1

    @staticmethod
    def _grow(prog: ProgramState, context: int) -> None:
        if prog.steps > 0 or prog.context_tokens > 0:
            delta = max(0, context - prog.context_tokens)
            prog.growth_tokens = delta if prog.growth_tokens < 0 else 0.7 * prog.growth_tokens + 0.3 * delta
        prog.context_tokens = context

    def idle(self, lease_seconds: float, now: float | None = None) -> list[ProgramState]:
        """Programs with nothing in flight or held whose last activity is older than the lease."""
        now = time.monotonic() if now is None else now
        cutoff = now - lease_seconds
        return [
            p
            for p in self.programs.values()
            if p.inflight == 0 and p.holding == 0 and p.last_activity < cutoff
        ]
