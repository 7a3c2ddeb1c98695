"""Config validation, the leaf every package may use: a strict pydantic base, validation whose errors
name the key and suggest the closest allowed one, and reading YAML mappings (built-in ones by name).

It imports nothing of Wren but its exceptions, so that config/ (which puts the pieces together) can
import agents, models and environments while they validate their own sections with this.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from wren.exceptions import ConfigError

# The built-in YAML files ship inside config/ (data, not an import).
BUILTIN_DIR = Path(__file__).parent / "config" / "builtin"

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A config section: an unknown key is an error that names it."""

    model_config = ConfigDict(extra="forbid")


def settings_of(config: type[BaseModel], without: Iterable[str], name: str) -> type[StrictModel]:
    """The fields of `config` but those in `without`, as a config section of their own: the settings
    a caller gives, while it fills in the rest (where to read and write) itself."""
    left_out = set(without)
    fields: dict[str, Any] = {
        key: (field.annotation, field) for key, field in config.model_fields.items() if key not in left_out
    }
    return create_model(
        name, __base__=StrictModel, __doc__=f"{config.__name__} without {sorted(left_out)}", **fields
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the choice closest to `word`, or '' when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def builtin_config_path(name: str) -> Path | None:
    """The path of a built-in config such as `slm` or `toolcall.yaml`, if there is one."""
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    path = BUILTIN_DIR / f"{stem}.yaml"
    return path if path.is_file() and "/" not in name else None


def read_yaml(spec: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a file path or a built-in config name."""
    path = Path(spec)
    if not path.is_file():
        builtin = builtin_config_path(str(spec))
        if builtin is None:
            known = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))
            raise ConfigError(f"config file not found: {spec} (built-in configs: {', '.join(known)})")
        path = builtin
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, not {type(data).__name__}")
    return data


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    # Walk the model along the error location to the keys that were allowed there.
    fields: Mapping[str, Any] = model.model_fields
    for part in loc[:-1]:
        field = fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = annotation.model_fields
        else:
            return []
    return list(fields)


def validate(model: type[M], data: Mapping[str, Any], *, where: str = "") -> M:
    """Validate `data` as `model`, turning pydantic's errors into a ConfigError that names each key."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in ((where,) if where else ()) + loc)
            if err["type"] == "extra_forbidden":
                lines.append(f"unknown config key {key!r}{did_you_mean(loc[-1], _allowed_keys(model, loc))}")
            else:
                lines.append(f"config key {key!r}: {err['msg']}")
        raise ConfigError("; ".join(lines)) from None
