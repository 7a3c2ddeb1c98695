"""Loading and merging configuration.

Precedence, lowest first: built-in defaults, YAML files, `WREN_SECTION__KEY` environment variables,
`-c key.path=value` on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from wren.exceptions import ConfigError
from wren.validation import BUILTIN_DIR, builtin_config_path, read_yaml, validate

__all__ = [
    "BUILTIN_DIR",
    "builtin_config_path",
    "deep_merge",
    "env_overrides",
    "load_config_dict",
    "nest",
    "parse_override",
    "parse_value",
    "read_yaml",
    "validate",
]

ENV_PREFIX = "WREN_"


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `update` into a copy of `base`; nested mappings merge, everything else replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def nest(path: str, value: Any) -> dict[str, Any]:
    """`nest("a.b", 1)` is `{"a": {"b": 1}}`."""
    keys = [k for k in path.split(".") if k]
    if not keys:
        raise ConfigError(f"empty config key in {path!r}")
    out: Any = value
    for key in reversed(keys):
        out = {key: out}
    return out


def parse_value(text: str) -> Any:
    """A value as YAML would read it (numbers, booleans, lists), else the plain string."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_override(spec: str) -> dict[str, Any]:
    """`model.api_base=http://x` -> `{"model": {"api_base": "http://x"}}`."""
    key, sep, value = spec.partition("=")
    if not sep:
        raise ConfigError(f"override {spec!r} is not of the form key.path=value")
    return nest(key.strip(), parse_value(value))


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`WREN_MODEL__API_BASE=url` -> `{"model": {"api_base": "url"}}`; variables without `__` are not config."""
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = ".".join(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        out = deep_merge(out, nest(path, parse_value(value)))
    return out


def load_config_dict(
    specs: Iterable[str] = (),
    *,
    base: Iterable[str] = ("default",),
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Merge built-in `base` configs, the YAML files among `specs`, the environment, then overrides."""
    specs = list(specs)
    files = [s for s in specs if "=" not in s]
    overrides = [s for s in specs if "=" in s]
    merged: dict[str, Any] = {}
    for spec in [*base, *files]:
        merged = deep_merge(merged, read_yaml(spec))
    merged = deep_merge(merged, env_overrides(environ))
    for spec in overrides:
        merged = deep_merge(merged, parse_override(spec))
    return merged
