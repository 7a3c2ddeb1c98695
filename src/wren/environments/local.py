"""Runs commands on this machine, one subprocess per command.

Every process a command starts carries the environment's run marker (see processes.py): a timed-out
command's processes are killed wherever they detached to, and so is everything left when the
environment closes (or is garbage-collected, or Wren exits).
"""

from __future__ import annotations

import itertools
import os
import secrets
import weakref
from typing import Any

from wren.environments.base import ProcessConfig, ProcessEnvironment, command_env
from wren.environments.processes import MARKER_VAR, kill_marked
from wren.exceptions import ConfigError, ExecutionTimeoutError
from wren.redact import is_secret_name


class LocalEnvironmentConfig(ProcessConfig):
    """Settings of the local environment."""

    inherit_env: bool = True
    """Start from the host environment (credential-like variables excluded) instead of an empty one."""


class LocalEnvironment(ProcessEnvironment):
    config_class = LocalEnvironmentConfig
    config: LocalEnvironmentConfig

    def __init__(self, config: LocalEnvironmentConfig | None = None, **kwargs: Any):
        super().__init__(config or LocalEnvironmentConfig(**kwargs))
        if self.config.cwd and not os.path.isdir(self.config.cwd):
            raise ConfigError(f"config key 'environment.cwd': {self.config.cwd} is not a directory")
        base: dict[str, str] = {}
        if self.config.inherit_env:
            # Credential-like variables are not inherited unless named in forward_env, so that `env`
            # or a stack trace in an observation does not hand a key to the model.
            base = {k: v for k, v in os.environ.items() if not is_secret_name(k)}
        self._env = command_env(self.config, base)
        self._marker = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._commands = itertools.count(1)
        self._finalizer = weakref.finalize(self, kill_marked, f"{self._marker}:", prefix=True)

    def wrap(self, command: str, cwd: str) -> tuple[list[str], str | None, dict[str, str] | None]:
        return [self.config.shell, "-c", command], cwd or None, self._env

    def execute(self, command: str, cwd: str = "", *, timeout: float | None = None) -> dict[str, Any]:
        marker = f"{self._marker}:{next(self._commands)}"
        self._env = {**self._env, MARKER_VAR: marker}
        try:
            return super().execute(command, cwd, timeout=timeout)
        except ExecutionTimeoutError:
            # The process group is dead; what left it (setsid, nohup in a new session) is not.
            kill_marked(marker)
            raise

    def close(self) -> None:
        """End every process the commands started that still runs, however it detached."""
        self._finalizer()
