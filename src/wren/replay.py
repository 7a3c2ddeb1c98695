"""Re-executing a saved run's actions and finding where the observations differ."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wren.agents.config import AgentConfig, template_environment
from wren.exceptions import ExecutionTimeoutError, FormatError, Submitted
from wren.models.actions import parse_action
from wren.trajectory import Step, read_run
from wren.validation import read_yaml, validate


@dataclass
class ReplayStep:
    """One re-executed action and whether its observation matched the recorded one."""

    step: int
    action: str
    recorded: str
    replayed: str

    @property
    def same(self) -> bool:
        return self.recorded == self.replayed

    def diff(self, context: int = 2) -> str:
        lines = difflib.unified_diff(
            self.recorded.splitlines(),
            self.replayed.splitlines(),
            "recorded",
            "replayed",
            lineterm="",
            n=context,
        )
        return "\n".join(lines)


def recorded_steps(
    steps: list[Step], action_format: str, action_regex: str = ""
) -> list[tuple[int, str, str]]:
    """(step, action, recorded observation) for every model reply that held a valid action."""
    out = []
    for step in steps:
        if step.reply.get("role") != "assistant":
            continue
        try:
            action = parse_action(step.reply, action_format, action_regex)
        except FormatError:
            continue
        following = step.answers[0] if step.answers else {}
        if following.get("role") in ("user", "tool"):
            out.append((step.number, action.command, str(following.get("content") or "")))
        elif following.get("role") == "exit":
            out.append((step.number, action.command, "<submitted>\n" + str(following.get("content") or "")))
    return out


def replay(path: str | Path, env: Any) -> list[ReplayStep]:
    """Run each recorded action in `env` and render its observation with the run's own templates."""
    run = read_run(path)
    agent_data = run.config.get("agent") or read_yaml("default")["agent"]
    # Subclass configs (the interactive agent's mode, whitelist, ...) add fields replay does not use.
    agent_data = {k: v for k, v in agent_data.items() if k in AgentConfig.model_fields}
    config = validate(AgentConfig, agent_data, where="agent")
    jinja = template_environment()
    observation = jinja.from_string(config.action_observation_template)
    timeout = jinja.from_string(config.timeout_template)
    base_vars = {**env.get_template_vars(), **config.model_dump()}
    results = []
    for step, action, recorded in recorded_steps(run.steps, config.action_format, config.action_regex):
        try:
            out = env.execute(action)
            replayed = observation.render(**base_vars, action=action, **out)
        except Submitted as e:
            replayed = "<submitted>\n" + e.submission
        except ExecutionTimeoutError as e:
            replayed = timeout.render(**base_vars, action=action, output=e.output, timeout=e.timeout)
        results.append(ReplayStep(step, action, recorded, replayed))
    return results
