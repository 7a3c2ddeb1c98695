"""Models: LiteLLM for any provider, a direct client for OpenAI-compatible servers, scripted models."""

from __future__ import annotations

import importlib
from typing import Any

from wren.exceptions import ConfigError
from wren.models.config import ModelConfig
from wren.models.stats import GLOBAL_STATS

__all__ = ["GLOBAL_STATS", "MODEL_CLASSES", "ModelConfig", "get_model", "model_config_from"]

MODEL_CLASSES: dict[str, str] = {
    "litellm": "wren.models.litellm_model:LitellmModel",
    "scripted": "wren.models.scripted:ScriptedModel",
    "replay": "wren.models.scripted:ReplayModel",
    "router": "wren.models.router:RouterModel",
}


def model_class(name: str) -> type:
    target = MODEL_CLASSES.get(name)
    if target is None and "." in name:
        module, _, cls = name.rpartition(".")
        target = f"{module}:{cls}"
    if target is None:
        raise ConfigError(f"unknown model_class {name!r}; known: {', '.join(sorted(MODEL_CLASSES))}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def model_config_from(spec: str | dict[str, Any] | ModelConfig) -> ModelConfig:
    """A ModelConfig from a name (catalog entry or LiteLLM name), a dict, or a ModelConfig."""
    from wren.config.loader import validate
    from wren.models.catalog import resolve_model_name

    if isinstance(spec, ModelConfig):
        return spec
    data = resolve_model_name(spec) if isinstance(spec, str) else dict(spec)
    return validate(ModelConfig, data, where="model")


def get_model(
    config: str | dict[str, Any] | ModelConfig | None = None,
    slm: str | None = None,
    *,
    slm_providers: dict[str, Any] | None = None,
) -> Any:
    """Build a model from a name, a config, or an SLM provider / catalog name (`slm`)."""
    if slm:
        from wren.models.catalog import resolve_slm

        config = resolve_slm(slm, slm_providers)
    model_config = model_config_from(config or {})
    return model_class(model_config.model_class)(model_config)
