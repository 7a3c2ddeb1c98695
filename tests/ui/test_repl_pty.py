"""`wren run` at a real pseudo-terminal: real keystrokes (Enter, typed text, /y, Ctrl-C) into the real
command, against the scripted OpenAI-compatible server, in a temp git repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pexpect

from tests.conftest import SUBMIT, bash

CONFIRM = "Run this command?"
INPUT_LINE = r"\(/m multi-line\).*>"  # the prompt is read from here on
TIMEOUT = 60  # generous: the machine running the tests may be loaded


def spawn_wren(server, repo: Path, tmp_path: Path, *args: str) -> pexpect.spawn:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WREN_")}
    env |= {"WREN_HOME": str(tmp_path / "home"), "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    argv = [
        "-m", "wren.cli.main", "run", "-t", "add() subtracts instead of adding; fix it.",
        "-m", "openai/scripted-model", "-c", f"model.api_base={server.url}", "-c", "model.api_key=sk-test",
        "--cwd", str(repo), "-o", str(tmp_path / "out"), *args,
    ]  # fmt: skip
    child = pexpect.spawn(
        sys.executable, argv, env=env, dimensions=(40, 150), encoding="utf-8", timeout=TIMEOUT
    )
    child.logfile_read = (tmp_path / "terminal.log").open("w")
    return child


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def sent_to_model(server, text: str) -> bool:
    return any(text in json.dumps(r["body"].get("messages")) for r in server.requests)


def test_confirm_reject_with_a_comment_then_switch_to_yolo(buggy_repo, scripted_server, tmp_path):
    server = scripted_server(
        [
            bash("cat calc.py"),
            bash("rm calc.py", "Start over."),
            bash("sed -i 's/a - b/a + b/' calc.py"),
            bash("python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo fixed"),
            SUBMIT,
        ]
    )
    child = spawn_wren(server, buggy_repo, tmp_path)
    child.expect(CONFIRM)
    child.sendline("")  # Enter runs `cat calc.py`
    child.expect("return a - b")  # its output, printed
    child.expect(CONFIRM)
    child.sendline("keep the file, fix it in place")  # reject `rm calc.py`
    child.expect(CONFIRM)
    assert sent_to_model(server, "rejected it with this message: keep the file, fix it in place")
    assert (buggy_repo / "calc.py").exists()
    child.sendline("/y")  # yolo from here: no more questions about commands
    child.expect("Switched to yolo mode.")
    child.expect("fixed")
    child.expect("The agent submitted")
    child.sendline("")
    child.expect("Submitted")
    assert finish(child) == 0
    assert (buggy_repo / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert len(server.completions) == 5
    history = (tmp_path / "home" / "history").read_text()
    assert "keep the file, fix it in place" in history and "/y" in history, (
        "answers are kept for Up-arrow recall"
    )


def test_ctrl_c_during_the_model_call_adds_a_message(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([{"content": bash("echo first"), "delay": 4}, bash("echo second"), SUBMIT])
    child = spawn_wren(server, buggy_repo, tmp_path, "--mode", "confirm")
    child.expect("waiting for the model")
    deadline = time.monotonic() + TIMEOUT
    while not server.requests:  # the request is at the server, which holds its reply for a while
        assert time.monotonic() < deadline, "the model request never arrived"
        time.sleep(0.05)
    child.sendintr()  # Ctrl-C
    child.expect("Interrupted. Type a message for the model")
    child.expect(INPUT_LINE)  # the input line is up: typing earlier can be lost
    child.sendline("please be quick")
    # The reply to the request that carried the message (highlighted: colour codes between the words).
    child.expect(r"echo(\x1b\[[0-9;]*m)*\s*(\x1b\[[0-9;]*m)*second")
    child.expect(CONFIRM)
    assert sent_to_model(server, "The user interrupted with this message: please be quick")
    child.sendline("")
    child.expect(CONFIRM)
    child.sendline("")
    child.expect("The agent submitted")
    child.sendintr()  # Ctrl-C at this question finishes with the submission
    child.expect("Submitted")
    assert finish(child) == 0


def test_ctrl_c_twice_stops_the_run(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([bash("touch should-not-exist")])
    child = spawn_wren(server, buggy_repo, tmp_path)
    child.expect(CONFIRM)
    child.expect(INPUT_LINE)  # a Ctrl-C before the input line is up can land outside the prompt
    child.sendintr()
    child.expect("Interrupted. Type a message for the model")
    child.expect(INPUT_LINE)
    child.sendintr()
    child.expect("Interrupted")
    assert finish(child) == 1
    assert not (buggy_repo / "should-not-exist").exists()
    traj = json.loads((tmp_path / "out" / "run.traj.json").read_text())
    assert traj["info"]["exit_status"] == "Interrupted"


def test_human_mode_from_the_command_line(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([SUBMIT])
    child = spawn_wren(server, buggy_repo, tmp_path, "--mode", "human")
    child.expect("Type a command to run")
    child.sendline("sed -i 's/a - b/a + b/' calc.py && echo edited-by-hand")
    child.expect("edited-by-hand")
    child.expect("Type a command to run")
    child.sendline("/c")  # hand over to the model, confirming its commands
    child.expect(CONFIRM)
    child.sendline("")
    child.expect("The agent submitted")
    child.sendline("")
    assert finish(child) == 0
    assert len(server.completions) == 1, "the model was not asked while the person typed"


def test_tui_starts_from_the_command_line_and_quits(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([bash("cat calc.py"), SUBMIT])
    child = spawn_wren(server, buggy_repo, tmp_path, "-v", "--yolo")
    child.expect("finished: Submitted")
    child.send("q")
    child.expect(r"Submitted\S* after 2 steps")
    assert finish(child) == 0


def test_no_terminal_means_no_questions(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([bash("touch made-without-asking"), SUBMIT])
    base = [
        sys.executable,
        "-m",
        "wren.cli.main",
        "run",
        "-t",
        "t",
        "-m",
        "openai/x",
        "-c",
        f"model.api_base={server.url}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WREN_")} | {
        "WREN_HOME": str(tmp_path / "home")
    }
    proc = subprocess.run(
        [*base, "--cwd", str(buggy_repo), "-o", str(tmp_path / "out")],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=TIMEOUT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (buggy_repo / "made-without-asking").exists() and CONFIRM not in proc.stdout
    for flags, message in (
        (["-v"], "-v shows a TUI and needs a terminal"),
        (["--mode", "human"], "--mode human needs a terminal"),
    ):
        proc = subprocess.run(
            [*base, *flags],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
        )
        assert proc.returncode == 2 and message in proc.stderr
