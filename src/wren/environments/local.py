"""Runs commands on this machine, one subprocess per command."""

from __future__ import annotations

import os
import re
from typing import Any

from wren.environments.base import ProcessConfig, ProcessEnvironment, command_env

# Host variables that look like credentials are not inherited unless named in forward_env,
# so that `env` or a stack trace in an observation cannot hand a key to the model.
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


class LocalEnvironmentConfig(ProcessConfig):
    """Settings of the local environment."""

    inherit_env: bool = True
    """Start from the host environment (credential-like variables excluded) instead of an empty one."""


class LocalEnvironment(ProcessEnvironment):
    config_class = LocalEnvironmentConfig
    config: LocalEnvironmentConfig

    def __init__(self, config: LocalEnvironmentConfig | None = None, **kwargs: Any):
        super().__init__(config or LocalEnvironmentConfig(**kwargs))
        base: dict[str, str] = {}
        if self.config.inherit_env:
            base = {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}
        self._env = command_env(self.config, base)

    def wrap(self, command: str, cwd: str) -> tuple[list[str], str | None, dict[str, str] | None]:
        return [self.config.shell, "-c", command], cwd or None, self._env
