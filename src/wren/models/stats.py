"""Cost and calls summed over every model in the process, for `net_cost_limit`."""

from __future__ import annotations

import threading


class GlobalModelStats:
    """Thread-safe running totals shared by all runs in one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.cost = 0.0
        self.n_calls = 0

    def add(self, cost: float) -> None:
        with self._lock:
            self.cost += cost
            self.n_calls += 1

    def reset(self) -> None:
        with self._lock:
            self.cost = 0.0
            self.n_calls = 0


GLOBAL_STATS = GlobalModelStats()
