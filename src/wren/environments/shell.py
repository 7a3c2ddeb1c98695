"""A shell kept open across commands, for environments where starting a process per command is slow.

Each command runs in a subshell `( cd CWD; eval COMMAND )` of one long-lived bash, so its working
directory, variables, functions and options die with it: the next command starts from the same
state as if it had its own process. The end of a command is a random marker line that bash prints
with the exit status. Timeouts, the output cap and the submit marker use base.py's pieces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from wren.environments.base import CappedBuffer
from wren.exceptions import ExecutionTimeoutError

_CHUNK = 65536

# Defined once when the shell starts. stdin of the command is /dev/null so that it cannot eat the
# protocol; stderr joins stdout in order.
_PRELUDE = r"""
__wren_run() {
  ( if [ -n "$2" ]; then cd -- "$2" || exit 1; fi
    eval "$3"
  ) </dev/null 2>&1
  printf '%s%d\n' "$1" "$?"
}
"""


class PersistentShell:
    """One bash process started with `argv`, fed commands on stdin, answering each with output and status."""

    def __init__(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        output_cap: int = 1_000_000,
        on_kill: Callable[[], None] | None = None,
    ):
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.output_cap = output_cap
        self.on_kill = on_kill
        self.proc: subprocess.Popen | None = None
        self._token = secrets.token_hex(8)
        self._count = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._send(_PRELUDE)

    def _send(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def run(self, command: str, cwd: str = "", *, timeout: float = 60.0) -> dict[str, Any]:
        """Run `command` in directory `cwd` (the shell's own when empty); return output and return code."""
        if not self.alive:
            self.start()
        self._count += 1
        marker = f"__WREN_DONE_{self._token}_{self._count}__".encode()
        line = f"__wren_run {marker.decode()} {shlex.quote(cwd)} {shlex.quote(command)}\n"
        try:
            self._send(line)
        except BrokenPipeError:
            # The shell died since the last command (killed from outside); one fresh start is fair.
            self.kill(inside=False)
            self.start()
            self._send(line)
        return self._read_until(marker, command, timeout)

    def _read_until(self, marker: bytes, command: str, timeout: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = CappedBuffer(self.output_cap)
        # Bytes that may hold the start of the marker stay here until we know they are output.
        pending = b""
        keep = len(marker) + 24
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                buf.write(pending)
                self.kill()
                raise ExecutionTimeoutError(
                    f"command timed out after {timeout:g} s",
                    output=buf.text(),
                    action=command,
                    timeout=timeout,
                )
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if not ready:
                continue
            data = os.read(fd, _CHUNK)
            if not data:
                # The command killed the shell itself (or its container went away): report it like a
                # command that died, and start a new shell for the next command.
                buf.write(pending)
                buf.write(b"\n[the shell running this command exited; the next command gets a new one]\n")
                self.kill(inside=False)
                return {"output": buf.text(), "returncode": -1}
            pending += data
            at = pending.find(marker)
            if at >= 0 and pending.find(b"\n", at) >= 0:
                buf.write(pending[:at])
                status = pending[at + len(marker) : pending.index(b"\n", at)]
                return {"output": buf.text(), "returncode": int(status or b"-1")}
            if at < 0 and len(pending) > keep:
                buf.write(pending[:-keep])
                pending = pending[-keep:]

    def kill(self, *, inside: bool = True) -> None:
        """Kill the shell and everything it started; the next `run` starts a new one.

        `inside` also calls `on_kill`, which reaches processes the host cannot signal (in a container).
        """
        if inside and self.on_kill is not None:
            self.on_kill()
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.proc = None

    def close(self) -> None:
        """End the shell politely (EOF on its stdin), killing it if it does not exit within a second."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=1)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill(inside=False)


def host_uname() -> dict[str, str]:
    """system, release, version and machine of the kernel, which containers and sandboxes share with the host."""
    import platform

    uname = platform.uname()
    return {
        "system": uname.system,
        "release": uname.release,
        "version": uname.version,
        "machine": uname.machine,
    }
