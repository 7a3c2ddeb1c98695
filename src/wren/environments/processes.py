"""Ending every process an environment's commands started on this machine, however they detached.

Killing a command's process group misses what left it (`setsid`, a daemon's double fork, `nohup`
in a new session). A run marker reaches those: each command carries it in its environment, every
descendant inherits it whatever session or parent it ends up with, and /proc shows it.

Wren is deliberately not a child subreaper: orphans re-parented to Wren that exit on their own would
stay zombies (reaping them blindly would steal exit statuses from other threads' `Popen.wait`), and
the marker finds them without it. A process that clears its whole environment and detaches escapes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable

MARKER_VAR = "WREN_RUN_MARKER"
"""Variable set in every command's environment: `<environment token>:<command number>`."""
GUARD_NAME = "wren-guard"
"""A token in the argv of the guard (see guard.py), which ends a killed Wren process's runs."""
WATCHER_NAME = "wren-container-watcher"
"""argv[0] of the process that removes a container when Wren exits; it must outlive the kill."""


def _pids() -> list[int]:
    try:
        return [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, session id) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[3])


def _environ_has(pid: int, needle: bytes, *, prefix: bool) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            entries = f.read().split(b"\0")
    except OSError:
        return False
    return any(e.startswith(needle) if prefix else e == needle for e in entries)


def marked_pids(marker: str, *, prefix: bool = False) -> list[int]:
    """Live processes whose environment holds `MARKER_VAR=marker` (or a value starting with it)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    me = os.getpid()
    out = []
    for pid in _pids():
        # The environment first: it rules out almost every process, so most cost one read.
        if pid != me and _environ_has(pid, needle, prefix=prefix):
            stat = _stat(pid)
            if stat is not None and stat[0] not in "ZX":
                out.append(pid)
    return out


def freeze_and_kill(find: Callable[[], Iterable[int]], *, wait_s: float = 10.0) -> int:
    """Stop every process `find` returns, again until a scan finds no new one, then kill them all.

    A fork loop outruns a sweep that kills as it finds: each round's children are born while the
    round kills their parents. A stopped process cannot fork, so once a scan finds nothing that is
    not already stopped the tree is complete, and one SIGKILL each ends it. Later scans catch
    anything that was mid-fork. Returns how many processes were signalled.
    """
    seen: set[int] = set()
    deadline = time.monotonic() + wait_s
    while True:
        new = set(find()) - seen
        if not new:
            break
        for pid in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGSTOP)
        seen |= new
        if time.monotonic() > deadline:
            break
    pids = seen
    # The deadline bounds only the repeats: on a machine with many processes one scan takes seconds.
    # A process sent SIGKILL that has not died yet is found again and simply sent it again.
    while pids:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.002)
        pids = set(find())
        seen |= pids
    return len(seen)


def kill_marked(marker: str, *, prefix: bool = False, wait_s: float = 10.0) -> int:
    """End every process carrying `marker` (frozen first, then killed); return how many there were."""
    return freeze_and_kill(lambda: marked_pids(marker, prefix=prefix), wait_s=wait_s)


def _is_spared(pid: int) -> bool:
    """A container watcher or this process's guard: each must outlive the kill to do its job."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return WATCHER_NAME.encode() in argv or GUARD_NAME.encode() in argv


def kill_child_sessions() -> None:
    """Kill the process groups of this process's children that lead their own session.

    Commands run by environments start in new sessions (so that a timeout can kill all they
    started); after Ctrl-C, this ends those still running. Container watchers are spared: they
    remove their container when Wren exits, and killing one would leak it.
    """
    me = os.getpid()
    for pid in _pids():
        stat = _stat(pid)
        if stat is None or stat[1] != me or stat[2] != pid or _is_spared(pid):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def end_workers(prefix: str, wait_s: float = 60.0) -> None:
    """Kill the commands of this process's threads named `prefix...` until those threads have ended.

    Each worker closes its environment as it unwinds; a worker that starts another command meanwhile
    sees it killed by the next round.
    """
    import threading

    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        workers = [t for t in threading.enumerate() if t.name.startswith(prefix)]
        if not workers:
            return
        kill_child_sessions()
        workers[0].join(timeout=0.2)
