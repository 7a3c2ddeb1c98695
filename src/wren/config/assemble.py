"""Turning command-line choices (-c, -m, --slm, --env, --cwd) into one validated WrenConfig."""

from __future__ import annotations

from typing import Any

from wren.config.loader import deep_merge, load_config_dict, parse_override, validate
from wren.config.mini import is_mini_only_key
from wren.config.schema import WrenConfig


def _model_overrides(specs: list[str]) -> dict[str, Any]:
    """The `model.*` part of the command-line overrides, which still apply on top of --slm.

    mini-swe-agent's own model keys (model_kwargs, ...) went into the translation instead.
    """
    merged: dict[str, Any] = {}
    for spec in specs:
        key = spec.split("=", 1)[0].strip()
        if "=" in spec and key.startswith("model.") and not is_mini_only_key(key):
            merged = deep_merge(merged, parse_override(spec)["model"])
    return merged


def assemble_config(
    specs: list[str] | tuple = (),
    *,
    model: str | None = None,
    slm: str | None = None,
    env_kind: str | None = None,
    cwd: str | None = None,
    embedded: Any = None,
    schema: type[WrenConfig] = WrenConfig,
    config_format: str = "auto",
    notes: list[str] | None = None,
) -> WrenConfig:
    """The run's config. With no model named anywhere, `embedded(specs, ...)` supplies one (the local SLM).

    `config_format` and `notes` are those of `load_config_dict` (mini-swe-agent configs).
    """
    from wren.models.catalog import resolve_model_name, resolve_slm

    specs = list(specs)
    # Without interactive agent fields (batch), mini-swe-agent's `agent.mode` and the like do not apply.
    agent_schema = schema.model_fields["agent"].annotation
    interactive = "mode" in getattr(agent_schema, "model_fields", {})
    data = load_config_dict(specs, config_format=config_format, interactive=interactive, notes=notes)
    if slm:
        # --slm replaces the model section; explicit `-c model.x=y` still wins over it.
        data["model"] = deep_merge(resolve_slm(slm, data.get("slm_providers") or {}), _model_overrides(specs))
    elif model:
        data["model"] = deep_merge(data.get("model") or {}, resolve_model_name(model))
        data["model"] = deep_merge(data["model"], _model_overrides(specs))
    if not (data.get("model") or {}).get("name") and embedded is not None:
        # The same files again: what they say was reported (or collected) by the first load.
        data = embedded(specs, config_format=config_format, interactive=interactive, notes=[])
    if env_kind:
        data.setdefault("environment", {})["environment_class"] = env_kind
    if cwd:
        data.setdefault("environment", {})["cwd"] = cwd
    return validate(schema, data)
