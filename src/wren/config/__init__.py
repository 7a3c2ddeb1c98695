"""Configuration: YAML files, `WREN_*` environment variables and `key.path=value` overrides."""

from wren.config.loader import (
    BUILTIN_DIR,
    builtin_config_path,
    deep_merge,
    env_overrides,
    load_config_dict,
    parse_override,
    validate,
)

__all__ = [
    "BUILTIN_DIR",
    "builtin_config_path",
    "deep_merge",
    "env_overrides",
    "load_config_dict",
    "parse_override",
    "validate",
]
