"""The scheduling core, driven directly: tables of events at given times, no sockets, no sleeping.

Each case is a list of operations on a policy over backends of given KV capacities; the clock is
the time each operation names. Operations:
  ("send", pid, tokens, t, k)     a request that must go to backend k at once
  ("hold", pid, tokens, t)        a request that must be held
  ("done", pid, prompt, completion, t)   its step ends with this usage
  ("step", pid, prompt, completion, t, k)  send to k, then done at the same time
  ("retry", pid, t, k)            a held request looked at again: goes to k (None: still held)
  ("refused", pid, tokens_or_None, t, Exc, text)  send (or retry when tokens is None) is refused
  ("release", pid, t)  ("tick", t)  ("down", k, t)
  ("state", pid, "active" | "paused", reason)   ("woken", pid)   ("not_woken", pid)
"""

from __future__ import annotations

import pytest

from wren.gateway.backends import Backend
from wren.gateway.config import GatewayConfig
from wren.gateway.metrics import GatewayMetrics
from wren.gateway.programs import ProgramReleased, ProgramState, ProgramTable, StepOutcome
from wren.gateway.scheduler import NoHealthyBackend, PromptTooLarge, QueueTimeout, get_policy_class

EXACT = {"target_utilization": 1.0, "resume_headroom": 0.0, "step_growth_tokens": 0, "kv_block_tokens": 1}


class Harness:
    """A policy over backends with given capacities, and the programs it has seen."""

    def __init__(self, policy: str, capacities: list[int | None], settings: dict) -> None:
        urls = [f"http://backend-{k}" for k in range(len(capacities))]
        config = GatewayConfig(backends=urls, policy=policy, **{**EXACT, **settings})
        self.backends = [
            Backend.create(u, capacity=c, connect_timeout=1.0, read_timeout=1.0)
            for u, c in zip(urls, capacities, strict=True)
        ]
        self.policy = get_policy_class(policy)(self.backends, config, GatewayMetrics())
        self.woken: list[str] = []
        self.policy.wake = lambda prog: self.woken.append(prog.program_id)
        self.table = ProgramTable()
        self.on: dict[str, Backend] = {}  # the backend of each program's request in flight
        self.seen: dict[str, ProgramState] = {}  # every program, released ones included

    def prog(self, pid: str, t: float) -> ProgramState:
        prog, new = self.table.get_or_create(pid)
        if new:
            prog.created = prog.last_activity = t
            self.seen[pid] = prog
        return prog

    def index(self, backend: Backend | None) -> int | None:
        return None if backend is None else self.backends.index(backend)

    def placed(self, pid: str, backend: Backend | None) -> int | None:
        if backend is not None:
            self.on[pid] = backend
        return self.index(backend)

    def apply(self, op: tuple) -> None:
        kind, pid, *rest = op
        p = self.policy
        if kind == "send":
            tokens, t, k = rest
            assert self.placed(pid, p.request(self.prog(pid, t), tokens, t)) == k, op
        elif kind == "hold":
            tokens, t = rest
            assert p.request(self.prog(pid, t), tokens, t) is None, op
        elif kind == "done":
            prompt, completion, t = rest
            prog = self.seen[pid]
            self.table.end_step(prog, StepOutcome(0, prompt, usage=(prompt, completion)), t)
            p.finish(prog, self.on.pop(pid), t)
        elif kind == "step":
            prompt, completion, t, k = rest
            self.apply(("send", pid, prompt, t, k))
            self.apply(("done", pid, prompt, completion, t))
        elif kind == "retry":
            t, k = rest
            assert self.placed(pid, p.retry(self.seen[pid], t)) == k, op
        elif kind == "refused":
            tokens, t, exc, text = rest
            with pytest.raises(exc, match=text):
                if tokens is None:
                    p.retry(self.seen[pid], t)
                else:
                    p.request(self.prog(pid, t), tokens, t)
        elif kind == "release":
            (t,) = rest
            prog = self.seen[pid]
            self.table.remove(prog)
            p.release(prog, t)
        elif kind == "tick":
            p.tick(pid)  # ("tick", t): the time stands where the program id would
        elif kind == "down":
            (t,) = rest
            b = self.backends[pid]
            b.mark_down("test")
            p.backend_down(b, t)
        elif kind == "state":
            state, reason = rest
            summary = self.seen[pid].summary()
            assert (summary["state"], summary["pause_reason"]) == (state, reason), op
        elif kind == "charged":
            (tokens,) = rest
            assert self.seen[pid].charge == tokens, op
        elif kind == "woken":
            assert pid in self.woken, op
        elif kind == "not_woken":
            assert pid not in self.woken, op
        else:
            raise AssertionError(f"unknown operation {op}")


# (policy, capacities, settings, operations)
CASES = {
    "an empty backend takes a program larger than it": (
        "program", [1000], {},
        [("send", "A", 1200, 0, 0), ("state", "A", "active", None)],
    ),
    "overflow pauses the acting program, not the reasoning one": (
        "program", [1000], {},
        [
            ("step", "A", 400, 100, 0, 0),
            ("step", "B", 400, 100, 1, 0),
            ("send", "B", 900, 2, 0),  # B grows to 900 while A (500) is acting
            ("state", "A", "paused", "kv_overflow"),
            ("state", "B", "active", None),
            ("hold", "A", 600, 3),  # A's next request waits at the gateway
            ("done", "B", 900, 50, 4),
            ("release", "B", 5),
            ("woken", "A"),
            ("retry", "A", 5, 0),
            ("state", "A", "active", None),
        ],
    ),
    "queued programs resume in arrival order on the backend holding their cache": (
        "program", [1000], {},
        [
            ("step", "A", 500, 0, 0, 0),
            ("step", "B", 500, 0, 0, 0),
            ("hold", "C", 300, 1),
            ("hold", "D", 300, 2),
            ("release", "A", 3),  # room for one of them: the first to come
            ("woken", "C"), ("not_woken", "D"),
            ("retry", "C", 3, 0), ("retry", "D", 3, None),
        ],
    ),
    "with ageing 0 a waiting large program keeps its place": (
        "program", [1000], {"ageing_seconds": 0},
        [("step", "A", 600, 0, 0, 0), ("hold", "big", 600, 1), ("hold", "small", 100, 2), ("not_woken", "small")],
    ),
    "without ageing a small program passes a large one that waits": (
        "program", [1000], {"ageing_seconds": 60},
        [("step", "A", 600, 0, 0, 0), ("hold", "big", 600, 1), ("send", "small", 100, 2, 0)],
    ),
    "new programs go to the emptiest backend": (
        "program", [1000, 1000], {},
        [("step", "A", 300, 0, 0, 0), ("step", "B", 100, 0, 1, 1), ("step", "C", 100, 0, 2, 1)],
    ),
    "a paused program waits for its backend, then moves": (
        "program", [1000, 1000], {"affinity_wait_seconds": 30, "max_pause_seconds": 1000},
        [
            ("step", "X", 500, 0, 0, 0),
            ("step", "B", 600, 0, 0, 1),
            ("step", "A", 400, 0, 1, 0),
            ("send", "A", 900, 2, 0),  # b0 overflows: X, acting, is paused
            ("state", "X", "paused", "kv_overflow"),
            ("tick", 20), ("state", "X", "paused", "kv_overflow"),
            ("release", "B", 25), ("state", "X", "paused", "kv_overflow"),  # room on b1, but affinity holds
            ("tick", 33), ("state", "X", "active", None),
            ("send", "X", 500, 34, 1),
        ],
    ),
    "an overdue program displaces the longest-running program between steps": (
        "program", [1000], {"max_pause_seconds": 60, "min_run_seconds": 20, "ageing_seconds": 1000},
        [
            ("step", "A", 500, 0, 0, 0),
            ("step", "B", 500, 0, 1, 0),
            ("hold", "C", 400, 2),
            ("tick", 50), ("not_woken", "C"),
            ("tick", 62),
            ("state", "A", "paused", "time_slice"),  # the oldest; freeing it alone is enough
            ("state", "B", "active", None),
            ("woken", "C"),
            ("retry", "C", 62, 0),
        ],
    ),
    "programs that ran less than min_run are not displaced": (
        "program", [1000], {"max_pause_seconds": 60, "min_run_seconds": 100, "ageing_seconds": 1000},
        [
            ("step", "A", 500, 0, 0, 0),
            ("step", "B", 500, 0, 1, 0),
            ("hold", "C", 400, 2),
            ("tick", 62), ("not_woken", "C"), ("state", "A", "active", None),
            ("tick", 101), ("state", "A", "paused", "time_slice"), ("woken", "C"),
        ],
    ),
    "a reasoning program is displaced only when its step ends": (
        "program", [1000], {"max_pause_seconds": 60, "min_run_seconds": 20, "ageing_seconds": 1000},
        [
            ("step", "A", 500, 0, 0, 0),
            ("hold", "C", 600, 1),
            ("send", "A", 500, 61, 0),
            ("tick", 62), ("state", "A", "active", None), ("not_woken", "C"),
            ("done", "A", 500, 0, 70),
            ("state", "A", "paused", "time_slice"),
            ("retry", "C", 70, 0),
        ],
    ),
    "an overdue program is not followed by later ones": (
        "program", [1000], {"max_pause_seconds": 60, "min_run_seconds": 1000, "ageing_seconds": 1000},
        [
            ("step", "A", 900, 0, 0, 0),
            ("hold", "C", 400, 1),
            ("tick", 61),
            ("hold", "D", 50, 62),  # would fit, but C is overdue
            ("not_woken", "D"),
        ],
    ),
    "a held request past max_queue_seconds is refused with a retry time": (
        "program", [1000], {"max_queue_seconds": 100, "retry_after_seconds": 7, "max_pause_seconds": 1000},
        [
            ("step", "A", 900, 0, 0, 0),
            ("hold", "C", 400, 2),
            ("retry", "C", 101, None),
            ("refused", "C", None, 102, QueueTimeout, "held 100s .* max_queue_seconds=100"),
        ],
    ),
    "a prompt larger than every backend is refused at once": (
        "program", [1000, 800], {"oversize_tolerance": 1.25},
        [
            ("refused", "A", 1300, 0, PromptTooLarge, "at least 1300 tokens.*largest backend KV capacity is 1000"),
            ("send", "B", 1200, 1, 0),
        ],
    ),
    "an unknown capacity refuses nothing": (
        "program", [1000, None], {},
        [("send", "A", 10**7, 0, 1)],
    ),
    "a release wakes the program's held request, which is refused": (
        "program", [1000], {},
        [
            ("step", "A", 900, 0, 0, 0),
            ("hold", "B", 400, 1),
            ("release", "B", 2),
            ("woken", "B"),
            ("refused", "B", None, 2, ProgramReleased, "was released"),
        ],
    ),
    "programs of a dead backend move; with none left their requests are refused": (
        "program", [1000, 1000], {},
        [
            ("step", "A", 300, 0, 0, 0),
            ("step", "B", 600, 0, 0, 1),
            ("down", 0, 1),
            ("state", "A", "active", None),
            ("send", "A", 300, 2, 1),
            ("done", "A", 300, 0, 2),
            ("hold", "C", 900, 3),
            ("down", 1, 4),
            ("woken", "C"),
            ("refused", "C", None, 4, NoHealthyBackend, "no healthy backend"),
        ],
    ),
    "a program is charged its usage tokens in whole KV blocks": (
        "program", [1000], {"kv_block_tokens": 16},
        [
            ("step", "A", 500, 1, 0, 0), ("charged", "A", 512),  # 501 tokens take 32 blocks
            ("step", "B", 480, 0, 1, 0), ("charged", "B", 480),
            ("hold", "C", 8, 2),  # 8 tokens need a block; 8 tokens are left
        ],
    ),
    "program-ttl: an overdue program displaces one whose tool outlived its pin": (
        "program-ttl", [1000],
        {"max_pause_seconds": 60, "min_run_seconds": 1000, "ageing_seconds": 1000, "tool_ttl_initial_seconds": 5},
        [
            ("step", "A", 500, 0, 0, 0),
            ("step", "B", 500, 0, 1, 0),  # pinned until 6
            ("hold", "C", 400, 2),
            ("step", "A", 500, 0, 60, 0),  # back from its tool: pinned again, until 62 + ...
            ("tick", 62),
            ("state", "B", "paused", "time_slice"),  # nobody has run min_run_seconds, but B's pin is over
            ("state", "A", "active", None),
            ("woken", "C"),
        ],
    ),
    "program: without a pin nobody short of min_run is displaced": (
        "program", [1000], {"max_pause_seconds": 60, "min_run_seconds": 1000, "ageing_seconds": 1000},
        [
            ("step", "A", 500, 0, 0, 0),
            ("step", "B", 500, 0, 1, 0),
            ("hold", "C", 400, 2),
            ("tick", 62),
            ("state", "B", "active", None),
            ("not_woken", "C"),
        ],
    ),
    "program: the program that queued first resumes first": (
        "program", [1000], {},
        [
            ("step", "A", 400, 0, 0, 0),
            ("step", "B", 400, 0, 1, 0),
            ("hold", "C", 700, 2),
            ("send", "B", 700, 3, 0), ("state", "A", "paused", "kv_overflow"),  # queued after C
            ("done", "B", 700, 0, 4), ("release", "B", 5),
            ("woken", "C"), ("state", "A", "paused", "kv_overflow"),
        ],
    ),
    "program-fcfs: the program that arrived first resumes first": (
        "program-fcfs", [1000], {},
        [
            ("step", "A", 400, 0, 0, 0),
            ("step", "B", 400, 0, 1, 0),
            ("hold", "C", 700, 2),
            ("send", "B", 700, 3, 0), ("state", "A", "paused", "kv_overflow"),
            ("done", "B", 700, 0, 4), ("release", "B", 5),
            ("state", "A", "active", None), ("not_woken", "C"),  # A arrived at 0, C at 2
        ],
    ),
    "program-las: the program with the least service so far resumes first": (
        "program-las", [1000], {},
        [
            ("send", "A", 400, 0, 0), ("done", "A", 400, 0, 30),  # 30 s on the backend
            ("step", "B", 400, 0, 31, 0),
            ("send", "B", 700, 33, 0), ("state", "A", "paused", "kv_overflow"),  # A queues first
            ("hold", "C", 700, 34),  # no service yet
            ("done", "B", 700, 0, 35), ("release", "B", 36),
            ("woken", "C"), ("state", "A", "paused", "kv_overflow"),
        ],
    ),
    "program: in queue order the same case resumes the one that queued first": (
        "program", [1000], {},
        [
            ("send", "A", 400, 0, 0), ("done", "A", 400, 0, 30),
            ("step", "B", 400, 0, 31, 0),
            ("send", "B", 700, 33, 0), ("state", "A", "paused", "kv_overflow"),
            ("hold", "C", 700, 34),
            ("done", "B", 700, 0, 35), ("release", "B", 36),
            ("state", "A", "active", None), ("not_woken", "C"),
        ],
    ),
    "round-robin alternates whatever the program": (
        "round-robin", [1000, 1000], {},
        [("step", "A", 10, 0, 0, 0), ("step", "A", 10, 0, 1, 1), ("step", "B", 10, 0, 2, 0)],
    ),
    "least-loaded picks the backend with fewest requests in flight": (
        "least-loaded", [1000, 1000], {},
        [("send", "A", 10, 0, 0), ("send", "B", 10, 0, 1), ("done", "A", 10, 0, 1), ("send", "C", 10, 2, 0)],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_policy(name):
    policy, capacities, settings, ops = CASES[name]
    h = Harness(policy, capacities, settings)
    for op in ops:
        h.apply(op)
    # Whatever happened, the books balance: each backend's charge is the sum of its residents'.
    for b in h.backends:
        assert b.used == sum(p.charge for p in b.residents)


def test_queue_timeout_carries_its_retry_after():
    h = Harness("program", [1000], {"max_queue_seconds": 10, "retry_after_seconds": 7})
    h.apply(("step", "A", 900, 0, 0, 0))
    h.apply(("hold", "B", 400, 1))
    with pytest.raises(QueueTimeout) as info:
        h.policy.retry(h.table.get("B"), 11)
    assert info.value.status == 503 and info.value.retry_after == 7
    assert h.table.get("B").holding == 0  # the refused request no longer counts as held


@pytest.mark.parametrize(
    ("history", "expected"),
    [([], 5.0), ([1.0, 2.0, 3.0], 4.0), ([2.0, 50.0, 1.0], 4.0), ([20.0, 30.0], 30.0)],
)
def test_the_tool_pin_follows_the_programs_own_tool_times(history, expected):
    settings = {"tool_ttl_initial_seconds": 5, "tool_ttl_factor": 2, "tool_ttl_max_seconds": 30}
    h = Harness("program-ttl", [1000], settings)
    prog = h.prog("A", 0)
    prog.tool_seconds = list(history)
    assert h.policy.pin_seconds(prog) == expected


def test_tool_times_are_measured_from_reply_to_next_request():
    h = Harness("program-ttl", [1000], {"tool_ttl_initial_seconds": 5})
    for op in [("step", "A", 100, 0, 0, 0), ("step", "A", 100, 0, 7, 0), ("step", "A", 100, 0, 10, 0)]:
        h.apply(op)
    prog = h.seen["A"]
    assert prog.tool_seconds == [7, 3]
    assert prog.pinned_until == 10 + 2 * 7  # the median of [3, 7] is 7 (upper), times the factor 2
