"""What every environment shares: running a process with a timeout that kills its whole group,
an output cap that keeps head and tail, and detection of the submit marker.

Local, Docker, Apptainer and sandbox environments differ only in the argv they wrap a command in.
"""

from __future__ import annotations

import contextlib
import os
import platform
import select
import signal
import subprocess
import time
from collections import deque
from typing import Any

from pydantic import Field

from wren.exceptions import ExecutionTimeoutError, Submitted
from wren.validation import StrictModel

SUBMIT_MARKERS = ("COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "MINI_SWE_AGENT_FINAL_OUTPUT")
_CHUNK = 65536
# After the command exits, its background children may keep the pipe open; wait this long for EOF.
_DRAIN_AFTER_EXIT_S = 0.05


class ProcessConfig(StrictModel):
    """Settings shared by every environment that runs commands as processes."""

    environment_class: str = "local"
    """Which environment to use (local, docker, apptainer, sandbox, or a dotted path)."""
    cwd: str = ""
    """Working directory of every command ('' = the current directory)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables set for every command."""
    forward_env: list[str] = Field(default_factory=list)
    """Names of host environment variables passed through to commands."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds a command may run before its whole process group is killed."""
    output_cap: int = Field(default=1_000_000, gt=0)
    """Most bytes of output kept per command; beyond it the head and tail are kept."""
    shell: str = "bash"
    """Shell that runs each command with `-c`."""
    max_processes: int = Field(default=1024, ge=0)
    """Most processes the run's commands may have at once (0 = no limit). Local and sandbox runs
    get a cgroup with this limit where the machine lets Wren make one; docker passes it as
    `--pids-limit`. A fork over the limit fails, and the command's observation says so."""


class CappedBuffer:
    """Keeps the first and last `cap // 2` bytes of a stream and counts what was dropped between."""

    def __init__(self, cap: int):
        self.head_cap = max(cap // 2, 1)
        self.tail_cap = max(cap - self.head_cap, 1)
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.dropped = 0

    def write(self, data: bytes) -> None:
        room = self.head_cap - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail.append(data)
        self.tail_len += len(data)
        while self.tail_len - len(self.tail[0]) >= self.tail_cap:
            self.dropped += len(self.tail[0])
            self.tail_len -= len(self.tail.popleft())
        excess = self.tail_len - self.tail_cap
        if excess > 0:
            self.tail[0] = self.tail[0][excess:]
            self.tail_len -= excess
            self.dropped += excess

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        tail = b"".join(self.tail).decode("utf-8", errors="replace")
        if not self.dropped:
            return head + tail
        return f"{head}\n[... {self.dropped} bytes of output elided ...]\n{tail}"


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_process(
    argv: list[str],
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    output_cap: int = 1_000_000,
    stdin: bytes | None = None,
) -> dict[str, Any]:
    """Run `argv` in a new process group; return output (stdout+stderr, capped) and return code.

    On timeout the whole group is killed and ExecutionTimeoutError carries the partial output.
    """
    proc = subprocess.Popen(
        argv,
        cwd=cwd or None,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if stdin is not None:
        try:
            proc.stdin.write(stdin)  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
    buf = CappedBuffer(output_cap)
    fd = proc.stdout.fileno()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                _kill_group(proc)
                proc.wait()
                raise ExecutionTimeoutError(
                    f"command timed out after {timeout:g} s",
                    output=buf.text(),
                    action=" ".join(argv),
                    timeout=timeout,
                )
            wait = deadline - now
            if exited_at is not None:
                wait = min(wait, exited_at + _DRAIN_AFTER_EXIT_S - now)
                if wait <= 0:
                    break
            ready, _, _ = select.select([fd], [], [], min(wait, 0.5))
            if ready:
                data = os.read(fd, _CHUNK)
                if not data:
                    break
                buf.write(data)
            elif exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
        returncode = proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        raise ExecutionTimeoutError(
            f"command timed out after {timeout:g} s", output=buf.text(), timeout=timeout
        ) from None
    except BaseException:
        # Ctrl-C or any other error while waiting: the command runs in its own session and would
        # never see the SIGINT, so end it here rather than leave it orphaned.
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        proc.stdout.close()  # type: ignore[union-attr]
    return {"output": buf.text(), "returncode": returncode}


def check_finished(output: str) -> None:
    """Raise Submitted when the first line of the output is a submit marker; the rest is the submission."""
    stripped = output.lstrip()
    first, _, rest = stripped.partition("\n")
    if first.strip() in SUBMIT_MARKERS:
        raise Submitted("submitted", submission=rest)


def command_env(config: ProcessConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """The variables a command sees: `base`, then forwarded host variables, then configured ones."""
    env = dict(base or {})
    for name in config.forward_env:
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(config.env)
    return env


class ProcessEnvironment:
    """An environment that runs each command as `wrap(command)` through `run_process`."""

    config_class: type[ProcessConfig] = ProcessConfig
    config: ProcessConfig

    def __init__(self, config: ProcessConfig):
        self.config = config

    def wrap(self, command: str, cwd: str) -> tuple[list[str], str | None, dict[str, str] | None]:
        """Return (argv, host cwd, host env) that run `command` in working directory `cwd`."""
        raise NotImplementedError

    def execute(self, command: str, cwd: str = "", *, timeout: float | None = None) -> dict[str, Any]:
        argv, host_cwd, env = self.wrap(command, cwd or self.config.cwd)
        try:
            result = run_process(
                argv,
                cwd=host_cwd,
                env=env,
                timeout=timeout or self.config.timeout,
                output_cap=self.config.output_cap,
            )
        except ExecutionTimeoutError as e:
            e.action = command
            raise
        check_finished(result["output"])
        return result

    def get_template_vars(self) -> dict[str, Any]:
        uname = platform.uname()
        return self.config.model_dump(exclude={"env"}) | {
            "system": uname.system,
            "release": uname.release,
            "version": uname.version,
            "machine": uname.machine,
            "cwd": self.config.cwd or os.getcwd(),
        }

    def close(self) -> None:
        """Release whatever the environment holds (containers, temp dirs)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
