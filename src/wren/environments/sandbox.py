"""Runs commands under bubblewrap: the host system read-only, only the working directory writable,
a private /tmp, no network by default, and no capabilities (so nothing can be remounted writable).
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

from pydantic import Field

from wren.environments.base import ProcessConfig, ProcessEnvironment, check_finished, command_env
from wren.environments.shell import PersistentShell, host_uname
from wren.exceptions import ConfigError

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


class SandboxEnvironmentConfig(ProcessConfig):
    """Settings of the bubblewrap sandbox."""

    environment_class: str = "sandbox"
    """Which environment to use."""
    workdir: str = ""
    """Host directory that commands may write to ('' = `cwd`, or the current directory)."""
    writable: list[str] = Field(default_factory=list)
    """More host paths that commands may write to."""
    tmpfs: list[str] = Field(default_factory=lambda: ["/tmp"])
    """Paths replaced by an empty private tmpfs (writable, gone after the command)."""
    network: bool = False
    """Share the host's network; by default commands get an empty network namespace."""
    inherit_env: bool = True
    """Start from the host environment (credential-like variables excluded) instead of an empty one."""
    persistent: bool = False
    """Keep one sandboxed bash open and run each command in a subshell of it."""
    executable: str = "bwrap"
    """The bubblewrap binary."""
    extra_args: list[str] = Field(default_factory=list)
    """More bwrap arguments, placed before the command."""


class SandboxEnvironment(ProcessEnvironment):
    config_class = SandboxEnvironmentConfig
    config: SandboxEnvironmentConfig

    def __init__(self, config: SandboxEnvironmentConfig | None = None, **kwargs: Any):
        super().__init__(config or self.config_class(**kwargs))
        if shutil.which(self.config.executable) is None:
            raise ConfigError(
                f"the sandbox environment needs bubblewrap ({self.config.executable!r} is not on PATH; "
                "on Debian: apt-get install bubblewrap)"
            )
        self.workdir = os.path.realpath(self.config.workdir or self.config.cwd or os.getcwd())
        if not os.path.isdir(self.workdir):
            raise ConfigError(f"config key 'environment.workdir': {self.workdir} is not a directory")
        base: dict[str, str] = {}
        if self.config.inherit_env:
            base = {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}
        self._env = command_env(self.config, base)
        self._shell: PersistentShell | None = None

    def bwrap_argv(self, cwd: str) -> list[str]:
        c = self.config
        argv = [c.executable, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for path in c.tmpfs:
            argv += ["--tmpfs", path]
        # Binds come after the tmpfs mounts so that a workdir under /tmp stays the host's directory.
        for path in [self.workdir, *c.writable]:
            real = os.path.realpath(path)
            argv += ["--bind", real, real]
        if not c.network:
            argv.append("--unshare-net")
        argv += ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        argv += ["--chdir", cwd or self.workdir, *c.extra_args]
        return argv

    def wrap(self, command: str, cwd: str) -> tuple[list[str], str | None, dict[str, str] | None]:
        return [*self.bwrap_argv(cwd), self.config.shell, "-c", command], None, self._env

    def execute(self, command: str, cwd: str = "", *, timeout: float | None = None) -> dict[str, Any]:
        if not self.config.persistent:
            return super().execute(command, cwd, timeout=timeout)
        if self._shell is None:
            argv = [*self.bwrap_argv(self.workdir), self.config.shell, "--noprofile", "--norc"]
            self._shell = PersistentShell(argv, env=self._env, output_cap=self.config.output_cap)
        result = self._shell.run(command, cwd or self.config.cwd, timeout=timeout or self.config.timeout)
        check_finished(result["output"])
        return result

    def get_template_vars(self) -> dict[str, Any]:
        return (
            self.config.model_dump(exclude={"env"}) | host_uname() | {"cwd": self.config.cwd or self.workdir}
        )

    def close(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None
