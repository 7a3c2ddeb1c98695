"""The idle stop: the server process ends itself once nobody has used it for a while.

It lives in the server process, not in the run that started it, because the server outlives that
run (the next run reuses it). The server counts as busy while a run holding it is alive (a step's
command may take minutes between two requests) and whenever its request counters move.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

import httpx

from wren.serve.state import live_holders

# Counters that move with every completion request (llama.cpp's /metrics), and the gauge of requests
# in flight; /health and /models requests move none of them.
COUNTERS = (
    "llamacpp:prompt_tokens_total",
    "llamacpp:prompt_tokens_cached_total",
    "llamacpp:tokens_predicted_total",
)
IN_FLIGHT = ("llamacpp:requests_processing", "llamacpp:requests_deferred")


class Activity(NamedTuple):
    counters: tuple[float, ...]
    in_flight: bool


def read_activity(root: str, timeout: float = 5.0) -> Activity | None:
    """The activity metrics of the llama.cpp server at `root` (None when it does not answer)."""
    try:
        text = httpx.get(root.rstrip("/") + "/metrics", timeout=timeout).text
    except httpx.HTTPError:
        return None
    values = dict.fromkeys(COUNTERS + IN_FLIGHT, 0.0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return Activity(tuple(values[n] for n in COUNTERS), any(values[n] for n in IN_FLIGHT))


class IdleWatch:
    """Calls `on_idle` once `idle_timeout` seconds pass with no activity and no live holder."""

    def __init__(
        self,
        idle_timeout: float,
        *,
        activity: Callable[[], Activity | None],
        holders: Callable[[], list[int]],
        on_idle: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.idle_timeout = idle_timeout
        self.activity = activity
        self.holders = holders
        self.on_idle = on_idle
        self.clock = clock
        self.last_active = clock()
        self._last_seen: tuple[float, ...] | None = None

    def poll(self) -> bool:
        """Look once; True when the idle time has run out (and `on_idle` was called)."""
        seen = self.activity()
        counters = seen.counters if seen is not None else self._last_seen
        busy = (
            bool(self.holders())
            or (seen is not None and seen.in_flight)
            or (counters is not None and counters != self._last_seen)
        )
        self._last_seen = counters
        now = self.clock()
        if busy:
            self.last_active = now
        elif now - self.last_active >= self.idle_timeout:
            self.on_idle()
            return True
        return False

    def run(self, stop: threading.Event) -> None:
        """Poll until idle or until `stop` is set."""
        interval = max(0.2, min(5.0, self.idle_timeout / 5))
        while not stop.wait(interval):
            if self.poll():
                return


def start_watch(idle_timeout: float, root: str, port: int, stop: threading.Event) -> threading.Thread | None:
    """A daemon thread that sets `stop` after `idle_timeout` idle seconds (None when 0 = never)."""
    if idle_timeout <= 0:
        return None
    watch = IdleWatch(
        idle_timeout,
        activity=lambda: read_activity(root),
        holders=lambda: live_holders(port),
        on_idle=stop.set,
    )
    first = watch.activity()
    watch._last_seen = first.counters if first is not None else None
    thread = threading.Thread(target=watch.run, args=(stop,), name="wren-idle-stop", daemon=True)
    thread.start()
    return thread
