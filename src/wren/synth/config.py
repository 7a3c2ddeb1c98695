"""Settings of `wren synth` and the figures a run reports."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import Field

from wren.validation import StrictModel


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class SynthConfig(StrictModel):
    """Settings of `wren synth`."""

    repo_dir: str
    """The repository to break: Python code with pytest tests."""
    output: str
    """Tasks JSONL file; appended to, and tasks already in it are not made again."""
    repos_dir: str = ""
    """Directory for the git snapshot (entry `{owner}__{name}`); '' = `repos` beside the output."""
    owner: str = "local"
    """Owner part of the tasks' `repo` field."""
    name: str = ""
    """Name part of the tasks' `repo` field ('' = the repository directory's name)."""
    max_tasks: int = Field(default=0, ge=0)
    """Stop after this many tasks from this repository in the output (0 = one pass over all candidates)."""
    seed: int = 0
    """Seed of the order in which candidates are tried."""
    workers: int = Field(default_factory=_default_workers, ge=1)
    """Candidates validated at once, each in its own copy of the repository."""
    mutators: list[str] = Field(default_factory=list)
    """Mutators to use, by name or dotted path ([] = all built-in ones)."""
    test_cmd: str = ""
    """pytest command run in the repository root ('' = `python -m pytest -rA`, with PYTHONPATH=src for a src layout)."""
    python: str = ""
    """Interpreter that runs the tests, with pytest and the repo's dependencies ('' = one in the
    environment the judge builds for the tasks: pytest and the repo's declared dependencies)."""
    env_cache: str = ""
    """Directory of the judge's shared virtualenvs, where that environment is built or found ('' =
    the judge's default, as `bench.workspace.env_cache`)."""
    timeout: float = Field(default=60.0, gt=0)
    """Most seconds one validation run may take (each is also capped at 10x its tests' time plus a floor)."""
    suite_timeout: float = Field(default=1800.0, gt=0)
    """Most seconds one clean run of the whole suite may take."""
    baseline_runs: int = Field(default=2, ge=1)
    """Clean runs of the suite; a test whose outcome differs between them is flaky and never listed."""
    confirm_runs: int = Field(default=1, ge=0)
    """Reruns of a candidate's failing tests; a test must fail every time to count."""
    cache_dir: str = ""
    """Where the baseline and the attempts log go ('' = `.wren-synth` beside the output)."""
    overwrite: bool = False
    """Start over: replace the output file and forget earlier attempts."""
    model: str | dict[str, Any] | None = None
    """Model that writes problem statements (name or config); None = the template."""
    slm: str = ""
    """SLM provider or catalog name that writes problem statements."""
    hint_level: int = Field(default=1, ge=0, le=4)
    """Rung of the hint ladder the problem statements are written at (0 to 4; see `wren.synth.ladder`)."""
    progress: bool = True
    """Show a progress bar on stderr."""


@dataclass
class SynthReport:
    """What a run did: counts, yield per mutator and timings."""

    repo: str = ""
    snapshot: str = ""
    repos_entry: str = ""
    output: str = ""
    tests: int = 0
    stable_tests: int = 0
    flaky_tests: list[str] = field(default_factory=list)
    candidates: int = 0
    reachable: int = 0
    skipped_done: int = 0
    tried: int = 0
    validated: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    per_mutator: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    baseline_cached: bool = False

    @property
    def yield_rate(self) -> float:
        return self.validated / self.tried if self.tried else 0.0

    @property
    def tasks_per_minute(self) -> float:
        total = self.seconds.get("total", 0.0)
        return 60.0 * self.validated / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "yield": round(self.yield_rate, 4),
            "tasks_per_minute": round(self.tasks_per_minute, 2),
        }
