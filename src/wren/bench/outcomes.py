"""What an instance's exit status says: an outcome of the agent's work, or an infrastructure failure.

Agent outcomes (submitted, a limit hit, format errors, a history that outgrew the context window)
are results about the task. Everything else (a model nobody answers for, a model that rejects the
requests, a workspace or environment that would not start, a bug) says nothing about the task:
`wren batch` exits non-zero for those, names their kinds, and retries them when run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wren.exceptions import ModelError
from wren.models.errors import RetryableModelError

UNREACHABLE = "model unreachable"
"""Nobody answered for the model after its retries (refused, timed out, 5xx, rate-limited)."""
MODEL = "model error"
"""The model rejected the requests (key, name, bad request) or is not known."""
ENVIRONMENT = "environment error"
"""The workspace or environment failed, before the agent started or under it."""
OTHER = "error"
"""An unexpected exception."""
# Exit statuses that are verdicts on the agent's work (LimitsExceeded covers format errors too;
# BudgetSpent: a search used its model calls without a finished run).
AGENT_OUTCOMES = frozenset({"Submitted", "LimitsExceeded", "ContextWindowExceeded", "BudgetSpent"})
# Exceptions raised by environments and workspaces, by name (the agent records only the name).
ENVIRONMENT_ERRORS = frozenset({"EnvironmentStartError", "WorkspaceError"})


def _subclass_names(cls: type) -> set[str]:
    names = {cls.__name__}
    for sub in cls.__subclasses__():
        names |= _subclass_names(sub)
    return names


def failure_kind(exit_status: str) -> str | None:
    """None for an agent outcome, else the kind of infrastructure failure the exit status names."""
    if exit_status in AGENT_OUTCOMES:
        return None
    if exit_status in _subclass_names(RetryableModelError):
        return UNREACHABLE
    if exit_status in _subclass_names(ModelError):
        return MODEL
    if exit_status in ENVIRONMENT_ERRORS:
        return ENVIRONMENT
    return OTHER


def entry_failure(entry: dict[str, Any]) -> str | None:
    """The failure kind of one `exit_statuses.json` entry (its own `failure`, else from its status)."""
    if "failure" in entry:
        return entry["failure"]
    return failure_kind(entry.get("exit_status", "Error"))


@dataclass
class FailureGroup:
    """The instances that failed with one kind of infrastructure failure."""

    kind: str
    instance_ids: list[str]
    statuses: list[str]
    first_error: str

    def line(self, width: int = 100) -> str:
        """One line of at most `width` characters: kind, count, exit statuses and the first error."""
        statuses = "/".join(sorted(set(self.statuses)))
        error = " ".join(self.first_error.split())
        if error.startswith(f"{statuses}: "):
            error = error[len(statuses) + 2 :]  # the agent's reason repeats the exception's name
        text = f"{self.kind}: {len(self.instance_ids)} ({statuses}){': ' + error if error else ''}"
        return text if len(text) <= width else text[: width - 3] + "..."


def failure_groups(statuses: dict[str, dict[str, Any]]) -> list[FailureGroup]:
    """Infrastructure failures among `exit_statuses.json` entries, grouped by kind, most common first."""
    groups: dict[str, FailureGroup] = {}
    for instance_id, entry in sorted(statuses.items()):
        kind = entry_failure(entry)
        if kind is None:
            continue
        group = groups.setdefault(kind, FailureGroup(kind, [], [], ""))
        group.instance_ids.append(instance_id)
        group.statuses.append(entry.get("exit_status", "Error"))
        group.first_error = group.first_error or str(entry.get("error") or "")
    return sorted(groups.values(), key=lambda g: (-len(g.instance_ids), g.kind))


def hint(group: FailureGroup, *, api_base: str | None, output_dir: str) -> str:
    """What to do about the most common failure."""
    log = f"{output_dir}/{group.instance_ids[0]}/{group.instance_ids[0]}.log"
    if group.kind == UNREACHABLE:
        where = f"at {api_base}" if api_base else "for the model"
        return (
            f"nothing answered {where}: start its server, or fix -c model.api_base=URL "
            "(`wren models check` tries it); running the batch again retries these instances"
        )
    if group.kind == MODEL:
        return (
            "the model rejected the requests: check -m/--slm, model.api_key and model.api_base "
            f"(`wren models check` tries them); details in {log}"
        )
    if group.kind == ENVIRONMENT:
        return f"the workspace or environment failed (--repos, --env, --image?); details in {log}"
    return f"an unexpected error; its traceback is in {log}"
