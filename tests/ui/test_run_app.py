"""The TUI of `wren run -v`, driven key by key with Textual's pilot.

The agent is the real one on its worker thread, querying the scripted OpenAI-compatible server over HTTP
and running commands in a temp git repo; the trajectory is written by the real recorder.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import SUBMIT, bash
from tests.ui.screen import screen_text, wait_for
from wren.agents.interactive import InteractiveAgent
from wren.config.loader import load_config_dict, validate
from wren.config.schema import InteractiveWrenConfig
from wren.environments.local import LocalEnvironment
from wren.run import run_agent
from wren.ui.run_app import RunApp

SIZE = (110, 36)
TASK = "add() subtracts instead of adding; fix it."


def make_app(server, repo: Path, out: Path, *overrides: str, ask: bool = True) -> RunApp:
    specs = [
        f"model.name=openai/{server.model}",
        f"model.api_base={server.url}",
        "model.api_key=sk-test",
        *overrides,
    ]
    cfg = validate(InteractiveWrenConfig, load_config_dict(specs, environ={}))
    env = LocalEnvironment(cwd=str(repo), timeout=20)

    def start(hooks, user):
        return run_agent(
            cfg, TASK, env=env, output_dir=out, hooks=hooks, agent_class=InteractiveAgent, user=user
        )

    return RunApp(start, config=cfg.agent, task=TASK, ask=ask)


def sent_to_model(server, text: str) -> bool:
    return any(text in json.dumps(r["body"].get("messages")) for r in server.requests)


def scenario(coro) -> None:
    asyncio.run(asyncio.wait_for(coro, 150))


def test_confirm_reject_switch_to_yolo_and_step_keys(buggy_repo, scripted_server, tmp_path):
    server = scripted_server(
        [
            bash("cat calc.py", "Look first."),
            bash("rm calc.py", "Start over."),
            bash("sed -i 's/a - b/a + b/' calc.py", "Fix it."),
            bash("python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo fixed", "Check."),
            SUBMIT,
        ]
    )
    app = make_app(server, buggy_repo, tmp_path / "out")

    async def run():
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.pending == "confirm", what="the first confirmation")
            text = screen_text(app)
            assert "cat calc.py" in text and "Run this command?" in text
            assert "mode confirm" in text and "1 calls" in text and "waiting for you" in text
            assert app.prompt_tokens > 0 and f"{app.prompt_tokens:,}↑" in text, (
                "token counts from the server's usage"
            )

            await pilot.press("escape")  # out of the input: keys act on the app again
            assert app.focused is not app.query_one("#line")
            await pilot.press("i")  # back into it
            assert app.focused is app.query_one("#line")
            await pilot.press("enter")  # run it
            await wait_for(pilot, lambda: app.pending == "confirm" and "rm calc.py" in screen_text(app))
            assert "return a - b" not in screen_text(app), (
                "a new step is shown: the old observation is on page 1"
            )
            await pilot.press(*"keep the file", "enter")  # reject, with a reason
            await wait_for(pilot, lambda: app.pending == "confirm" and "sed -i" in screen_text(app))
            assert sent_to_model(server, "rejected it with this message: keep the file")
            assert (buggy_repo / "calc.py").exists()

            await pilot.press("escape", "y")  # yolo: runs this command and the rest
            await wait_for(pilot, lambda: app.pending == "new_task", what="the question after the submission")
            assert "mode yolo" in screen_text(app) and "The agent submitted" in screen_text(app)
            await pilot.press("enter")  # finish
            await wait_for(pilot, lambda: "finished: Submitted" in screen_text(app))
            assert "5 calls" in screen_text(app)

            await pilot.press("0")
            assert "step 0/5" in screen_text(app) and "SYSTEM" in screen_text(app)
            messages = app.query_one("#messages")
            await pilot.resize_terminal(110, 24)  # now the opening page is taller than the screen
            await wait_for(pilot, lambda: messages.max_scroll_y > 6, what="the opening page laid out")
            await pilot.press("j", "j")
            assert messages.scroll_target_y == 6
            await pilot.press("k")
            assert messages.scroll_target_y == 3
            await pilot.resize_terminal(*SIZE)
            await pilot.press("l")
            assert "step 1/5" in screen_text(app) and "cat calc.py" in screen_text(app)
            assert "return a - b" in screen_text(app)
            await pilot.press("l", "l")
            assert "step 3/5" in screen_text(app) and "sed -i" in screen_text(app)
            await pilot.press("h")
            assert "step 2/5" in screen_text(app) and "keep the file" in screen_text(app)
            await pilot.press("$")
            assert "step 5/5 (live)" in screen_text(app) and "EXIT · Submitted" in screen_text(app)
            await pilot.press("q")

    scenario(run())
    result = app.wait_result()
    assert result.exit_status == "Submitted" and "+    return a + b" in result.submission
    traj = json.loads((tmp_path / "out" / "run.traj.json").read_text())
    assert traj["info"]["exit_status"] == "Submitted"
    assert traj["info"]["config"]["agent"]["mode"] == "confirm", "the config the run started with"


def test_human_mode_and_multiline_input(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([bash("rm -rf .", "Clean up."), bash("cat human.txt"), SUBMIT])
    app = make_app(server, buggy_repo, tmp_path / "out")

    async def run():
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.pending == "confirm")
            await pilot.press("escape", "u")  # take over: the proposal is rejected
            await wait_for(pilot, lambda: app.pending == "human", what="the human prompt")
            assert "mode human" in screen_text(app) and "Type a command" in screen_text(app)
            assert (buggy_repo / "calc.py").exists(), "the rejected rm -rf did not run"

            await pilot.press(*"echo one > human.txt", "enter")
            await wait_for(pilot, lambda: app.pending == "human" and "HUMAN" in screen_text(app))
            assert (buggy_repo / "human.txt").read_text() == "one\n"
            line = app.query_one("#line")
            await pilot.press("up")  # earlier answers come back
            assert line.value == "echo one > human.txt"
            await pilot.press("down")
            assert line.value == ""

            await pilot.press("ctrl+t")  # multi-line input
            assert app.multiline and app.query_one("#multi").display and not app.query_one("#line").display
            assert app.focused is app.query_one("#multi")
            await pilot.press(*"echo two >> human.txt", "enter", *"echo three >> human.txt", "ctrl+s")
            await wait_for(pilot, lambda: (buggy_repo / "human.txt").read_text() == "one\ntwo\nthree\n")
            await wait_for(pilot, lambda: app.pending == "human")
            await pilot.press("ctrl+t")  # back to one line
            assert not app.multiline and app.query_one("#line").display

            await pilot.press("escape", "c")  # back to the model, asking before each command
            await wait_for(pilot, lambda: app.pending == "confirm" and "cat human.txt" in screen_text(app))
            assert "mode confirm" in screen_text(app)
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.pending == "confirm" and "COMPLETE_TASK" in screen_text(app))
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.pending == "new_task")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.finished.is_set())

    scenario(run())
    assert app.wait_result().exit_status == "Submitted"
    assert sent_to_model(server, "one\\ntwo\\nthree")
    assert sent_to_model(server, "the user switched to human mode")


def test_ui_stays_live_during_a_slow_model_call_and_ctrl_c_interrupts(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([{"content": bash("echo first"), "delay": 2.0}, bash("echo second"), SUBMIT])
    app = make_app(server, buggy_repo, tmp_path / "out", "agent.mode=yolo", ask=False)  # as with --yolo

    async def run():
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "waiting for the model" in screen_text(app))
            # The model has not answered, yet the keys act at once.
            await pilot.press("c")
            assert "mode confirm" in screen_text(app) and app.n_calls == 0
            await pilot.press("ctrl+c")
            assert app.n_calls == 0, "the interface did not wait for the model"
            await wait_for(pilot, lambda: app.pending == "interrupt", what="the interrupt prompt")
            await pilot.press(*"use printf", "enter")
            await wait_for(pilot, lambda: app.pending == "confirm" and "echo second" in screen_text(app))
            assert sent_to_model(server, "The user interrupted with this message: use printf")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.pending == "confirm" and "COMPLETE_TASK" in screen_text(app))
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.pending == "new_task")
            await pilot.press(*"/q", "enter")
            await wait_for(pilot, lambda: app.finished.is_set())

    scenario(run())
    assert app.wait_result().exit_status == "Submitted"


def test_quitting_mid_run_stops_the_agent_and_saves_the_trajectory(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([{"content": bash("echo slow"), "delay": 1.0}])
    app = make_app(server, buggy_repo, tmp_path / "out", "agent.mode=yolo")

    async def run():
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: "waiting for the model" in screen_text(app))
            await pilot.press("q")

    scenario(run())
    result = app.wait_result(timeout=20)
    assert result is not None and result.exit_status == "Interrupted"
    traj = json.loads((tmp_path / "out" / "run.traj.json").read_text())
    assert traj["info"]["exit_status"] == "Interrupted"
