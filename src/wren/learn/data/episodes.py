"""An episode: one run's trajectory, its prediction and the judge's verdict, joined by instance id.

Runs are read through one function (`read_run`) so that where trajectories come from can change
in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wren.bench.rundir import RunDir
from wren.exceptions import FormatError
from wren.models.actions import parse_action


def read_run(path: str | Path) -> Any:
    """A saved run (`*.traj.json`, `trajectory.jsonl`) as the trajectory package reads it."""
    from wren.trajectory import read_run as read

    return read(path)


@dataclass
class Episode:
    """One agent run on one task, with what it produced and, once judged, the verdict."""

    instance_id: str
    messages: list[dict]
    exit_status: str
    patch: str
    verdict: dict[str, Any] | None = None
    """The instance's entry in `wren eval`'s report (`outcome`, `tests_status`, ...); None if not judged."""
    instance: dict[str, Any] | None = None
    """The task (a dataset instance: gold `patch`, FAIL_TO_PASS, ...); None if not known."""
    source: str = ""
    """Where the run was read from."""
    action_format: str = "text"
    opening: int = 0
    """Messages before the first step (system, few-shot demonstrations, task): never the model's work."""
    history: dict[str, Any] = field(default_factory=dict)
    """The run's history settings (`agent.history`): how its prompts were shortened; {} for none."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """The judge's outcome (resolved, unresolved, patch_failed, error), or `unjudged`."""
        return (self.verdict or {}).get("outcome", "unjudged")

    @property
    def resolved(self) -> bool:
        return self.outcome == "resolved"

    @property
    def submitted(self) -> bool:
        return self.exit_status == "Submitted"

    def assistant_indices(self) -> list[int]:
        return [i for i, m in enumerate(self.messages) if i >= self.opening and m.get("role") == "assistant"]

    @property
    def n_steps(self) -> int:
        return len(self.assistant_indices())

    def cut_steps(self) -> list[int]:
        """Indices of assistant messages the server ended at the token limit (finish_reason `length`).
        One cut inside an open bash block still parses as an action, so it is no format error."""
        return [
            i
            for i in self.assistant_indices()
            if (self.messages[i].get("extra") or {}).get("finish_reason") == "length"
        ]

    def shown(self, messages: list[dict] | None = None) -> list[dict]:
        """`messages` (default: the whole run) as the run's history settings showed them to the model.

        For a prefix that ends before a reply, this is the prompt of that reply. For a whole run it
        is the last reply's prompt: exact for every reply while no observation has been stubbed
        (runs of up to keep_last + block steps), an earlier reply having been shown more otherwise.
        """
        from wren.agents.config import HistoryConfig
        from wren.agents.history import shorten

        messages = self.messages if messages is None else messages
        return shorten(messages, self.opening, HistoryConfig.model_validate(self.history))

    def format_error_steps(self) -> list[int]:
        """Indices of assistant messages that do not hold exactly one action, as the agent parses it."""
        bad = []
        for i in self.assistant_indices():
            try:
                parse_action(self.messages[i], self.action_format)
            except FormatError:
                bad.append(i)
        return bad


def _instances(dataset: str | Path | None) -> dict[str, dict[str, Any]]:
    if not dataset:
        return {}
    from wren.bench.datasets import load_instances

    return {inst["instance_id"]: inst for inst in load_instances(str(dataset))}


def load_episodes(
    run_dir: str | Path | RunDir,
    *,
    report: str | Path | None = None,
    dataset: str | Path | None = None,
) -> list[Episode]:
    """The episodes of a `wren batch` (or `wren run`) directory, with verdicts from `report`."""
    rundir = (run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)).require()
    preds = rundir.read_preds()
    verdicts = rundir.read_verdicts(report)
    instances = _instances(dataset)
    episodes = []
    for instance_id, path in sorted(rundir.trajectories().items()):
        run = read_run(path)
        agent = run.config.get("agent") or {}
        action_format = agent.get("action_format", "text")
        patch = (preds.get(instance_id) or {}).get("model_patch")
        episodes.append(
            Episode(
                instance_id=instance_id,
                messages=run.messages,
                exit_status=run.exit_status,
                patch=patch if patch is not None else run.submission,
                verdict=verdicts.get(instance_id),
                instance=instances.get(instance_id),
                source=str(path),
                action_format=action_format,
                opening=len(run.opening),
                history=agent.get("history") or {},
            )
        )
    return episodes


def load_judged_episodes(
    run_dir: str | Path | RunDir,
    *,
    report: str | Path | None = None,
    dataset: str | Path | None = None,
) -> list[Episode]:
    """The episodes of a run directory with the verdicts of `report`, by default those of the
    judge's report in the run directory; a report not (yet) written gives no verdicts."""
    rundir = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    path = Path(report) if report else rundir.report
    return load_episodes(rundir, report=path if path.is_file() else None, dataset=dataset)
