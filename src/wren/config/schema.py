"""The top-level configuration file: sections agent, model, environment, run and slm_providers."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from wren.agents.config import AgentConfig
from wren.agents.interactive import InteractiveAgentConfig
from wren.models.config import ModelConfig
from wren.validation import StrictModel


class RunConfig(StrictModel):
    """Settings of `wren run` itself."""

    output: str | None = None
    """Directory (or file whose directory) for the trajectory; default: runs/<timestamp> here."""
    check_model: bool = False
    """Ping the model (/v1/models and a one-token completion) before the run."""
    embedded_port: int = 8765
    """Port of the embedded local SLM server used when no model is configured."""
    embedded_idle_timeout: float = Field(default=300.0, ge=0)
    """Seconds the embedded server stays up after its last request and run (0 = until stopped)."""
    instance_id: str = ""
    """Name of the run in trajectory file names ('' = derived from the time)."""


class WrenConfig(StrictModel):
    """A whole Wren configuration."""

    agent: AgentConfig
    """The agent's templates and limits."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """The model to query."""
    environment: dict[str, Any] = Field(default_factory=dict)
    """Where commands run; `environment_class` picks the kind, the rest are its fields."""
    run: RunConfig = Field(default_factory=RunConfig)
    """Settings of the run command."""
    slm_providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Named model configs that `--slm NAME` selects."""


class InteractiveWrenConfig(WrenConfig):
    """A whole Wren configuration whose agent section may hold the interactive fields."""

    agent: InteractiveAgentConfig
    """The agent's templates, limits and interaction settings."""


def load_config(specs: list[str] | tuple = (), **kwargs: Any) -> WrenConfig:
    """Built-ins, then YAML files and `key=value` overrides from `specs`, validated."""
    from wren.config.loader import load_config_dict, validate

    return validate(WrenConfig, load_config_dict(specs, **kwargs))
