"""Regenerate the SVG screenshots in docs/screenshots: `python -m wren.ui.screenshots docs/screenshots`.

Each picture is a real session of the app, driven by Textual's pilot: a scripted model fixes a planted
bug in a throwaway git repo (the commands really run), and the inspector reads the runs it recorded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZE = (120, 34)
TASK = "add() in calc.py subtracts instead of adding; fix it."
BUGGY = "def add(a, b):\n    return a - b\n"


def _bash(command: str, thought: str) -> str:
    return f"THOUGHT: {thought}\n\n```bash\n{command}\n```"


FIX = [
    _bash("cat calc.py", "I will read the function first."),
    _bash("sed -i 's/a - b/a + b/' calc.py", "add() subtracts; it must add."),
    _bash("python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo fixed", "Check the fix."),
    _bash(
        "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git add -A && git diff --cached", "Fixed; submitting."
    ),
]


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "calc.py").write_text(BUGGY)
    git = [
        "git",
        "-c",
        "user.email=wren@example.com",
        "-c",
        "user.name=wren",
        "-c",
        "init.defaultBranch=main",
    ]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-qm", "initial"], cwd=path, check=True)
    return path


def _model(outputs: list[str], cost: float) -> Any:
    from wren.models.scripted import ScriptedModel

    class CountingModel(ScriptedModel):
        """The scripted model, reporting token counts estimated from the text (4 characters a token)."""

        def query(self, messages: list[dict], **kwargs: Any) -> dict:
            message = super().query(messages, **kwargs)
            message["extra"]["prompt_tokens"] = len(json.dumps(messages)) // 4
            message["extra"]["completion_tokens"] = len(message["content"]) // 4
            return message

    return CountingModel(outputs=outputs, cost_per_call=cost, name="qwen2.5-coder-7b")


async def _until(pilot: Any, condition: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not reach the state to photograph")
        await pilot.pause(0.05)
    await pilot.pause(0.3)


async def tui_screenshots(out: Path, work: Path) -> list[Path]:
    from wren.agents.interactive import InteractiveAgent, InteractiveAgentConfig
    from wren.config.loader import read_yaml, validate
    from wren.environments.local import LocalEnvironment
    from wren.ui.run_app import RunApp

    repo = make_repo(work / "tui-repo")
    config = validate(InteractiveAgentConfig, read_yaml("default")["agent"], where="agent")

    def start(hooks: list[Any], user: Any) -> Any:
        agent = InteractiveAgent(
            _model(FIX, 0.0012), LocalEnvironment(cwd=str(repo)), config=config, hooks=hooks, user=user
        )
        return agent.run(TASK)

    app = RunApp(start, config=config, task=TASK)
    shots = []
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.pending == "confirm")
        await pilot.press("enter")
        await _until(pilot, lambda: app.pending == "confirm" and app.n_calls == 2)
        shots.append(Path(app.save_screenshot("tui-confirm.svg", str(out))))
        await pilot.press("escape", "y")
        await _until(pilot, lambda: app.pending == "new_task")
        await pilot.press("enter")
        await _until(pilot, lambda: app.finished.is_set())
        await pilot.press("h")
        await pilot.pause(0.3)
        shots.append(Path(app.save_screenshot("tui-steps.svg", str(out))))
        await pilot.press("q")
    return shots


def record_runs(work: Path) -> Path:
    """Three recorded runs under work/runs: one submitted, one out of steps, one ended by a model error."""
    from wren.agents.default import DefaultAgent
    from wren.environments.local import LocalEnvironment
    from wren.trajectory import TrajectoryRecorder

    plans = {
        "calc-fix": (FIX, 0),
        "calc-wander": ([_bash("ls -la", "Look around."), _bash("grep -rn add .", "Find add.")] * 3, 4),
        "calc-model-down": (FIX[:2], 0),  # the model stops answering after two replies
    }
    logging.getLogger("wren.agent").setLevel(logging.CRITICAL)  # that run's ModelError is expected
    for name, (outputs, step_limit) in plans.items():
        repo = make_repo(work / "repos" / name)
        recorder = TrajectoryRecorder(
            work / "runs" / name, name, config={"model": {"name": "hosted_vllm/qwen2.5-coder-7b"}}
        )
        agent = DefaultAgent(
            _model(outputs, 0.0012), LocalEnvironment(cwd=str(repo)), hooks=[recorder], step_limit=step_limit
        )
        agent.run(TASK)
    return work / "runs"


async def inspector_screenshots(out: Path, work: Path) -> list[Path]:
    from wren.trajectory import find_runs
    from wren.ui.inspector import InspectorApp, RunListScreen, RunScreen
    from wren.ui.runs import load_runs

    app = InspectorApp(load_runs(find_runs(record_runs(work))))
    shots = []
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: isinstance(app.screen, RunListScreen))
        shots.append(Path(app.save_screenshot("inspect-list.svg", str(out))))
        screen = app.screen
        screen.open_run([r.name for r in screen.shown].index("calc-fix"))
        await _until(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("l", "l")
        await pilot.pause(0.3)
        shots.append(Path(app.save_screenshot("inspect-step.svg", str(out))))
        await pilot.press("d")
        await pilot.pause(0.3)
        shots.append(Path(app.save_screenshot("inspect-diff.svg", str(out))))
    return shots


def make_screenshots(out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shots = asyncio.run(tui_screenshots(out, work))
        shots += asyncio.run(inspector_screenshots(out, work))
    return shots


if __name__ == "__main__":
    for path in make_screenshots(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"):
        print(path)
