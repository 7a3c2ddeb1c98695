"""Environments: where the agent's commands run."""

from __future__ import annotations

from typing import Any

from wren.registry import Registry
from wren.validation import validate

ENVIRONMENTS: Registry[Any] = Registry(
    "environment",
    {
        "local": "wren.environments.local:LocalEnvironment",
        "docker": "wren.environments.docker:DockerEnvironment",
        "podman": "wren.environments.docker:PodmanEnvironment",
        "apptainer": "wren.environments.apptainer:ApptainerEnvironment",
        "singularity": "wren.environments.apptainer:ApptainerEnvironment",
        "sandbox": "wren.environments.sandbox:SandboxEnvironment",
    },
)


def register_environment(name: str, target: str) -> None:
    """Make `name` resolve to `target` ("module:Class")."""
    ENVIRONMENTS.register(name, target)


def environment_class(name: str) -> type:
    """The environment class `name` stands for: a short name or a dotted path."""
    return ENVIRONMENTS.get(name)


def _resolve(config: dict[str, Any] | str | None, kwargs: dict[str, Any]) -> tuple[type, Any]:
    data = {"environment_class": config} if isinstance(config, str) else dict(config or {})
    data.update(kwargs)
    cls = environment_class(data.get("environment_class") or "local")
    return cls, validate(cls.config_class, data, where="environment")


def environment_config(config: dict[str, Any] | str | None = None, **kwargs: Any) -> Any:
    """The validated config of the environment that `get_environment` would build; nothing starts."""
    return _resolve(config, kwargs)[1]


def get_environment(config: dict[str, Any] | str | None = None, **kwargs: Any) -> Any:
    """Build an environment from a config dict or a kind name, with field overrides in `kwargs`."""
    cls, validated = _resolve(config, kwargs)
    return cls(validated)
