"""Turning command-line choices (-c, -m, --slm, --env, --cwd) into one validated WrenConfig.

A model's catalog or provider entry may name the configs it needs (the small-model config for the
bundled SLM); they are layered over the built-in defaults and under everything the user gives, so
the user's own files and `-c` overrides still win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wren.config.loader import deep_merge, load_config_dict, parse_override, validate
from wren.config.schema import RunConfig, WrenConfig


def _model_overrides(specs: list[str]) -> dict[str, Any]:
    """The `model.*` part of the command-line overrides, which still apply on top of --slm."""
    merged: dict[str, Any] = {}
    for spec in specs:
        if "=" in spec and spec.split("=", 1)[0].strip().startswith("model."):
            merged = deep_merge(merged, parse_override(spec)["model"])
    return merged


def assemble_config(
    specs: list[str] | tuple = (),
    *,
    model: str | None = None,
    slm: str | None = None,
    env_kind: str | None = None,
    cwd: str | None = None,
    embedded: Callable[[int], str] | None = None,
    schema: type[WrenConfig] = WrenConfig,
) -> WrenConfig:
    """The run's config.

    `embedded(port)` starts (or finds) the embedded SLM server and returns its api_base; commands
    that may start it pass it. Then no model named anywhere means the catalog's default model.
    """
    from wren.models.catalog import DEFAULT_MODEL, choose_model_name, choose_slm

    specs = list(specs)
    data = load_config_dict(specs)
    providers = data.get("slm_providers") or {}
    choice = None
    if slm:
        choice = choose_slm(slm, providers)
    elif model:
        choice = choose_model_name(model)
    elif embedded is not None and not (data.get("model") or {}).get("name"):
        choice = choose_slm(DEFAULT_MODEL)  # no model named anywhere: the bundled SLM
    if choice is not None:
        # Layers, lowest first: built-ins, the configs the model needs, the user's files,
        # environment and `-c` overrides.
        needed = load_config_dict(choice.config, environ={})
        user = load_config_dict(specs, base=())
        data = deep_merge(needed, user)
        needed_model, user_model = needed.get("model") or {}, user.get("model") or {}
        if slm:
            # --slm replaces the user's model section; explicit `-c model.x=y` still wins.
            layers = [needed_model, choice.model, _model_overrides(specs)]
        elif model:
            layers = [needed_model, user_model, choice.model, _model_overrides(specs)]
        else:
            layers = [needed_model, choice.model, user_model]  # the default model: the user's fields win
        data["model"] = {}
        for layer in layers:
            data["model"] = deep_merge(data["model"], layer)
        if choice.embedded and not data["model"].get("api_base"):
            data["model"]["api_base"] = (
                embedded(validate(RunConfig, data.get("run") or {}, where="run").embedded_port)
                if embedded is not None
                else choice.default_api_base
            )
    if env_kind:
        data.setdefault("environment", {})["environment_class"] = env_kind
    if cwd:
        data.setdefault("environment", {})["cwd"] = cwd
    return validate(schema, data)
