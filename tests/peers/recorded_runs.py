"""Runs recorded for real: Wren's agent with the real recorder, and mini-swe-agent 2.x's own agent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import BUGGY_CALC, CALC_TEST, SUBMIT, bash
from tests.peers.git_repo import make_git_repo
from wren.agents.default import DefaultAgent
from wren.environments.local import LocalEnvironment
from wren.models.scripted import ScriptedModel
from wren.trajectory import TrajectoryRecorder

FIX = [
    bash("cat calc.py", "Look at the code."),
    bash("grep -n 'a - b' calc.py", "Find the subtraction."),
    bash("sed -i 's/a - b/a + b/' calc.py", "add subtracts; fix it."),
    bash("python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo fixed", "Check the fix."),
    SUBMIT,
]


def record_wren_run(
    root: Path, name: str, outputs: list, *, step_limit: int = 0, cost: float = 0.01, **agent_kwargs: Any
) -> Path:
    repo = make_git_repo(root / "repos" / name, {"calc.py": BUGGY_CALC, "test_calc.py": CALC_TEST})
    out = root / "runs" / name
    recorder = TrajectoryRecorder(out, name, config={"model": {"name": f"scripted/{name}-model"}})
    model = ScriptedModel(outputs=outputs, cost_per_call=cost)
    agent = DefaultAgent(
        model, LocalEnvironment(cwd=str(repo)), hooks=[recorder], step_limit=step_limit, **agent_kwargs
    )
    recorder.config["agent"] = agent.config.model_dump()  # as `wren run` records it
    agent.run("add() subtracts instead of adding; fix it.")
    return out


def record_mini_run(root: Path, name: str) -> Path:
    """A trajectory written by mini-swe-agent 2.x's own agent, model and environment."""
    os.environ.setdefault("MSWEA_GLOBAL_CONFIG_DIR", str(root / "mini-config"))
    os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")
    from minisweagent.agents.default import DefaultAgent as MiniAgent
    from minisweagent.environments.local import LocalEnvironment as MiniEnvironment
    from minisweagent.models.test_models import DeterministicModel, make_output

    repo = make_git_repo(root / "repos" / name, {"calc.py": BUGGY_CALC})
    outputs = [
        make_output(
            "THOUGHT: read it\n\n```mswea_bash_command\ncat calc.py\n```", [{"command": "cat calc.py"}]
        ),
        make_output(
            "THOUGHT: fix\n\n```mswea_bash_command\nsed -i 's/a - b/a + b/' calc.py\n```",
            [{"command": "sed -i 's/a - b/a + b/' calc.py"}],
        ),
        make_output(
            "THOUGHT: submit\n\n```mswea_bash_command\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff\n```",
            [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff"}],
        ),
    ]
    agent = MiniAgent(
        DeterministicModel(outputs=outputs, cost_per_call=0.5, model_name="mini-deterministic"),
        MiniEnvironment(cwd=str(repo)),
        system_template="You are a helpful assistant.",
        instance_template="Please solve this issue: {{task}}",
    )
    agent.run("add() subtracts")
    path = root / "mini" / name / f"{name}.traj.json"
    agent.save(path)
    return path
