"""The `bench` section of a Wren config: what `wren batch` and `wren eval` add to a run's config."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from wren.bench.workspace import WorkspaceConfig
from wren.config.schema import WrenConfig
from wren.validation import StrictModel


class BenchConfig(StrictModel):
    """Settings of batch runs and evaluations."""

    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    """Where instance checkouts come from and how they are set up."""
    specs: dict[str, Any] = Field(default_factory=dict)
    """Per-repo overrides of install/test commands: {owner/name: {...}} or {owner/name: {version: {...}}}."""
    spec_overrides: str = ""
    """Versioned overrides file of SWE-bench specs ('' = the one shipped with Wren, 'none' = none)."""
    eval_timeout: float = Field(default=1800.0, gt=0)
    """Seconds the tests of one instance may run in `wren eval`."""
    eval_retry_timeout: float = Field(default=0.0, ge=0)
    """Seconds for a second try, alone, of each instance whose tests timed out (0: none)."""
    eval_empty_patches: Literal["run", "unresolved"] = "run"
    """`wren eval` on an empty patch: run its tests, or call it unresolved without (as SWE-bench does)."""
    task_template: str = "{{ problem_statement }}"
    """Jinja2 template of the task given to the agent; instance fields are its variables."""


class BenchWrenConfig(WrenConfig):
    """A Wren config with the `bench` section."""

    bench: BenchConfig = Field(default_factory=BenchConfig)
    """Batch and evaluation settings."""
