"""Progress of a batch run: an overall bar with cost and ETA, and one line per running worker.

On a terminal it is a Rich live display; elsewhere (CI, logs) one plain line per finished instance.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from wren.exceptions import HungUp, Terminated, TerminatingException


@dataclass
class WorkerState:
    instance_id: str
    started: float = field(default_factory=time.monotonic)
    step: int = 0
    cost: float = 0.0
    phase: str = "setting up"


class BatchProgress:
    """Thread-safe state of a batch run, and its display."""

    def __init__(self, total: int, *, live: bool | None = None, console: Any = None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.total = total
        self.done = 0
        self.cost = 0.0
        self.statuses: Counter[str] = Counter()
        self.running: dict[str, WorkerState] = {}
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.live_enabled = self.console.is_terminal if live is None else live
        self._live: Any = None

    # -- events (called from worker threads) ---------------------------------------------------
    def instance_started(self, instance_id: str) -> None:
        with self._lock:
            self.running[instance_id] = WorkerState(instance_id)
        self._refresh()

    def instance_step(self, instance_id: str, step: int, cost: float) -> None:
        with self._lock:
            state = self.running.get(instance_id)
            if state is not None:
                state.step, state.cost, state.phase = step, cost, "running"
        self._refresh()

    def instance_finished(self, instance_id: str, exit_status: str, cost: float) -> None:
        with self._lock:
            self.running.pop(instance_id, None)
            self.done += 1
            self.cost += cost
            self.statuses[exit_status] += 1
            line = f"[{self.done}/{self.total}] {instance_id}: {exit_status} (cost ${cost:.4f})"
        if self._live is None:
            from rich.text import Text

            self.console.print(Text(line), highlight=False)
        self._refresh()

    # -- display --------------------------------------------------------------------------------
    def eta_seconds(self) -> float | None:
        if not self.done:
            return None
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        return (self.total - self.done) / rate

    def render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        with self._lock:
            eta = self.eta_seconds()
            eta_text = "--:--" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
            header = Text(
                f"{self.done}/{self.total} instances  cost ${self.cost:.4f}  ETA {eta_text}  "
                + "  ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
            )
            bar = ProgressBar(total=max(self.total, 1), completed=self.done, width=60)
            table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
            for column in ("instance", "phase", "step", "cost", "time"):
                table.add_column(column)
            now = time.monotonic()
            for state in sorted(self.running.values(), key=lambda s: s.started):
                table.add_row(
                    Text(state.instance_id),
                    Text(state.phase),
                    str(state.step),
                    f"${state.cost:.4f}",
                    f"{now - state.started:.0f}s",
                )
        return Group(bar, header, table)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self.render())

    def __enter__(self) -> BatchProgress:
        if self.live_enabled:
            from rich.live import Live

            self._live = Live(self.render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self.render())
            self._live.__exit__(None, None, None)
            self._live = None


class BatchInterrupted(TerminatingException):
    """The batch was stopped (Ctrl-C, SIGTERM, SIGHUP) while this instance ran; its result is not
    recorded, so the next run of the batch redoes it. `exit_status` says what stopped it."""

    exit_status = "Interrupted"

    def __init__(self, message: str = "", *, status: str = ""):
        super().__init__(message)
        self.exit_status = status or type(self).exit_status


STOPPED_STATUSES = frozenset({BatchInterrupted.exit_status, Terminated.exit_status, HungUp.exit_status})
"""Exit statuses of instances a stopped batch cut short: not results, redone by the next run."""


class StopEvent(threading.Event):
    """Set when the batch stops; `reason` is the exit status its unfinished instances get."""

    reason = BatchInterrupted.exit_status

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


class ProgressHook:
    """An agent hook that reports each step of one instance to a BatchProgress."""

    def __init__(self, progress: BatchProgress | None, instance_id: str, stop: threading.Event | None = None):
        self.progress = progress
        self.instance_id = instance_id
        self.stop = stop

    def on_step(self, agent: Any, record: dict) -> None:
        if self.progress is not None:
            self.progress.instance_step(self.instance_id, agent.n_steps, agent.cost)

    def before_step(self, agent: Any) -> None:
        # Raised inside the agent's loop, so the trajectory records why the run ended.
        if self.stop is not None and self.stop.is_set():
            raise BatchInterrupted(
                f"batch stopped during {self.instance_id}", status=getattr(self.stop, "reason", "")
            )


def finished_line(summary: dict[str, Any]) -> str:
    """The line that ends a batch (rich markup): what ran, the exit statuses, where the predictions are."""
    from rich.markup import escape

    from wren.bench.rundir import RunDir

    return (
        f"{summary['ran']} run, {summary['skipped_existing']} already done; exit statuses: "
        + ", ".join(f"{escape(k)} {v}" for k, v in summary["exit_statuses"].items())
        + f"; predictions in {escape(str(RunDir(summary['output_dir']).preds))}"
    )
