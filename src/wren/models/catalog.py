"""SLM providers and the model catalog.

A provider is a named model config (`slm_providers: {name: {...}}` in YAML). A catalog entry is one
YAML file per model:

    internal_name: qwen2.5-coder-7b-instruct
    provider_slugs: {hosted_vllm: hosted_vllm/Qwen/Qwen2.5-Coder-7B-Instruct, openrouter: ...}
    agent_specific:
      wren: {model_name: null, model_class: hosted_vllm, api_base: ..., model_kwargs: {...}, reasoning: null}

The model name resolves as the explicit `model_name`, else the provider slug for `model_class`,
else `internal_name`.

An entry may also name the config its model needs (`config: [slm]`: built-in names, YAML files or
`key.path=value`, layered under the user's own configs) and say that Wren's embedded server serves
it (`embedded: true`: the server is started when no `api_base` is given), with LoRA adapters it
applies over the bundled model (`lora: [...]`). A provider entry may hold the same `config` key
beside its model fields.

One built-in entry is marked `default: true`: the model of a command that can start the embedded
server when no model is named anywhere. A user entry marked so ($WREN_CATALOG) takes its place.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from wren.exceptions import ConfigError, ModelNotFound
from wren.validation import StrictModel, validate

CATALOG_DIR = Path(__file__).resolve().parent.parent / "config" / "catalog"


class WrenModelSettings(StrictModel):
    """Wren's part of a catalog entry."""

    model_name: str | None = None
    """Explicit LiteLLM model name; wins over provider slugs."""
    model_class: str = "litellm"
    """A provider key of provider_slugs (e.g. hosted_vllm, ollama, openrouter) or a client class."""
    api_base: str | None = None
    """Where the model is served, for OpenAI-compatible servers."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further model config fields (temperature, max_output_tokens, ...)."""
    reasoning: str | None = None
    """Thinking preset: disabled, low, medium or high."""
    config: list[str] = Field(default_factory=list)
    """Configs the model needs (built-in names, YAML files, key.path=value), under the user's own."""
    embedded: bool = False
    """Served by Wren's embedded server, which is started when no api_base is given."""
    lora: list[str] = Field(default_factory=list)
    """LoRA adapter GGUFs the embedded server applies over the bundled base model (a tuned model of
    a few MB): file paths, relative ones from the catalog file's directory (package data beside a
    built-in entry). The server always serves the entry asked for: one running with another model
    or other adapters is not reused for it."""

    @model_validator(mode="after")
    def _adapters_need_the_embedded_server(self) -> WrenModelSettings:
        if self.lora and not self.embedded:
            raise ValueError("lora adapters are applied by the embedded server: set embedded: true")
        return self


class ModelChoice(StrictModel):
    """What a model name stands for: its model config and the configs it needs."""

    model: dict[str, Any]
    """Model config fields (for an embedded model, without api_base: the server decides it)."""
    config: list[str] = Field(default_factory=list)
    """Config specs layered over the built-in defaults and under the user's configs."""
    embedded: bool = False
    """Whether Wren's embedded server serves the model."""
    default_api_base: str | None = None
    """Where the model is served when nothing starts a server (embedded models only)."""
    lora: list[str] = Field(default_factory=list)
    """Adapter GGUFs the embedded server applies (embedded models only)."""

    def model_at_default(self) -> dict[str, Any]:
        """The model config with the default api_base, for when nothing starts a server."""
        return {**self.model, **({"api_base": self.default_api_base} if self.default_api_base else {})}


class CatalogEntry(StrictModel):
    """One model of the catalog."""

    internal_name: str
    """Wren's name for the model, used with -m and --slm."""
    description: str = ""
    """One line about the model."""
    default: bool = False
    """The model used when no model is named anywhere (one built-in entry; a user entry may take its
    place)."""
    provider_slugs: dict[str, str] = Field(default_factory=dict)
    """The model's name at each provider, keyed by provider."""
    agent_specific: dict[str, WrenModelSettings] = Field(default_factory=dict)
    """Settings per agent framework; Wren reads `wren`."""

    def resolved_name(self) -> str:
        wren = self.agent_specific.get("wren") or WrenModelSettings()
        if wren.model_name:
            return wren.model_name
        return self.provider_slugs.get(wren.model_class) or self.internal_name

    def model_config_dict(self) -> dict[str, Any]:
        """The model config this entry stands for."""
        wren = self.agent_specific.get("wren") or WrenModelSettings()
        data: dict[str, Any] = {"name": self.resolved_name()}
        from wren.models import MODEL_CLASSES

        # A model_class that names a Python class rather than a provider.
        if wren.model_class in MODEL_CLASSES:
            data["model_class"] = wren.model_class
        if wren.api_base:
            data["api_base"] = wren.api_base
        if wren.reasoning:
            data["reasoning"] = wren.reasoning
        data.update(wren.model_kwargs)
        return data

    def missing_adapters(self) -> list[str]:
        """The entry's adapter files that are not there: while any is missing it cannot be chosen."""
        wren = self.agent_specific.get("wren") or WrenModelSettings()
        return [path for path in wren.lora if not Path(path).is_file()]

    def choice(self, *, installed: bool = True) -> ModelChoice:
        """The model config and the configs this entry needs; with `installed`, a missing adapter
        file is an error (leave it False to describe the entry, as `wren models list` does)."""
        wren = self.agent_specific.get("wren") or WrenModelSettings()
        model = self.model_config_dict()
        default_api_base = model.pop("api_base", None) if wren.embedded else None
        missing = self.missing_adapters()
        if installed and missing:
            raise ConfigError(
                f"catalog entry {self.internal_name}: the adapter {missing[0]} is not installed; "
                "choose another model (--slm NAME) or put the adapter GGUF there"
            )
        return ModelChoice(
            model=model,
            config=wren.config,
            embedded=wren.embedded,
            default_api_base=default_api_base,
            lora=wren.lora,
        )


def load_catalog_file(path: Path) -> CatalogEntry:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in catalog file {path}: {e}") from e
    entry = validate(CatalogEntry, data, where=path.name)
    wren = entry.agent_specific.get("wren")
    if wren is not None and wren.lora:
        # Adapters are named from where the entry lies, so one can ship beside it as package data.
        wren.lora = [str((path.parent / Path(p).expanduser()).resolve()) for p in wren.lora]
    return entry


def builtin_catalog(directory: Path = CATALOG_DIR) -> dict[str, CatalogEntry]:
    """The entries shipped with Wren: exactly one of them is the default."""
    entries = {
        entry.internal_name: entry for entry in map(load_catalog_file, sorted(directory.glob("*.yaml")))
    }
    defaults = sorted(name for name, entry in entries.items() if entry.default)
    if len(defaults) != 1:
        raise ConfigError(
            f"the built-in catalog ({directory}) must mark exactly one entry default: true, "
            f"not {len(defaults)}{' (' + ', '.join(defaults) + ')' if defaults else ''}"
        )
    return entries


_builtin_catalog = functools.cache(builtin_catalog)

CATALOG_ENV = "WREN_CATALOG"


def user_catalog_dirs() -> list[Path]:
    """The user's own catalog directories: $WREN_CATALOG, separated as PATH is."""
    return [Path(p) for p in os.environ.get(CATALOG_ENV, "").split(os.pathsep) if p]


def _user_entries(extra_dirs: list[Path] | None) -> list[CatalogEntry]:
    return [
        load_catalog_file(path)
        for directory in [*user_catalog_dirs(), *(extra_dirs or [])]
        for path in sorted(Path(directory).glob("*.yaml"))
    ]


def load_catalog(extra_dirs: list[Path] | None = None) -> dict[str, CatalogEntry]:
    """Built-in catalog entries, then the user's ($WREN_CATALOG), then those in `extra_dirs` (later
    ones win)."""
    catalog = dict(_builtin_catalog())
    for entry in _user_entries(extra_dirs):
        catalog[entry.internal_name] = entry
    return catalog


def default_model(extra_dirs: list[Path] | None = None) -> str:
    """The entry used when no model is named anywhere: the user's entry marked `default: true` (at
    most one may be), else the built-in one."""
    marked = sorted({entry.internal_name for entry in _user_entries(extra_dirs) if entry.default})
    if len(marked) > 1:
        raise ConfigError(f"more than one user catalog entry is marked default: true ({', '.join(marked)})")
    if marked:
        return marked[0]
    return next(name for name, entry in _builtin_catalog().items() if entry.default)


def provider_choice(name: str, config: Any) -> ModelChoice:
    """An `slm_providers` entry: model config fields, plus the optional `config` list it needs."""
    if not isinstance(config, dict):
        raise ConfigError(f"slm_providers.{name} must be a mapping of model config fields")
    model = dict(config)
    needs = model.pop("config", [])
    needs = [needs] if isinstance(needs, str) else needs
    try:
        return ModelChoice(model=model, config=needs)
    except ValidationError:
        raise ConfigError(
            f"config key 'slm_providers.{name}.config' must be a list of config specs, not {needs!r}"
        ) from None


def known_choices(
    slm_providers: dict[str, Any] | None = None, catalog: dict[str, CatalogEntry] | None = None
) -> dict[str, ModelChoice]:
    """Every name that `--slm` accepts: catalog entries (those whose adapters are installed), then
    providers (which win)."""
    catalog = load_catalog() if catalog is None else catalog
    out = {name: entry.choice() for name, entry in catalog.items() if not entry.missing_adapters()}
    for name, config in (slm_providers or {}).items():
        out[name] = provider_choice(name, config)
    return out


def known_models(
    slm_providers: dict[str, Any] | None = None, catalog: dict[str, CatalogEntry] | None = None
) -> dict[str, dict]:
    """Every name that `--slm` accepts, mapped to its model config (with where it is served)."""
    return {name: choice.model_at_default() for name, choice in known_choices(slm_providers, catalog).items()}


def choose_slm(name: str, slm_providers: dict[str, Any] | None = None) -> ModelChoice:
    """`--slm NAME`: a provider or catalog entry; an unknown name lists the known ones."""
    providers, catalog = slm_providers or {}, load_catalog()
    if name in providers:
        return provider_choice(name, providers[name])
    if name in catalog:
        return catalog[name].choice()
    known = sorted({*providers, *catalog})
    raise ModelNotFound(f"unknown SLM {name!r}; known: {', '.join(known) or '(none)'}")


def resolve_slm(name: str, slm_providers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model config of provider or catalog entry `name`; an unknown name lists the known ones."""
    return choose_slm(name, slm_providers).model_at_default()


def choose_model_name(name: str) -> ModelChoice:
    """`-m NAME`: a catalog entry if NAME is in the catalog, else a plain LiteLLM name."""
    entry = load_catalog().get(name)
    return entry.choice() if entry else ModelChoice(model={"name": name})


def resolve_model_name(name: str) -> dict[str, Any]:
    """`-m NAME` as a model config: a catalog entry's config, else a plain LiteLLM name."""
    entry = load_catalog().get(name)
    return entry.model_config_dict() if entry else {"name": name}
