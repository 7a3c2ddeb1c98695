"""Options the user did not give: every command's optional settings default to None (or an empty list).

A command that also reads settings from YAML or `-c key=value` merges only what `given` returns on
top of them, so a default spelled on a command-line option never overrides the user's config; the
defaults live in the config models alone.
"""

from __future__ import annotations

from typing import Any


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave: those that are not None and not an empty list."""
    return {k: v for k, v in options.items() if v is not None and v != []}
