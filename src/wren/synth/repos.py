"""The PyPI packages Wren synthesizes its training and held-out tasks from (`training_repos.yaml`).

Each is a pure-Python sdist whose tests run under pytest offline with nothing but pytest installed.
A held-out repository is never used for training, so that results on it measure what a model
learnt rather than what it saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from wren.exceptions import ConfigError

REPOS_FILE = Path(__file__).with_name("training_repos.yaml")


class Measured(BaseModel):
    """What `wren synth --max N` gave on the repository (see docs/results for the run)."""

    model_config = ConfigDict(extra="forbid")

    max_tasks: int = Field(ge=1)
    tried: int = Field(ge=0)
    validated: int = Field(ge=0)
    seconds: float = Field(ge=0)
    """Wall time of the whole run, clean baseline included."""


class TrainingRepo(BaseModel):
    """One source of synthesized tasks."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """PyPI project name."""
    version: str
    role: Literal["training", "heldout"]
    why: str
    tests: int = Field(default=0, ge=0)
    """Tests pytest collects from the sdist."""
    test_cmd: str = ""
    """`wren synth --test-cmd` when the default does not fit ('' = the default)."""
    measured: Measured | None = None

    @property
    def spec(self) -> str:
        """`name==version`, as pip takes it."""
        return f"{self.name}=={self.version}"


class RepoList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repos: list[TrainingRepo]


def load_repos(path: str | Path | None = None, role: str | None = None) -> list[TrainingRepo]:
    """The repositories of the list (the built-in one by default), optionally only those of `role`."""
    source = Path(path) if path else REPOS_FILE
    try:
        data = RepoList.model_validate(yaml.safe_load(source.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise ConfigError(f"repository list {source}: {e}") from None
    names = [r.name for r in data.repos]
    doubles = sorted({n for n in names if names.count(n) > 1})
    if doubles:
        raise ConfigError(f"repository list {source}: listed twice: {', '.join(doubles)}")
    return [r for r in data.repos if role is None or r.role == role]
