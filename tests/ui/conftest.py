"""Saved runs to look at: Wren runs recorded by the real recorder, and a run made by mini-swe-agent itself."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import BUGGY_CALC, CALC_TEST, SUBMIT, bash, make_git_repo
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


def record_wren_run(root: Path, name: str, outputs: list, *, step_limit: int = 0, cost: float = 0.01) -> Path:
    repo = make_git_repo(root / "repos" / name, {"calc.py": BUGGY_CALC, "test_calc.py": CALC_TEST})
    out = root / "runs" / name
    recorder = TrajectoryRecorder(out, name, config={"model": {"name": f"scripted/{name}-model"}})
    model = ScriptedModel(outputs=outputs, cost_per_call=cost)
    agent = DefaultAgent(model, LocalEnvironment(cwd=str(repo)), hooks=[recorder], step_limit=step_limit)
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


@pytest.fixture(scope="session")
def saved_runs(tmp_path_factory) -> Path:
    """runs/: fixed (Submitted), looping (LimitsExceeded), crashed (only trajectory.jsonl); mini/: a mini-swe-agent run."""
    root = tmp_path_factory.mktemp("saved")
    record_wren_run(root, "calc-fixed", FIX)
    record_wren_run(root, "calc-looping", [bash("ls")] * 5, step_limit=3, cost=0.02)
    crashed = record_wren_run(root, "calc-crashed", FIX[:2], cost=0.0)
    # As if the process died during step 3: no final file, and no line for the step that ended it.
    (crashed / "calc-crashed.traj.json").unlink()
    lines = (crashed / "trajectory.jsonl").read_text().splitlines(keepends=True)
    (crashed / "trajectory.jsonl").write_text("".join(lines[:-1]))
    record_mini_run(root, "mini-calc")
    (root / "runs" / "broken").mkdir()
    (root / "runs" / "broken" / "broken.traj.json").write_text(json.dumps({"messages": "not a list"}))
    return root
