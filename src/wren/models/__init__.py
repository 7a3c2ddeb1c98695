"""Models: LiteLLM for any provider, a direct client for OpenAI-compatible servers, scripted models."""

from __future__ import annotations

from typing import Any

from wren.models.config import ModelConfig
from wren.models.stats import GLOBAL_STATS
from wren.registry import Registry

__all__ = ["GLOBAL_STATS", "MODEL_CLASSES", "ModelConfig", "get_model", "model_config_from"]

MODEL_CLASSES: Registry[Any] = Registry(
    "model_class",
    {
        "litellm": "wren.models.litellm_model:LitellmModel",
        "scripted": "wren.models.scripted:ScriptedModel",
        "replay": "wren.models.scripted:ReplayModel",
        "router": "wren.models.router:RouterModel",
    },
)


def model_class(name: str) -> type:
    """The model class `name` stands for: a short name or a dotted path."""
    return MODEL_CLASSES.get(name)


def model_config_from(spec: str | dict[str, Any] | ModelConfig) -> ModelConfig:
    """A ModelConfig from a name (catalog entry or LiteLLM name), a dict, or a ModelConfig."""
    from wren.models.catalog import resolve_model_name
    from wren.validation import validate

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
