"""Loading and merging configuration.

Precedence, lowest first: built-in defaults, YAML files, `WREN_SECTION__KEY` environment variables,
`-c key.path=value` on the command line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
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
    "merge_overrides",
    "nest",
    "parse_override",
    "parse_value",
    "read_yaml",
    "validate",
]

ENV_PREFIX = "WREN_"
logger = logging.getLogger("wren.config")


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


def merge_overrides(specs: Iterable[str], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`base` with each `key.path=value` of `specs` merged on top, in order."""
    merged = dict(base or {})
    for spec in specs:
        merged = deep_merge(merged, parse_override(spec))
    return merged


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


def _config_file(spec: str, config_format: str) -> str:
    """`spec`, or the config mini-swe-agent ships under that name: first with --config-format mini,
    after Wren's built-ins with auto, never with wren."""
    from wren.config import mini

    if config_format == "wren" or Path(spec).is_file():
        return spec
    if config_format == "auto" and builtin_config_path(spec) is not None:
        return spec
    shipped = mini.shipped_config(spec)
    return str(shipped) if shipped is not None else spec


def _layers(
    files: list[str], overrides: list[str], config_format: str, interactive: bool, notes: list[str] | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The files as Wren-shaped layers, and the overrides left for Wren's key space.

    mini-swe-agent files (declared, or detected by their keys) are merged together first, with the
    overrides that name mini-swe-agent keys, as mini-swe-agent merges them; the merge is translated
    once and takes the place of the first of them.
    """
    from wren.config import mini

    if config_format not in mini.FORMATS:
        raise ConfigError(f"--config-format must be one of {', '.join(mini.FORMATS)}, not {config_format!r}")
    layers: list[dict[str, Any] | None] = []
    mini_parts: list[dict[str, Any]] = []
    mini_at: int | None = None
    for spec in files:
        data = read_yaml(_config_file(spec, config_format))
        if config_format == "mini" or (config_format == "auto" and mini.is_mini_config(data)):
            mini_parts.append(data)
            if mini_at is None:
                mini_at = len(layers)
                layers.append(None)
        else:
            layers.append(data)
    rest = []
    for spec in overrides:
        if (mini_parts or config_format == "mini") and mini.is_mini_key(spec.partition("=")[0]):
            mini_parts.append(parse_override(spec))
        else:
            rest.append(spec)
    if mini_parts:
        merged: dict[str, Any] = {}
        for part in mini_parts:
            merged = deep_merge(merged, part)
        translation = mini.translate(merged, interactive=interactive)
        if notes is None:
            for note in translation.notes:
                logger.warning("mini-swe-agent config: %s", note)
        else:
            notes.extend(translation.notes)
        if mini_at is None:
            layers.append(translation.config)
        else:
            layers[mini_at] = translation.config
    return [layer for layer in layers if layer is not None], rest


def load_config_dict(
    specs: Iterable[str] = (),
    *,
    base: Iterable[str] = ("default",),
    environ: Mapping[str, str] | None = None,
    config_format: str = "auto",
    interactive: bool = True,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Merge built-in `base` configs, the YAML files among `specs`, the environment, then overrides.

    `config_format` is auto (mini-swe-agent files are detected by their keys), wren, or mini (every
    file is a mini-swe-agent one); see wren.config.mini. What a translation accepted without a Wren
    counterpart goes into `notes`, or is logged as a warning when no list is given.
    """
    specs = list(specs)
    files = [s for s in specs if "=" not in s]
    layers, overrides = _layers(files, [s for s in specs if "=" in s], config_format, interactive, notes)
    merged: dict[str, Any] = {}
    for layer in [*(read_yaml(spec) for spec in base), *layers]:
        merged = deep_merge(merged, layer)
    return merge_overrides(overrides, deep_merge(merged, env_overrides(environ)))
