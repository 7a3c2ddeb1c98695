"""What a running embedded server is: its state file, the runs holding it, and who holds its port.

Each server Wren starts has `serve-PORT.json` in the state directory ($WREN_HOME, else ~/.cache/wren):
its pid, port, model, adapters, owner uid and idle time. A run that uses the server leaves its pid
in `serve-PORT.holders/`; the server counts as busy while one of them is alive (see wren.serve.idle).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


def state_dir() -> Path:
    path = Path(os.environ.get("WREN_HOME") or Path.home() / ".cache" / "wren")
    path.mkdir(parents=True, exist_ok=True)
    return path


class ServerState(BaseModel):
    """One embedded server, as written in `serve-PORT.json`."""

    model_config = ConfigDict(extra="forbid")

    pid: int
    port: int
    host: str = "127.0.0.1"
    model: str
    """The model file (or name, for vLLM) it serves."""
    lora: list[str] = Field(default_factory=list)
    """Adapter files applied over the model."""
    engine: str = "llama.cpp"
    slots: int = 1
    owner_uid: int
    idle_timeout: float = 0.0
    """Seconds without requests or holding runs after which it stops itself (0 = never)."""
    started: float = Field(default_factory=time.time)

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}/v1"


def state_path(port: int) -> Path:
    return state_dir() / f"serve-{port}.json"


def holders_dir(port: int) -> Path:
    return state_dir() / f"serve-{port}.holders"


def log_path(port: int) -> Path:
    return state_dir() / f"serve-{port}.log"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not serving anyone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] != "Z"
    return True


def write_state(state: ServerState) -> None:
    path = state_path(state.port)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    os.replace(tmp, path)


def read_state(port: int) -> ServerState | None:
    """The state of the server on `port` if its process is alive (a stale file is removed)."""
    path = state_path(port)
    try:
        state = ServerState.model_validate(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
    if not pid_alive(state.pid):
        path.unlink(missing_ok=True)
        return None
    return state


def all_states() -> list[ServerState]:
    states = []
    for path in sorted(state_dir().glob("serve-*.json")):
        port = path.stem.removeprefix("serve-")
        if port.isdigit() and (state := read_state(int(port))) is not None:
            states.append(state)
    return states


def remove_state(port: int, pid: int) -> None:
    """Remove `port`'s state file if it still names `pid` (a newer server may have replaced it)."""
    path = state_path(port)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink(missing_ok=True)


def add_holder(port: int, pid: int | None = None) -> None:
    """Mark process `pid` (default: this one) as using the server on `port`."""
    directory = holders_dir(port)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / str(pid or os.getpid())).touch()


def live_holders(port: int) -> list[int]:
    """The pids holding the server that are still alive (the files of dead ones are removed)."""
    alive = []
    directory = holders_dir(port)
    for path in directory.glob("*") if directory.is_dir() else []:
        if path.name.isdigit() and pid_alive(int(path.name)):
            alive.append(int(path.name))
        else:
            path.unlink(missing_ok=True)
    return sorted(alive)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        # As servers bind: connections of an ended server in TIME_WAIT do not make the port busy.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def listener_uid(port: int) -> int | None:
    """The uid owning the socket listening on TCP `port` (Linux /proc/net; None if unknown)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 7 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return int(fields[7])
    return None
