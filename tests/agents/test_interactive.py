"""The interactive agent on a real local shell in a temp git repo, with a scripted person answering.

The person is the only stand-in: the model is the deterministic ScriptedModel, the commands really run.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from tests.conftest import SUBMIT, bash
from wren.agents.config import AgentConfig
from wren.agents.interactive import InteractiveAgent, InteractiveAgentConfig, UserStopped
from wren.config.loader import read_yaml, validate
from wren.environments.local import LocalEnvironment
from wren.exceptions import ConfigError
from wren.models.scripted import ScriptedModel


class ScriptedUser:
    """Answers prompts from a list of (kind, answer); an exception class as the answer is raised."""

    def __init__(self, answers: list[tuple[str, object]]):
        self.answers = list(answers)
        self.asked: list[tuple[str, str]] = []
        self.told: list[str] = []

    def ask(self, prompt: str, *, kind: str) -> str:
        self.asked.append((kind, prompt))
        assert self.answers, f"unexpected {kind} prompt: {prompt}"
        expected, answer = self.answers.pop(0)
        assert kind == expected, f"asked {kind} ({prompt!r}) but the script expected {expected}"
        if isinstance(answer, type) and issubclass(answer, BaseException):
            raise answer
        return str(answer)

    def tell(self, text: str) -> None:
        self.told.append(text)


def make_agent(repo: Path, outputs: list, user: ScriptedUser | None, **overrides) -> InteractiveAgent:
    config = validate(InteractiveAgentConfig, read_yaml("default")["agent"] | overrides, where="agent")
    env = LocalEnvironment(cwd=str(repo), timeout=20)
    return InteractiveAgent(ScriptedModel(outputs=outputs), env, config=config, user=user)


def model_saw(agent: InteractiveAgent, text: str) -> bool:
    return any(text in str(m.get("content")) for m in agent.messages if m["role"] in ("user", "tool"))


def test_confirm_runs_on_enter_and_rejects_with_the_typed_reason(buggy_repo):
    answers = [
        ("confirm", ""),
        ("confirm", "do not delete files"),
        ("confirm", ""),
        ("confirm", ""),
        ("new_task", ""),
    ]
    user = ScriptedUser(answers)
    outputs = [bash("sed -i 's/a - b/a + b/' calc.py"), bash("rm calc.py"), bash("cat calc.py"), SUBMIT]
    agent = make_agent(buggy_repo, outputs, user)
    result = agent.run("fix add")
    assert result.exit_status == "Submitted"
    assert (buggy_repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n", (
        "the rejected `rm` must not run"
    )
    assert model_saw(agent, "rejected it with this message: do not delete files")
    assert "return a + b" in agent.messages[-3]["content"]  # the output of the confirmed `cat`
    assert "+    return a + b" in result.submission


def test_confirm_asks_about_the_redrawn_command_not_the_repeat(buggy_repo):
    user = ScriptedUser([("confirm", ""), ("confirm", ""), ("confirm", ""), ("new_task", "")])
    outputs = [bash("touch a"), bash("touch a"), bash("touch b"), SUBMIT]
    agent = make_agent(buggy_repo, outputs, user, resample={"tries": 1})
    assert agent.run("make files").exit_status == "Submitted"
    # Three confirmations for three commands run: the repeat was redrawn before anyone was asked.
    assert [kind for kind, _ in user.asked].count("confirm") == 3
    replies = [m for m in agent.messages if m["role"] == "assistant" and "extra" in m]
    assert [m["content"] for m in replies[-2:]] == [bash("touch b"), SUBMIT]
    assert replies[-2]["extra"]["resampled"] == [{"content": bash("touch a")}]
    assert (buggy_repo / "b").exists() and agent.n_steps == 3


def test_whitelisted_commands_skip_confirmation(buggy_repo):
    user = ScriptedUser([("confirm", ""), ("confirm", ""), ("new_task", "")])
    outputs = [bash("ls"), bash("git status --short"), bash("touch made.txt"), SUBMIT]
    agent = make_agent(buggy_repo, outputs, user, whitelist_actions=[r"ls\b", r"git (status|diff)"])
    assert agent.run("look around").exit_status == "Submitted"
    confirms = [prompt for kind, prompt in user.asked if kind == "confirm"]
    assert len(confirms) == 2, "only `touch` and the submit command are not whitelisted"
    assert (buggy_repo / "made.txt").exists()


def test_switch_to_yolo_runs_the_rest_without_asking(buggy_repo):
    user = ScriptedUser([("confirm", "/y"), ("new_task", "")])
    outputs = [bash("touch a"), bash("touch b"), bash("touch c"), SUBMIT]
    agent = make_agent(buggy_repo, outputs, user)
    assert agent.run("make files").exit_status == "Submitted"
    assert all((buggy_repo / n).exists() for n in "abc")
    assert agent.config.mode == "yolo"
    assert "Switched to yolo mode." in user.told


def test_human_mode_runs_typed_commands_then_hands_back_to_the_model(buggy_repo):
    user = ScriptedUser(
        [
            ("confirm", "/u"),  # reject the model's command and take over
            ("human", "echo typed-by-human > human.txt"),
            ("human", "/y"),  # back to the model, no more questions
            ("new_task", ""),
        ]
    )
    outputs = [bash("rm -rf ."), bash("cat human.txt"), SUBMIT]
    agent = make_agent(buggy_repo, outputs, user)
    result = agent.run("do it")
    assert result.exit_status == "Submitted"
    assert (buggy_repo / "human.txt").read_text() == "typed-by-human\n"
    assert (buggy_repo / "calc.py").exists()
    human = [m for m in agent.messages if (m.get("extra") or {}).get("source") == "human"]
    assert len(human) == 1 and "echo typed-by-human" in human[0]["content"]
    assert model_saw(agent, "typed-by-human")  # the model's `cat` output


def test_help_and_repeated_mode_ask_again(buggy_repo):
    user = ScriptedUser(
        [("confirm", "/h"), ("confirm", "/c"), ("confirm", ""), ("confirm", ""), ("new_task", "")]
    )
    agent = make_agent(buggy_repo, [bash("true"), SUBMIT], user)
    assert agent.run("x").exit_status == "Submitted"
    assert any("/u human mode" in t for t in user.told)
    assert "Already in confirm mode." in user.told


def test_new_task_after_submission_continues_the_run(buggy_repo):
    user = ScriptedUser([("new_task", "now also append hi to calc.py"), ("new_task", "")])
    outputs = [SUBMIT, bash("echo hi >> calc.py"), SUBMIT]
    agent = make_agent(buggy_repo, outputs, user, mode="yolo")
    result = agent.run("first task")
    assert result.exit_status == "Submitted"
    assert model_saw(agent, "The user gave a new task: now also append hi to calc.py")
    assert "+hi" in result.submission


def test_a_hit_limit_can_be_raised_or_ends_the_run(buggy_repo):
    user = ScriptedUser([("limit", "abc"), ("limit", "1"), ("limit", "3"), ("limit", "")])
    outputs = [bash("true")] * 5
    agent = make_agent(buggy_repo, outputs, user, mode="yolo", step_limit=2)
    result = agent.run("loop")
    assert result.exit_status == "LimitsExceeded"
    assert result.n_steps == 3
    assert agent.config.step_limit == 3
    assert "'abc' is not a number." in user.told
    assert any("must be larger than 2" in t for t in user.told)


def test_format_error_limit_can_be_raised(buggy_repo):
    user = ScriptedUser([("limit", "3"), ("new_task", "")])
    outputs = ["no action", "still none", SUBMIT]
    agent = make_agent(buggy_repo, outputs, user, mode="yolo", max_format_errors=2)
    assert agent.run("x").exit_status == "Submitted"
    assert agent.config.max_format_errors == 3


def _interrupt_when(path: Path, stop: threading.Event) -> None:
    """Send this process a real SIGINT (as Ctrl-C at a terminal does) once `path` exists."""
    while not stop.is_set():
        if path.exists():
            os.kill(os.getpid(), signal.SIGINT)
            return
        stop.wait(0.01)


def test_ctrl_c_during_a_command_lets_the_user_add_a_message(buggy_repo, tmp_path):
    user = ScriptedUser([("interrupt", "try a faster command")])
    started = tmp_path / "command-started"
    # The command says it runs (the handshake), then would run for a minute unless interrupted.
    command = bash(f"touch {started} && sleep 60")
    agent = make_agent(buggy_repo, [command, SUBMIT], user, mode="yolo", confirm_exit=False)
    stop = threading.Event()
    sender = threading.Thread(target=_interrupt_when, args=(started, stop), daemon=True)
    sender.start()
    try:
        result = agent.run("x")
    finally:
        stop.set()
        sender.join()
    assert result.exit_status == "Submitted"
    assert model_saw(agent, "The user interrupted with this message: try a faster command")


def test_ctrl_c_twice_stops_and_the_run_ends_interrupted(buggy_repo):
    user = ScriptedUser([("confirm", KeyboardInterrupt), ("interrupt", KeyboardInterrupt)])
    agent = make_agent(buggy_repo, [bash("touch x"), SUBMIT], user)
    result = agent.run("x")
    assert result.exit_status == "Interrupted"
    assert not (buggy_repo / "x").exists()
    assert agent.messages[-1]["role"] == "exit"


def test_stop_command_and_end_of_input_stop_the_run(buggy_repo):
    agent = make_agent(buggy_repo, [bash("touch x")], ScriptedUser([("confirm", "/q")]))
    assert agent.run("x").exit_status == "Interrupted"
    agent = make_agent(buggy_repo, [bash("touch x")], ScriptedUser([("confirm", EOFError)]))
    assert agent.run("x").exit_status == "Interrupted"
    assert not (buggy_repo / "x").exists()


def test_interrupt_requested_from_another_thread_is_handled_at_the_next_step(buggy_repo):
    user = ScriptedUser([("interrupt", ""), ("new_task", "")])
    agent = make_agent(buggy_repo, [bash("true"), SUBMIT], user, mode="yolo")
    agent.request_interrupt()
    assert agent.run("x").exit_status == "Submitted"
    assert model_saw(agent, "interrupted the run briefly")


def test_without_a_user_nothing_is_asked(buggy_repo):
    agent = make_agent(buggy_repo, [bash("true")] * 3, None, step_limit=2)  # mode confirm, but nobody to ask
    assert agent.run("x").exit_status == "LimitsExceeded"
    agent = make_agent(buggy_repo, [SUBMIT], None)
    assert agent.run("x").exit_status == "Submitted"


def test_config_validation():
    base = read_yaml("default")["agent"]
    with pytest.raises(ConfigError, match="agent.mode"):
        validate(InteractiveAgentConfig, base | {"mode": "careful"}, where="agent")
    with pytest.raises(ConfigError, match="unknown config key 'agent.whitelist'"):
        validate(InteractiveAgentConfig, base | {"whitelist": []}, where="agent")
    env = LocalEnvironment()
    with pytest.raises(ConfigError, match="human"):
        InteractiveAgent(ScriptedModel(outputs=[]), env, mode="human")
    # A plain AgentConfig is upgraded, keyword fields on top.
    agent = InteractiveAgent(ScriptedModel(outputs=[]), env, config=validate(AgentConfig, base), mode="yolo")
    assert isinstance(agent.config, InteractiveAgentConfig) and agent.config.mode == "yolo"


def test_user_stopped_is_a_terminating_status():
    assert UserStopped("x").exit_status == "Interrupted"


def test_ctrl_c_while_a_hook_prints_still_saves_the_trajectory(buggy_repo, tmp_path):
    from wren.trajectory import TrajectoryRecorder, read_run

    class SlowPrinter:  # Ctrl-C arrives while the second step is being printed
        def on_step(self, agent, record):
            if record["step"] == 2:
                raise KeyboardInterrupt

    agent = make_agent(buggy_repo, [bash("true")] * 5, ScriptedUser([]), mode="yolo")
    agent.hooks = [TrajectoryRecorder(tmp_path / "out", "run"), SlowPrinter()]
    result = agent.run("x")
    assert result.exit_status == "Interrupted" and result.n_steps == 2
    saved = read_run(tmp_path / "out" / "run.traj.json")
    assert saved.exit_status == "Interrupted" and saved.messages[-1]["role"] == "exit"
    jsonl = (tmp_path / "out" / "trajectory.jsonl").read_text()
    assert '"exit_status": "Interrupted"' in jsonl
