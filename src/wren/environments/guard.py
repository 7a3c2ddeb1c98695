"""A small process that ends a Wren process's runs when that process dies without doing it itself.

SIGKILL (an out-of-memory kill, `kill -9` of a batch or of one of its Ray workers) runs no cleanup
code. The guard is started once per Wren process, in a session of its own, holding the read end of
a pipe whose only write end is that process's. When the pipe reaches end of file the process is
gone, however it went; the guard then ends every command it left (by cgroup and by run marker), and
appends an exit record to the trajectory of each run that had not finished.

`python -m wren.environments.guard PID` runs it; it reads JSON lines on stdin:
`{"run": PATH, "release": {"url", "body", "headers"}}` when a run starts (PATH its trajectory.jsonl,
`release` the request that releases its program at the gateway, if any) and `{"done": PATH}` when it ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from wren.environments.processes import GUARD_NAME
from wren.trajectory.schema import KILLED_STATUS

_lock = threading.Lock()
_guard: tuple[int, subprocess.Popen] | None = None


def ensure_guard() -> subprocess.Popen | None:
    """This process's guard, started on first use (and again in a forked child); None if it cannot start."""
    global _guard
    with _lock:
        if _guard is not None and _guard[0] == os.getpid() and _guard[1].poll() is None:
            return _guard[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("WREN_RUN_MARKER")}
        # The guard must import this very package, also when it is run from a source tree.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "wren.environments.guard", str(os.getpid()), GUARD_NAME],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError:
            return None
        _guard = (os.getpid(), proc)
        return proc


def _tell(line: str) -> None:
    proc = ensure_guard()
    if proc is None or proc.stdin is None:
        return
    with _lock, contextlib.suppress(OSError, ValueError):
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()


def watch_run(path: str | Path, release: dict[str, Any] | None = None) -> None:
    """Have the guard end this run's trajectory, and send `release` (an HTTP POST: url, body,
    headers), if the process dies before the run ends."""
    _tell(json.dumps({"run": str(Path(path).resolve()), "release": release}))


def run_done(path: str | Path) -> None:
    _tell(json.dumps({"done": str(Path(path).resolve())}))


def _post(release: dict[str, Any]) -> None:
    import urllib.request

    with contextlib.suppress(Exception):  # a gateway that is gone has nothing to release
        request = urllib.request.Request(
            release["url"],
            data=json.dumps(release["body"]).encode(),
            headers=release["headers"],
            method="POST",
        )
        urllib.request.urlopen(request, timeout=2.0).close()


def finish_trajectory(path: Path, reason: str) -> None:
    """Append an exit record with status Killed to a trajectory.jsonl whose run never ended."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    keep = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
    lines = keep.splitlines()
    with contextlib.suppress(ValueError, AttributeError):
        if lines and any(m.get("role") == "exit" for m in json.loads(lines[-1]).get("messages") or []):
            return  # the run wrote its own end just before the kill
    extra = {"exit_status": KILLED_STATUS, "submission": "", "reason": reason}
    record = {"messages": [{"role": "exit", "content": reason, "extra": extra}], "timestamp": time.time()}
    with contextlib.suppress(OSError), open(path, "r+b") as f:
        f.truncate(len(keep))  # a line cut short by the kill
        f.seek(len(keep))
        f.write((json.dumps(record) + "\n").encode())


def sweep(pid: int) -> None:
    """End everything the runs of Wren process `pid` left: its cgroups' members and its marked processes."""
    from wren.environments.cgroups import groups_of_process, kill_group, remove_group
    from wren.environments.processes import kill_marked

    for v2, v1 in groups_of_process(pid):
        kill_group(v2, v1)
    kill_marked(f"{pid}-", prefix=True)
    for v2, v1 in groups_of_process(pid):
        for group in (v2, v1):
            if group is not None:
                remove_group(group)


def main(argv: list[str]) -> int:
    pid = int(argv[0])
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # the guard outlives what ends its Wren process
    open_runs: dict[str, dict[str, Any] | None] = {}
    for raw in sys.stdin.buffer:
        try:
            message = json.loads(raw)
        except ValueError:
            continue  # a line cut short as the process died
        if "run" in message:
            open_runs[message["run"]] = message.get("release")
        elif "done" in message:
            open_runs.pop(message["done"], None)
    sweep(pid)
    for path, release in open_runs.items():
        finish_trajectory(Path(path), f"the Wren process running this run (pid {pid}) was killed")
        if release:
            _post(release)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
