"""A control group per run, where this machine lets Wren make one: a process limit the run's
commands cannot exceed, and an end that no fork loop outruns.

Two kinds are used when writable, together when both are there:
- cgroup v2 (the unified hierarchy, at /sys/fs/cgroup or /sys/fs/cgroup/unified): `cgroup.kill`
  ends every member at once in the kernel, and `pids.max` limits them when the pids controller is
  on this hierarchy;
- the cgroup v1 pids controller: `pids.max` limits the members; they are ended by freezing and
  killing them (see processes.freeze_and_kill), which a stopped process cannot escape by forking.

Where neither is writable (an unprivileged user under systemd, most containers) a run has no cgroup
and is ended by its marker alone. Commands join the run's groups through a one-line shell that
writes its own pid to `cgroup.procs` and then execs the command, so everything they start is a member.
Group names start with `wren-<pid>-`, so that the guard of a process that died finds its groups.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from wren.environments.processes import freeze_and_kill

PREFIX = "wren-"
# The join: write our pid into each cgroup.procs named before `--`, then become the command.
_JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 126; shift; done; shift; exec "$@"'


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(filesystem type, mount point, options) of each cgroup mount."""
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                    out.append((parts[2], parts[1], set(parts[3].split(","))))
    except OSError:
        pass
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy: '' for v2, each controller's name for v1."""
    out: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for name in controllers.split(",") if controllers else [""]:
                    out[name] = path
    except (OSError, ValueError):
        pass
    return out


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK) and os.access(path / "cgroup.procs", os.W_OK)


def parents() -> tuple[Path | None, Path | None]:
    """(v2 parent, v1 pids parent): the writable groups of this process that runs' groups go under."""
    own = _own_paths()
    v2 = v1 = None
    for fstype, mount, options in _mounts():
        if fstype == "cgroup2" and v2 is None and "" in own:
            path = Path(mount + own[""].rstrip("/"))
            if _writable_dir(path):
                v2 = path
        elif fstype == "cgroup" and "pids" in options and v1 is None and "pids" in own:
            path = Path(mount + own["pids"].rstrip("/"))
            if _writable_dir(path):
                v1 = path
    return v2, v1


def _v2_has_pids(parent: Path) -> bool:
    """Whether runs' v2 groups under `parent` can have `pids.max` (enabling the controller if needed)."""
    try:
        if "pids" in (parent / "cgroup.subtree_control").read_text().split():
            return True
        if "pids" not in (parent / "cgroup.controllers").read_text().split():
            return False
        (parent / "cgroup.subtree_control").write_text("+pids")
        return True
    except OSError:  # a non-root group with processes of its own cannot enable controllers
        return False


class RunCgroup:
    """The control groups of one run: made on creation, joined by each command, ended by `kill`."""

    def __init__(self, name: str, max_processes: int = 0):
        self.name = PREFIX + name
        self.max_processes = max_processes
        self.v2: Path | None = None
        self.v1: Path | None = None
        self.limit_file: Path | None = None
        v2_parent, v1_parent = parents()
        v2_pids = v2_parent is not None and max_processes > 0 and _v2_has_pids(v2_parent)
        if v2_parent is not None:
            self.v2 = self._make(v2_parent / self.name, max_processes if v2_pids else 0)
        if v1_parent is not None and max_processes > 0 and not v2_pids:
            self.v1 = self._make(v1_parent / self.name, max_processes)
        if max_processes > 0:
            if v2_pids and self.v2 is not None:
                self.limit_file = self.v2
            elif self.v1 is not None:
                self.limit_file = self.v1

    @staticmethod
    def _make(path: Path, limit: int) -> Path | None:
        try:
            path.mkdir(exist_ok=True)
            if limit > 0:
                (path / "pids.max").write_text(str(limit))
            return path
        except OSError:
            with contextlib.suppress(OSError):
                path.rmdir()
            return None

    @property
    def dirs(self) -> list[Path]:
        return [d for d in (self.v2, self.v1) if d is not None]

    @property
    def limited(self) -> bool:
        """Whether the run's process limit is enforced here."""
        return self.limit_file is not None

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` made to join the run's groups first (unchanged when there are none)."""
        if not self.dirs:
            return argv
        procs = [str(d / "cgroup.procs") for d in self.dirs]
        return ["sh", "-c", _JOIN, "wren-cgroup-join", *procs, "--", *argv]

    def fork_failures(self) -> int:
        """How many forks the process limit has refused so far."""
        if self.limit_file is None:
            return 0
        return read_max_events(self.limit_file)

    def members(self) -> set[int]:
        pids: set[int] = set()
        for d in self.dirs:
            pids |= read_procs(d)
        return pids

    def kill(self, wait_s: float = 10.0) -> None:
        """End every member, whatever it forks meanwhile."""
        kill_group(self.v2, self.v1, wait_s=wait_s)

    def close(self) -> None:
        """End the members and remove the groups."""
        self.kill()
        for d in self.dirs:
            remove_group(d)
        self.v2 = self.v1 = self.limit_file = None


def read_procs(group: Path) -> set[int]:
    try:
        return {int(p) for p in (group / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def read_max_events(group: Path) -> int:
    """The `max` count of a group's pids.events: forks refused because of pids.max."""
    try:
        for line in (group / "pids.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def kill_group(v2: Path | None, v1: Path | None, *, wait_s: float = 10.0) -> None:
    """End every process in a v2 group (cgroup.kill) and in a v1 group (frozen, then killed)."""
    deadline = time.monotonic() + wait_s
    if v2 is not None:
        with contextlib.suppress(OSError):
            (v2 / "cgroup.kill").write_text("1")
        # cgroup.kill also ends a member forked while it runs; wait until the kernel has reaped them.
        while read_procs(v2) and time.monotonic() < deadline:
            time.sleep(0.005)
        if read_procs(v2):  # a kernel without cgroup.kill (before 5.14)
            freeze_and_kill(lambda: read_procs(v2), wait_s=max(deadline - time.monotonic(), 1.0))
    if v1 is not None:
        freeze_and_kill(lambda: read_procs(v1), wait_s=max(deadline - time.monotonic(), 1.0))


def remove_group(group: Path, wait_s: float = 5.0) -> None:
    """Remove an emptied group; a member still exiting keeps it busy for a moment."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def groups_of_process(pid: int) -> list[tuple[Path | None, Path | None]]:
    """The run groups a Wren process `pid` made (under this process's own parents): (v2, v1) pairs."""
    v2_parent, v1_parent = parents()
    names: set[str] = set()
    for parent in (v2_parent, v1_parent):
        if parent is not None:
            names |= {p.name for p in parent.glob(f"{PREFIX}{pid}-*") if p.is_dir()}
    out = []
    for name in sorted(names):
        v2 = v2_parent / name if v2_parent is not None and (v2_parent / name).is_dir() else None
        v1 = v1_parent / name if v1_parent is not None and (v1_parent / name).is_dir() else None
        out.append((v2, v1))
    return out
