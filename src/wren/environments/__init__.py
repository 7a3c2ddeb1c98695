"""Environments: where the agent's commands run."""

from __future__ import annotations

import importlib
from typing import Any

from wren.exceptions import ConfigError

# Short names -> "module:Class"; a dotted path "pkg.mod.Class" also works.
ENVIRONMENTS: dict[str, str] = {
    "local": "wren.environments.local:LocalEnvironment",
    "docker": "wren.environments.docker:DockerEnvironment",
    "podman": "wren.environments.docker:PodmanEnvironment",
    "apptainer": "wren.environments.apptainer:ApptainerEnvironment",
    "singularity": "wren.environments.apptainer:ApptainerEnvironment",
    "sandbox": "wren.environments.sandbox:SandboxEnvironment",
}


def register_environment(name: str, target: str) -> None:
    """Make `name` resolve to `target` ("module:Class")."""
    ENVIRONMENTS[name] = target


def environment_class(name: str) -> type:
    target = ENVIRONMENTS.get(name)
    if target is None and "." in name:
        target = name.rsplit(".", 1)[0] + ":" + name.rsplit(".", 1)[1]
    if target is None:
        raise ConfigError(f"unknown environment {name!r}; known: {', '.join(sorted(ENVIRONMENTS))}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def get_environment(config: dict[str, Any] | str | None = None, **kwargs: Any) -> Any:
    """Build an environment from a config dict or a kind name, with field overrides in `kwargs`."""
    from wren.config.loader import validate

    data = {"environment_class": config} if isinstance(config, str) else dict(config or {})
    data.update(kwargs)
    kind = data.get("environment_class") or "local"
    cls = environment_class(kind)
    return cls(validate(cls.config_class, data, where="environment"))


def check_environment_config(config: dict[str, Any]) -> None:
    """Validate an environment config without starting anything, so bad values fail before a run."""
    from wren.config.loader import validate

    data = dict(config or {})
    cls = environment_class(data.get("environment_class") or "local")
    validate(cls.config_class, data, where="environment")
