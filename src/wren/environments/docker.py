"""Runs commands in one long-lived container per environment, through the docker (or podman) CLI.

Each command is a `docker exec` (or, with `persistent: true`, a line sent to one bash kept open
through a single `docker exec -i`). The container is started by a small watcher process in its own
session that removes it when our end of its stdin closes, which happens on `close()`, on Ctrl-C,
and also when this process is killed with SIGKILL: no container outlives its run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import socket
import subprocess
import time
import weakref
from typing import Any

from pydantic import Field

from wren.environments.base import ProcessConfig, ProcessEnvironment, check_finished, run_process
from wren.environments.processes import WATCHER_NAME
from wren.environments.shell import PersistentShell, host_uname
from wren.exceptions import ConfigError, ExecutionTimeoutError, WrenError

# The watcher: start the container, report how that went, then wait for EOF and remove it. The
# removal runs as a child, not by exec: the watcher's name must stay in its argv until the
# container is gone, or a Ctrl-C's sweep of child sessions kills `docker rm` half way.
_WATCHER = r"""
name=$1; exe=$2; shift 2
"$@" 2>&1
rc=$?
echo "__wren_started__ $rc"
read -r _
"$exe" rm -f "$name" >/dev/null 2>&1
"""

# Kills every process in the container whose environment carries the tag, i.e. one command and
# everything it started, which the host cannot reach once `docker exec` is gone.
_KILL_TAGGED = (
    'for p in /proc/[0-9]*; do tr "\\0" "\\n" < "$p/environ" 2>/dev/null | grep -qxF "$0" '
    '&& kill -9 "${p#/proc/}" 2>/dev/null; done; true'
)

_TAG_VAR = "WREN_EXEC_TAG"


class EnvironmentStartError(WrenError):
    """A container (or sandbox) could not be started; the message carries the runtime's own words."""


class DockerEnvironmentConfig(ProcessConfig):
    """Settings of the docker environment."""

    environment_class: str = "docker"
    """Which environment to use."""
    image: str = ""
    """Image to start the container from."""
    executable: str = "docker"
    """Container CLI: docker, or podman (same commands)."""
    run_args: list[str] = Field(default_factory=list)
    """Extra arguments for `docker run`, e.g. ["--network=none", "--memory=4g"]."""
    volumes: list[str] = Field(default_factory=list)
    """Bind mounts as `HOST:CONTAINER[:ro]`."""
    user: str = ""
    """User (name or uid[:gid]) commands run as; '' = the image's."""
    persistent: bool = False
    """Keep one bash open in the container and run each command in a subshell of it (much faster)."""
    start_timeout: float = 600.0
    """Seconds to wait for the container to start (pulling or copying a large image takes a while)."""
    pull: str = "missing"
    """When to pull the image: missing, always or never."""
    container_command: list[str] = Field(default_factory=lambda: ["sleep", "infinity"])
    """The container's main process; it only has to stay alive."""
    name_prefix: str = "wren-"
    """Prefix of container names, so that `docker ps` shows which ones Wren started."""


class DockerEnvironment(ProcessEnvironment):
    config_class = DockerEnvironmentConfig
    config: DockerEnvironmentConfig

    def __init__(self, config: DockerEnvironmentConfig | None = None, **kwargs: Any):
        super().__init__(config or self.config_class(**kwargs))
        if not self.config.image:
            raise ConfigError("config key 'environment.image' is required for the docker environment")
        if self.config.pull not in ("missing", "always", "never"):
            raise ConfigError(
                f"config key 'environment.pull': {self.config.pull!r} is not one of missing, always, never"
            )
        self.container_name = f"{self.config.name_prefix}{secrets.token_hex(6)}"
        self._watcher: subprocess.Popen | None = None
        self._shell: PersistentShell | None = None
        self._exec_tag = ""
        self._start_container()
        # Closing the pipe removes the container, also when the environment is never closed.
        self._finalizer = weakref.finalize(self, _close_watcher, self._watcher)

    # -- container lifecycle ------------------------------------------------------------------
    def _run_argv(self) -> list[str]:
        c = self.config
        argv = [c.executable, "run", "-d", "--rm", "--name", self.container_name, "--pull", c.pull]
        for key, value in run_labels(self.container_name).items():
            argv += ["--label", f"{key}={value}"]
        if c.max_processes > 0:
            argv += ["--pids-limit", str(c.max_processes)]
        for volume in c.volumes:
            argv += ["-v", volume]
        if c.user:
            argv += ["--user", c.user]
        return [*argv, *c.run_args, c.image, *c.container_command]

    def _start_container(self) -> None:
        exe = self.config.executable
        self._watcher = subprocess.Popen(
            ["sh", "-c", _WATCHER, WATCHER_NAME, self.container_name, exe, *self._run_argv()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        lines: list[str] = []
        deadline = time.monotonic() + self.config.start_timeout
        try:
            status = self._read_start_status(lines, deadline)
        except BaseException:
            # Ctrl-C or a start timeout: the watcher removes whatever got created.
            _close_watcher(self._watcher)
            raise
        if status != 0:
            _close_watcher(self._watcher)
            detail = "\n".join(lines[-20:]).strip()
            raise EnvironmentStartError(
                f"could not start a container from image {self.config.image!r} with {exe}: {detail}"
            )

    def _read_start_status(self, lines: list[str], deadline: float) -> int:
        assert self._watcher is not None and self._watcher.stdout is not None
        fd = self._watcher.stdout.fileno()
        data = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise EnvironmentStartError(
                    f"container from image {self.config.image!r} did not start within {self.config.start_timeout:g} s"
                )
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            data += chunk
            *done, data = data.split(b"\n")
            for raw in done:
                line = raw.decode(errors="replace")
                if line.startswith("__wren_started__ "):
                    return int(line.split()[1])
                lines.append(line)
            if not chunk:
                lines.append(data.decode(errors="replace"))
                return -1

    def close(self) -> None:
        """Remove the container and wait until it is gone."""
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        self._finalizer()

    # -- commands -----------------------------------------------------------------------------
    def _exec_prefix(self, *, interactive: bool, tag: str) -> list[str]:
        c = self.config
        argv = [c.executable, "exec"]
        if interactive:
            argv.append("-i")
        if c.user:
            argv += ["--user", c.user]
        for name, value in self._command_env().items():
            argv += ["-e", f"{name}={value}"]
        argv += ["-e", f"{_TAG_VAR}={tag}"]
        return argv

    def _command_env(self) -> dict[str, str]:
        env = {}
        for name in self.config.forward_env:
            if name in os.environ:
                env[name] = os.environ[name]
        env.update(self.config.env)
        return env

    def wrap(self, command: str, cwd: str) -> tuple[list[str], str | None, dict[str, str] | None]:
        argv = self._exec_prefix(interactive=False, tag=self._exec_tag)
        if cwd:
            argv += ["-w", cwd]
        # docker exec carries stdout and stderr as separate streams, which lose their relative order;
        # merged inside the container they keep it.
        return [*argv, self.container_name, self.config.shell, "-c", "exec 2>&1\n" + command], None, None

    def kill_tagged(self, tag: str) -> None:
        """Kill the processes of one command inside the container."""
        run_process(
            [
                self.config.executable,
                "exec",
                self.container_name,
                "sh",
                "-c",
                _KILL_TAGGED,
                f"{_TAG_VAR}={tag}",
            ],
            timeout=30,
            output_cap=10_000,
        )

    def execute(self, command: str, cwd: str = "", *, timeout: float | None = None) -> dict[str, Any]:
        cwd = cwd or self.config.cwd
        if self.config.persistent:
            return self._execute_persistent(command, cwd, timeout or self.config.timeout)
        self._exec_tag = secrets.token_hex(8)
        try:
            return super().execute(command, cwd, timeout=timeout)
        except ExecutionTimeoutError:
            self.kill_tagged(self._exec_tag)
            raise

    def _execute_persistent(self, command: str, cwd: str, timeout: float) -> dict[str, Any]:
        if self._shell is None:
            tag = secrets.token_hex(8)
            argv = self._exec_prefix(interactive=True, tag=tag)
            argv += [self.container_name, self.config.shell, "--noprofile", "--norc"]
            self._shell = PersistentShell(
                argv, output_cap=self.config.output_cap, on_kill=lambda: self.kill_tagged(tag)
            )
        result = self._shell.run(command, cwd, timeout=timeout)
        check_finished(result["output"])
        return result

    def get_template_vars(self) -> dict[str, Any]:
        return (
            self.config.model_dump(exclude={"env"})
            | host_uname()
            | {
                "container_name": self.container_name,
                "cwd": self.config.cwd or "/",
            }
        )


class PodmanEnvironmentConfig(DockerEnvironmentConfig):
    """Settings of the podman environment (the docker environment with the podman CLI)."""

    environment_class: str = "podman"
    """Which environment to use."""
    executable: str = "podman"
    """Container CLI."""


class PodmanEnvironment(DockerEnvironment):
    config_class = PodmanEnvironmentConfig
    config: PodmanEnvironmentConfig


def _close_watcher(watcher: subprocess.Popen | None, timeout: float = 120.0) -> None:
    """Close the watcher's stdin so it removes the container, and wait until it has."""
    if watcher is None or watcher.returncode is not None:
        return
    with contextlib.suppress(OSError):
        watcher.stdin.close()  # type: ignore[union-attr]
    try:
        watcher.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        watcher.kill()
        watcher.wait()
    if watcher.stdout is not None:
        watcher.stdout.close()


def docker_available(executable: str = "docker") -> bool:
    """True when the CLI is installed and answers with a reachable engine."""
    try:
        return subprocess.run([executable, "info"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_time(pid: int) -> str:
    """When process `pid` started (clock ticks since boot), so a reused pid is not taken for it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def run_labels(run: str) -> dict[str, str]:
    """Labels of a container Wren starts: which run, and which process on which machine owns it."""
    pid = os.getpid()
    return {
        "wren": "1",
        "wren.run": run,
        "wren.pid": str(pid),
        "wren.pid_start": _start_time(pid),
        "wren.host": socket.gethostname(),
    }


def _owner_alive(labels: dict[str, str]) -> bool:
    try:
        pid = int(labels.get("wren.pid", ""))
    except ValueError:
        return True  # not ours to judge
    started = labels.get("wren.pid_start", "")
    alive = os.path.exists(f"/proc/{pid}")
    return alive and (not started or _start_time(pid) == started)


def orphan_containers(executable: str = "docker") -> list[str]:
    """Containers Wren started on this machine whose process is gone (killed before it could remove them)."""
    out = subprocess.run(
        [executable, "ps", "-a", "--filter", "label=wren=1", "--format", "{{.Names}}\t{{.Labels}}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if out.returncode != 0:
        raise WrenError(f"{executable} ps failed: {out.stderr.strip()[:500]}")
    host = socket.gethostname()
    orphans = []
    for line in out.stdout.splitlines():
        name, _, raw = line.partition("\t")
        labels = dict(item.partition("=")[::2] for item in raw.split(",") if item)
        # Another machine's containers (a shared engine) are judged there, not here.
        if labels.get("wren.host", host) == host and not _owner_alive(labels):
            orphans.append(name)
    return orphans


def prune_containers(executable: str = "docker") -> list[str]:
    """Remove the orphaned containers (see orphan_containers); return their names."""
    orphans = orphan_containers(executable)
    if orphans:
        subprocess.run([executable, "rm", "-f", *orphans], capture_output=True, timeout=300)
    return orphans
