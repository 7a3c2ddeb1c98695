"""Runs commands under bubblewrap as an unprivileged user: only the system directories a shell, git
and Python need, read-only; the working directory writable; a private /tmp; no network by default;
no capabilities (so nothing can be remounted writable); an environment built from an allowlist.

Nothing of the host is visible unless listed: not /home, /root, /run (where daemons' sockets are,
docker's among them), /var, /srv, /mnt, nor /etc beyond the files named in `SYSTEM_ETC`.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import Any

from pydantic import Field

from wren.environments.base import ProcessConfig, ProcessEnvironment, check_finished, command_env
from wren.environments.contained import ContainedEnvironment
from wren.environments.processes import MARKER_VAR
from wren.environments.shell import PersistentShell, host_uname
from wren.exceptions import ConfigError

# What a shell, git and Python read at start-up; the rest of /etc (shadow, ssh host keys, sudoers,
# private TLS keys, daemons' configs) stays out.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_ETC = (
    "passwd", "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf", "localtime",
    "timezone", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl/certs",
    "ssl/openssl.cnf", "ca-certificates", "ca-certificates.conf", "gitconfig", "bash.bashrc", "profile",
    "profile.d", "inputrc", "mime.types", "os-release", "debian_version", "terminfo", "locale.alias",
    "protocols", "services", "magic", "python3*",
)  # fmt: skip
PASS_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TERM", "TZ")
NOBODY = 65534


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
    readonly: list[str] = Field(default_factory=list)
    """More host paths visible read-only (an interpreter's prefix, a cache of environments)."""
    network: bool = False
    """Share the host's network; by default commands get an empty network namespace."""
    pass_env: list[str] = Field(default_factory=lambda: list(PASS_ENV))
    """Host variables passed through (an allowlist; `forward_env` adds to it, `env` sets values)."""
    uid: int = NOBODY
    """User id of the commands inside the sandbox (in its own user namespace)."""
    gid: int = NOBODY
    """Group id of the commands inside the sandbox."""
    persistent: bool = False
    """Keep one sandboxed bash open and run each command in a subshell of it."""
    executable: str = "bwrap"
    """The bubblewrap binary."""
    extra_args: list[str] = Field(default_factory=list)
    """More bwrap arguments, placed before the command."""


class SandboxEnvironment(ContainedEnvironment):
    config_class = SandboxEnvironmentConfig
    config: SandboxEnvironmentConfig

    def __init__(self, config: SandboxEnvironmentConfig | None = None, **kwargs: Any):
        config = config or self.config_class(**kwargs)
        if shutil.which(config.executable) is None:
            raise ConfigError(
                f"the sandbox environment needs bubblewrap ({config.executable!r} is not on PATH; "
                "on Debian: apt-get install bubblewrap)"
            )
        self.workdir = os.path.realpath(config.workdir or config.cwd or os.getcwd())
        if not os.path.isdir(self.workdir):
            raise ConfigError(f"config key 'environment.workdir': {self.workdir} is not a directory")
        for key in ("readonly", "writable"):
            missing = [p for p in getattr(config, key) if not os.path.exists(p)]
            if missing:
                raise ConfigError(f"config key 'environment.{key}': {', '.join(missing)} does not exist")
        super().__init__(config)
        # HOME is the private /tmp: the host's home directory is not there to write to.
        base = {"HOME": "/tmp"} | {k: os.environ[k] for k in self.config.pass_env if k in os.environ}
        self._env = command_env(self.config, base)
        self._shell: PersistentShell | None = None

    def bwrap_argv(self, cwd: str) -> list[str]:
        c = self.config
        argv = [c.executable, "--unshare-user", "--uid", str(c.uid), "--gid", str(c.gid)]
        argv += ["--dev", "/dev", "--proc", "/proc"]
        for path in [*SYSTEM_DIRS, *(p for name in SYSTEM_ETC for p in sorted(glob.glob(f"/etc/{name}")))]:
            if os.path.islink(path) and os.path.dirname(path) == "/":
                argv += ["--symlink", os.readlink(path), path]  # /bin -> usr/bin on merged-/usr systems
            elif os.path.exists(path):
                argv += ["--ro-bind", path, path]
        for path in c.tmpfs:
            argv += ["--tmpfs", path]
        # Binds come after the tmpfs mounts so that a workdir under /tmp stays the host's directory.
        for path in c.readonly:
            real = os.path.realpath(path)
            argv += ["--ro-bind", real, real]
        for path in [self.workdir, *c.writable]:
            real = os.path.realpath(path)
            argv += ["--bind", real, real]
        # The root bwrap builds the tree on is a tmpfs of its own: read-only too, so the agent writes
        # only where it is told it can.
        argv += ["--remount-ro", "/"]
        if not c.network:
            argv.append("--unshare-net")
        argv += ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        argv += ["--chdir", cwd or self.workdir, *c.extra_args]
        return argv

    def wrap(self, command: str, cwd: str) -> tuple[list[str], str | None, dict[str, str] | None]:
        argv = self.cgroup.wrap([*self.bwrap_argv(cwd), self.config.shell, "-c", command])
        return argv, None, self._env

    def run_command(self, command: str, cwd: str, timeout: float | None, marker: str) -> dict[str, Any]:
        # bwrap hands its environment to the command, so the sandboxed processes carry the marker too.
        if not self.config.persistent:
            self._env = {**self._env, MARKER_VAR: marker}
            return ProcessEnvironment.execute(self, command, cwd, timeout=timeout)
        if self._shell is None:
            argv = [*self.bwrap_argv(self.workdir), self.config.shell, "--noprofile", "--norc"]
            env = {**self._env, MARKER_VAR: f"{self.marker}:shell"}
            self._shell = PersistentShell(self.cgroup.wrap(argv), env=env, output_cap=self.config.output_cap)
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
        super().close()
