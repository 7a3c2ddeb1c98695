"""What local and sandboxed runs share: every process a run starts is marked and, where the machine
allows, in the run's own cgroup with a process limit; all of it ends when the run does.

A run ends its processes on `close()`, when the environment is garbage-collected, when Wren exits,
and, through the guard (guard.py), when the Wren process is killed outright.
"""

from __future__ import annotations

import itertools
import os
import secrets
import weakref
from typing import Any

from wren.environments.base import ProcessEnvironment
from wren.environments.cgroups import RunCgroup
from wren.environments.guard import ensure_guard
from wren.environments.processes import kill_marked
from wren.exceptions import ExecutionTimeoutError


def _end_run(marker: str, cgroup: RunCgroup) -> None:
    cgroup.close()
    # What left the cgroup (nothing can, short of root) or ran where there is none.
    kill_marked(f"{marker}:", prefix=True)


def limit_note(limit: int, failures: int) -> str:
    """What the model reads after a command whose forks the process limit refused."""
    times = "once" if failures == 1 else f"{failures} times"
    return (
        f"\n[process limit {limit} reached: fork failed {times} (Resource temporarily unavailable). "
        "End background processes you no longer need; a command that forks without end is stopped "
        "by its timeout.]"
    )


class ContainedEnvironment(ProcessEnvironment):
    """A ProcessEnvironment whose commands carry the run's marker and join the run's cgroup."""

    def __init__(self, config: Any):
        super().__init__(config)
        # The pid comes first: the guard of a Wren process that died finds its runs by it.
        self._marker = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._commands = itertools.count(1)
        self.cgroup = RunCgroup(self._marker, self.config.max_processes)
        ensure_guard()
        self._finalizer = weakref.finalize(self, _end_run, self._marker, self.cgroup)

    @property
    def marker(self) -> str:
        """The run's marker: every process of every command carries `WREN_RUN_MARKER=<marker>:<n>`."""
        return self._marker

    def next_marker(self) -> str:
        return f"{self._marker}:{next(self._commands)}"

    def run_command(self, command: str, cwd: str, timeout: float | None, marker: str) -> dict[str, Any]:
        """Run one command carrying `marker`; the subclass decides how."""
        raise NotImplementedError

    def execute(self, command: str, cwd: str = "", *, timeout: float | None = None) -> dict[str, Any]:
        marker = self.next_marker()
        refused = self.cgroup.fork_failures()
        try:
            result = self.run_command(command, cwd, timeout, marker)
        except ExecutionTimeoutError as e:
            # The process group is dead; what left it (setsid, nohup in a new session) is not.
            kill_marked(marker)
            e.output += self._note(refused)
            raise
        result["output"] += self._note(refused)
        return result

    def _note(self, refused_before: int) -> str:
        refused = self.cgroup.fork_failures() - refused_before
        return limit_note(self.config.max_processes, refused) if refused > 0 else ""

    def close(self) -> None:
        """End every process the commands started that still runs, however it detached."""
        self._finalizer()
