"""SIGTERM and SIGHUP as exceptions, so that a run they stop cleans up as after Ctrl-C.

Python's default for both is to die at once, skipping every `finally`: the commands a run started,
its containers and its program at the gateway would outlive it. Raised in the main thread instead,
they unwind the run like KeyboardInterrupt does.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

from wren.exceptions import HungUp, RunStopped, Terminated

STOP_SIGNALS: dict[int, type[RunStopped]] = {signal.SIGTERM: Terminated, signal.SIGHUP: HungUp}


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within this block, SIGTERM raises Terminated and SIGHUP raises HungUp in the main thread.

    Only the first signal raises: a second one arriving while the run cleans up is ignored, so the
    cleanup is not cut short. A signal that was ignored when the block began (`nohup`) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if fired:
            return
        fired.append(signum)
        raise STOP_SIGNALS[signum](f"stopped by {signal.Signals(signum).name}")

    previous = {}
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def exit_code(stopped: RunStopped) -> int:
    """The status a shell reports for a process the signal killed (128 + its number)."""
    return 128 + stopped.signum
