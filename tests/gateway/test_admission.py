"""Admission, the hold/wake/retry loop the gateway and the fleet simulator share, on a hand-driven
clock and timer (no sockets, no event loop)."""

from __future__ import annotations

from tests.gateway.test_core import EXACT
from wren.gateway.admission import Admission, Held
from wren.gateway.backends import Backend
from wren.gateway.config import GatewayConfig
from wren.gateway.metrics import GatewayMetrics
from wren.gateway.programs import ProgramTable, StepOutcome
from wren.gateway.scheduler import QueueTimeout, get_policy_class


class Timers:
    """`later(delay, fn)` collected, run when the test moves the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.due: list[tuple[float, object]] = []

    def later(self, delay: float, fn) -> None:
        self.due.append((self.now + delay, fn))

    def advance(self, to: float) -> None:
        self.now = to
        while ready := [d for d in self.due if d[0] <= to]:
            for d in ready:
                self.due.remove(d)
                d[1]()


def make(max_queue: float = 100.0):
    config = GatewayConfig(
        backends=["http://b0"], capacity_tokens={"*": 1000}, max_queue_seconds=max_queue, **EXACT
    )
    backends = [Backend.create("http://b0", capacity=1000, connect_timeout=1, read_timeout=1)]
    policy = get_policy_class("program")(backends, config, GatewayMetrics())
    timers = Timers()
    return Admission(policy, max_queue, lambda: timers.now, timers.later), policy, timers, ProgramTable()


def test_a_held_request_is_placed_when_its_program_is_woken():
    admission, policy, timers, table = make()
    a, _ = table.get_or_create("A")
    b, _ = table.get_or_create("B")
    on = admission.submit(a, 900, None, None, None)
    assert isinstance(on, Backend)
    placed, refused = [], []
    held = admission.submit(b, 400, None, placed.append, refused.append)
    assert isinstance(held, Held) and admission.held == {b: [held]}
    table.end_step(a, StepOutcome(0, 900, usage=(900, 0)), 1.0)
    policy.finish(a, on, 1.0)
    timers.advance(2.0)
    table.remove(a)
    policy.release(a, 2.0)  # room for B: the policy wakes it, and it is looked at once the call is over
    assert placed == []
    timers.advance(2.0)
    assert placed == [on] and refused == [] and admission.held == {}


def test_a_held_request_is_refused_when_its_bound_is_due():
    admission, policy, timers, table = make(max_queue=10)
    a, _ = table.get_or_create("A")
    b, _ = table.get_or_create("B")
    admission.submit(a, 900, None, None, None)
    placed, refused = [], []
    admission.submit(b, 400, None, placed.append, refused.append)
    timers.advance(9.0)
    assert refused == []
    timers.advance(10.0)
    assert placed == [] and len(refused) == 1 and isinstance(refused[0], QueueTimeout)
    assert b.holding == 0 and admission.held == {}


def test_an_abandoned_request_is_no_longer_held():
    admission, policy, timers, table = make()
    a, _ = table.get_or_create("A")
    b, _ = table.get_or_create("B")
    admission.submit(a, 900, None, None, None)
    placed = []
    held = admission.submit(b, 400, None, placed.append, placed.append)
    admission.abandon(held)
    assert b.holding == 0 and admission.held == {}
    timers.advance(1000.0)
    assert placed == []


def test_a_bound_timer_that_fires_early_is_set_again():
    admission, policy, timers, table = make(max_queue=10)
    a, _ = table.get_or_create("A")
    b, _ = table.get_or_create("B")
    admission.submit(a, 900, None, None, None)
    refused = []
    admission.submit(b, 400, None, refused.append, refused.append)
    (due, fire), *_ = timers.due
    timers.due.clear()
    timers.now = due - 0.001  # an event loop's timer may run a little before the clock reaches it
    fire()
    assert refused == [] and len(timers.due) == 1  # still held, and looked at again when due
    timers.advance(due)
    assert len(refused) == 1 and isinstance(refused[0], QueueTimeout)
