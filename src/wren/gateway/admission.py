"""Admission: holding the requests a policy cannot place yet, and looking at them again.

The live gateway and the fleet simulator both go through this one class, so the simulator measures
the code the gateway runs. A request is submitted with two callbacks; the policy either places it
at once (the backend is returned), refuses it (the exception is raised), or has it held. A held
request is looked at again when the policy wakes its program, and once more when its
`max_queue_seconds` bound is due (the policy then refuses it). The clock and the timer are
injected: the event loop's in the gateway, simulated time in the fleet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wren.gateway.programs import ProgramReleased, ProgramState
from wren.gateway.scheduler import NoHealthyBackend, Policy, Rejected

if TYPE_CHECKING:
    from wren.gateway.backends import Backend

REFUSALS = (Rejected, NoHealthyBackend, ProgramReleased)
"""What a policy raises instead of placing a request."""

Later = Callable[[float, Callable[[], None]], Any]
"""`later(delay, fn)`: call `fn` after `delay` seconds; returns a handle with `cancel()`, or None."""


@dataclass(eq=False, slots=True)
class Held:
    """One request held at the gateway."""

    prog: ProgramState
    placed: Callable[[Backend], None]
    refused: Callable[[BaseException], None]
    timer: Any = None
    done: bool = False


class Admission:
    """Submits requests to a policy and drives the ones it holds (see the module docstring)."""

    def __init__(
        self, policy: Policy, max_queue_seconds: float, clock: Callable[[], float], later: Later
    ) -> None:
        self.policy = policy
        self.max_queue_seconds = max_queue_seconds
        self.clock = clock
        self.later = later
        self.held: dict[ProgramState, list[Held]] = {}
        policy.wake = self._wake

    def submit(
        self,
        prog: ProgramState,
        tokens: int,
        least: int | None,
        placed: Callable[[Backend], None],
        refused: Callable[[BaseException], None],
    ) -> Backend | Held:
        """The backend if the policy places the request now; else the Held request, whose callback
        is called later. A refusal now is raised."""
        backend = self.policy.request(prog, tokens, self.clock(), least)
        if backend is not None:
            return backend
        held = Held(prog, placed, refused)
        self.held.setdefault(prog, []).append(held)
        self._arm(held)
        return held

    def _arm(self, held: Held) -> None:
        due = held.prog.held_since + self.max_queue_seconds - self.clock()
        held.timer = self.later(max(0.0, due), lambda: self._bound(held))

    def _bound(self, held: Held) -> None:
        # A timer may fire a little before the clock says the bound is due: then it is set again.
        self._retry(held)
        if not held.done:
            self._arm(held)

    def abandon(self, held: Held) -> None:
        """A held request went away (its client disconnected)."""
        if held.done:
            return
        self._forget(held)
        self.policy.abandon(held.prog, self.clock())

    def _forget(self, held: Held) -> None:
        held.done = True
        if held.timer is not None:
            held.timer.cancel()
        waiting = self.held.get(held.prog)
        if waiting is not None:
            waiting.remove(held)
            if not waiting:
                del self.held[held.prog]

    def _wake(self, prog: ProgramState) -> None:
        # Looked at once the policy's current decision is over, never from inside it.
        for held in list(self.held.get(prog, ())):
            self.later(0.0, lambda h=held: self._retry(h))

    def _retry(self, held: Held) -> None:
        if held.done:
            return
        try:
            backend = self.policy.retry(held.prog, self.clock())
        except REFUSALS as e:
            self._forget(held)
            held.refused(e)
            return
        if backend is not None:
            self._forget(held)
            held.placed(backend)
