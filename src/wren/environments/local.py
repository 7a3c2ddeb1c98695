"""Runs commands on this machine, one subprocess per command.

Every process a command starts carries the environment's run marker and joins the run's cgroup
(see contained.py): a timed-out command's processes are killed wherever they detached to, and so is
everything left when the environment closes (or is garbage-collected, or Wren exits or is killed).
"""

from __future__ import annotations

import os
from typing import Any

from wren.environments.base import ProcessConfig, ProcessEnvironment, command_env
from wren.environments.contained import ContainedEnvironment
from wren.environments.processes import MARKER_VAR
from wren.exceptions import ConfigError
from wren.redact import is_secret_name


class LocalEnvironmentConfig(ProcessConfig):
    """Settings of the local environment."""

    inherit_env: bool = True
    """Start from the host environment (credential-like variables excluded) instead of an empty one."""


class LocalEnvironment(ContainedEnvironment):
    config_class = LocalEnvironmentConfig
    config: LocalEnvironmentConfig

    def __init__(self, config: LocalEnvironmentConfig | None = None, **kwargs: Any):
        config = config or LocalEnvironmentConfig(**kwargs)
        if config.cwd and not os.path.isdir(config.cwd):
            raise ConfigError(f"config key 'environment.cwd': {config.cwd} is not a directory")
        super().__init__(config)
        base: dict[str, str] = {}
        if self.config.inherit_env:
            # Credential-like variables are not inherited unless named in forward_env, so that `env`
            # or a stack trace in an observation does not hand a key to the model.
            base = {k: v for k, v in os.environ.items() if not is_secret_name(k) and k != MARKER_VAR}
        self._env = command_env(self.config, base)

    def wrap(self, command: str, cwd: str) -> tuple[list[str], str | None, dict[str, str] | None]:
        return self.cgroup.wrap([self.config.shell, "-c", command]), cwd or None, self._env

    def run_command(self, command: str, cwd: str, timeout: float | None, marker: str) -> dict[str, Any]:
        self._env = {**self._env, MARKER_VAR: marker}
        return ProcessEnvironment.execute(self, command, cwd, timeout=timeout)
