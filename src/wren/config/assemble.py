"""Turning command-line choices (-c, -m, --slm, --env, --cwd) into one validated WrenConfig.

A model's catalog or provider entry may name the configs it needs (the small-model config for the
bundled SLM); they are layered over the built-in defaults and under everything the user gives, so
the user's own files and `-c` overrides still win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wren.config.loader import deep_merge, load_config_dict, merge_overrides, parse_override, validate
from wren.config.mini import is_mini_only_key
from wren.config.schema import RunConfig, WrenConfig
from wren.exceptions import ConfigError


def _model_overrides(specs: list[str]) -> dict[str, Any]:
    """The `model.*` part of the command-line overrides, which still apply on top of --slm.

    mini-swe-agent's own model keys (model_kwargs, ...) are not among them: they went into the
    translation of the user's files.
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
    embedded: Callable[..., str] | None = None,
    schema: type[WrenConfig] = WrenConfig,
    config_format: str = "auto",
    notes: list[str] | None = None,
) -> WrenConfig:
    """The run's config.

    `embedded(port, idle_timeout=S[, lora=ADAPTERS])` starts (or finds) the embedded SLM server
    serving the bundled model (with a catalog entry's adapters over it) and returns its api_base; commands
    that may start it pass it. Then no model named anywhere means the catalog's default entry
    (`wren.models.catalog.default_model`).
    `config_format` and `notes` are those of `load_config_dict` (mini-swe-agent configs).
    """
    from wren.models.catalog import choose_model_name, choose_slm, default_model

    specs = list(specs)
    # Without interactive agent fields (batch), mini-swe-agent's `agent.mode` and the like do not apply.
    agent_schema = schema.model_fields["agent"].annotation
    fmt = {"config_format": config_format, "interactive": "mode" in getattr(agent_schema, "model_fields", {})}
    data = load_config_dict(specs, notes=notes, **fmt)
    providers = data.get("slm_providers") or {}
    choice = None
    if slm:
        mini_model = [
            s for s in specs if "=" in s and s.startswith("model.") and is_mini_only_key(s.split("=")[0])
        ]
        if mini_model:
            raise ConfigError(
                f"--slm replaces the model section, so {mini_model[0].split('=')[0]!r} (a mini-swe-agent key) "
                "has nothing to apply to; give it as a Wren key, e.g. -c model.temperature=0.2"
            )
        choice = choose_slm(slm, providers)
    elif model:
        choice = choose_model_name(model)
    elif embedded is not None and not (data.get("model") or {}).get("name"):
        choice = choose_slm(default_model())  # no model named anywhere: the catalog's default
    if choice is not None:
        # Layers, lowest first: built-ins, the configs the model needs, the user's files,
        # environment and `-c` overrides.
        needed = load_config_dict(choice.config, environ={})
        user = load_config_dict(specs, base=(), notes=[], **fmt)  # notes: reported by the first load
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
            run_config = validate(RunConfig, data.get("run") or {}, where="run")
            # An entry with adapters asks for them: a server without them is not reused for it.
            adapters = {"lora": choice.lora} if choice.lora else {}
            data["model"]["api_base"] = (
                embedded(run_config.embedded_port, idle_timeout=run_config.embedded_idle_timeout, **adapters)
                if embedded is not None
                else choice.default_api_base
            )
    if env_kind:
        data.setdefault("environment", {})["environment_class"] = env_kind
    if cwd:
        data.setdefault("environment", {})["cwd"] = cwd
    return validate(schema, data)


def with_overrides(config: WrenConfig, specs: list[str] | tuple = ()) -> WrenConfig:
    """`config` with the `key.path=value` items of `specs` set on it, validated again (YAML files
    among `specs` are left out: they were layered when the config was assembled)."""
    overrides = [s for s in specs if "=" in s]
    if not overrides:
        return config
    return validate(type(config), merge_overrides(overrides, config.model_dump()))
