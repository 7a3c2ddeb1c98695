"""One registry for every component family (models, environments, gateway policies, synth mutators).

A registry maps short names to classes, given as the class itself or as `"module:Class"` so that
looking one up imports only its own module. A dotted path (`pkg.mod:Class` or `pkg.mod.Class`)
names a class that is not registered. Every failure is one ConfigError naming the config key and
the known names.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from wren.exceptions import ConfigError
from wren.validation import did_you_mean

T = TypeVar("T")


def split_dotted(path: str) -> tuple[str, str]:
    """`pkg.mod:Class` or `pkg.mod.Class` -> ("pkg.mod", "Class")."""
    module, sep, attr = path.partition(":")
    if not sep:
        module, _, attr = path.rpartition(".")
    return module, attr


class Registry(Generic[T]):
    """Short names of one family of classes, and the one way to turn a name into a class."""

    def __init__(self, key: str, entries: Mapping[str, str | type[T]], *, base: type[T] | None = None):
        self.key = key
        """The config key whose values this registry resolves (named in errors)."""
        self.base = base
        """The class every resolved class must derive from, if any."""
        self._entries: dict[str, str | type[T]] = dict(entries)

    def register(self, name: str, target: str | type[T]) -> None:
        """Make `name` resolve to `target` (a class or "module:Class")."""
        self._entries[name] = target

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[str, type[T]]]:
        """(name, class) of every registered entry, importing each."""
        for name in self._entries:
            yield name, self.get(name)

    def _unknown(self, name: str) -> ConfigError:
        known = ", ".join(sorted(self._entries))
        return ConfigError(
            f"unknown {self.key} {name!r}{did_you_mean(name, self._entries)}; "
            f"known: {known}, or a dotted path pkg.module:Class"
        )

    def check(self, name: str) -> str:
        """`name` if it is registered or looks like a dotted path (resolved later); else the error."""
        if name in self._entries or (isinstance(name, str) and all(split_dotted(name))):
            return name
        raise self._unknown(name)

    def get(self, name: str) -> type[T]:
        """The class `name` stands for: a registered short name, or a dotted path."""
        target = self._entries.get(name)
        if target is None:
            if not isinstance(name, str) or not all(split_dotted(name)):
                raise self._unknown(name)
            target = name
        if isinstance(target, str):
            module, attr = split_dotted(target)
            try:
                cls = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError, ValueError) as e:
                raise ConfigError(f"cannot load {self.key} {name!r}: {e}") from None
        else:
            cls = target
        if not isinstance(cls, type) or (self.base is not None and not issubclass(cls, self.base)):
            base = f"{self.base.__module__}.{self.base.__name__} " if self.base is not None else ""
            raise ConfigError(f"{self.key} {name!r} is not a {base}class")
        return cls
