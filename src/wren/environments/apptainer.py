"""Runs each command with `apptainer exec` (or `singularity exec`) in an image: a SIF file, a
sandbox directory, or a `docker://` reference. Apptainer needs no daemon, so there is nothing to
start or clean up; the host working directory is bound in and is the only writable path.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from pydantic import Field

from wren.environments.base import ProcessConfig, ProcessEnvironment
from wren.environments.shell import host_uname
from wren.exceptions import ConfigError


class ApptainerEnvironmentConfig(ProcessConfig):
    """Settings of the apptainer / singularity environment."""

    environment_class: str = "apptainer"
    """Which environment to use."""
    image: str = ""
    """SIF file, sandbox directory or docker:// reference."""
    executable: str = ""
    """apptainer or singularity ('' = whichever is on PATH, apptainer first)."""
    binds: list[str] = Field(default_factory=list)
    """Bind mounts as `HOST[:CONTAINER[:ro]]`."""
    writable_tmpfs: bool = True
    """Give the container a writable in-memory overlay (changes vanish after each command)."""
    network: bool = True
    """Share the host's network; false runs with `--net --network none`."""
    exec_args: list[str] = Field(default_factory=list)
    """More arguments for `apptainer exec`, before the image."""


class ApptainerEnvironment(ProcessEnvironment):
    config_class = ApptainerEnvironmentConfig
    config: ApptainerEnvironmentConfig

    def __init__(self, config: ApptainerEnvironmentConfig | None = None, **kwargs: Any):
        super().__init__(config or self.config_class(**kwargs))
        if not self.config.image:
            raise ConfigError("config key 'environment.image' is required for the apptainer environment")
        self.executable = self.config.executable or find_apptainer()
        if not self.executable:
            raise ConfigError("the apptainer environment needs `apptainer` or `singularity` on PATH")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "TMPDIR")}
        # APPTAINERENV_X / SINGULARITYENV_X set X inside the container under --cleanenv.
        for name, value in self._command_env().items():
            env[f"APPTAINERENV_{name}"] = value
            env[f"SINGULARITYENV_{name}"] = value
        self._host_env = env

    def _command_env(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in self.config.forward_env if name in os.environ}
        env.update(self.config.env)
        return env

    def wrap(self, command: str, cwd: str) -> tuple[list[str], str | None, dict[str, str] | None]:
        c = self.config
        argv = [self.executable, "exec", "--contain", "--cleanenv"]
        if c.writable_tmpfs:
            argv.append("--writable-tmpfs")
        if not c.network:
            argv += ["--net", "--network", "none"]
        for bind in c.binds:
            argv += ["--bind", bind]
        if cwd:
            argv += ["--pwd", cwd]
        return [*argv, *c.exec_args, c.image, c.shell, "-c", command], None, self._host_env

    def get_template_vars(self) -> dict[str, Any]:
        return self.config.model_dump(exclude={"env"}) | host_uname() | {"cwd": self.config.cwd or "/"}


def find_apptainer() -> str:
    """The path of apptainer or singularity, or '' when neither is installed."""
    for name in ("apptainer", "singularity"):
        path = shutil.which(name)
        if path:
            return path
    return ""
