"""`wren run --resume`: a run whose process was killed with SIGKILL continues from its log, as one
trajectory with every step once, and is refused when its workspace changed since its last step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import SUBMIT, bash
from tests.peers.git_repo import make_git_repo
from tests.peers.openai_server import ScriptedOpenAIServer
from tests.test_cli_run import WREN, wren

STEPS = [bash(f"echo step{n} >> log.txt", f"Step {n}.") for n in range(1, 6)]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def start_run(server: ScriptedOpenAIServer, repo: Path, out: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WREN_")}
    return subprocess.Popen(
        [*WREN, "run", "--yolo", "-t", "Append five lines to log.txt.", "--cwd", str(repo), "-o", str(out),
         "-m", "openai/scripted-model", "-c", f"model.api_base={server.url}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def log_steps(out: Path) -> list[int]:
    path = out / "trajectory.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def test_a_run_killed_while_waiting_for_the_model_resumes_with_no_step_lost_or_repeated(tmp_path):
    repo = make_git_repo(tmp_path / "repo", {"README.md": "hello\n"})
    out = tmp_path / "out"
    # The third reply never comes before the kill; after it, the script answers it again, then the rest.
    script = [STEPS[0], STEPS[1], {"content": STEPS[2], "delay": 120}, *STEPS[2:], SUBMIT]
    with ScriptedOpenAIServer(script) as server:
        proc = start_run(server, repo, out)
        try:
            wait_for(lambda: len(server.completions) == 3, 120, "the third model call")
            wait_for(lambda: log_steps(out)[-1:] == [2], 30, "step 2 recorded")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert not (out / "run.traj.json").exists()
        assert (repo / "log.txt").read_text() == "step1\nstep2\n"

        resumed = wren(
            "run", "--yolo", "--resume", str(out), "-m", "openai/scripted-model",
            "-c", f"model.api_base={server.url}", timeout=120,
        )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout and "after step 2" in resumed.stdout
    assert (repo / "log.txt").read_text() == "".join(f"step{n}\n" for n in range(1, 6))
    steps = [s for s in log_steps(out) if s]
    assert steps == [1, 2, 2, 3, 4, 5, 6], steps  # the second 2 is the resume marker, which adds nothing
    traj = json.loads((out / "run.traj.json").read_text())
    assert traj["info"]["exit_status"] == "Submitted"
    replies = [m["content"] for m in traj["messages"] if m["role"] == "assistant"]
    assert replies == [*STEPS, SUBMIT]
    assert traj["info"]["model_stats"]["api_calls"] == 6
    from wren.trajectory import read_run

    run = read_run(out / "run.traj.json")
    assert [s.number for s in run.steps] == [1, 2, 3, 4, 5, 6]
    assert [s.action for s in run.steps][:5] == [f"echo step{n} >> log.txt" for n in range(1, 6)]


def test_a_run_killed_mid_command_is_refused_because_its_workspace_changed(tmp_path):
    repo = make_git_repo(tmp_path / "repo", {"README.md": "hello\n"})
    out = tmp_path / "out"
    script = [STEPS[0], bash("echo half >> log.txt && sleep 120 && echo rest >> log.txt"), SUBMIT]
    with ScriptedOpenAIServer(script) as server:
        proc = start_run(server, repo, out)
        try:
            wait_for(
                lambda: (repo / "log.txt").exists() and "half" in (repo / "log.txt").read_text(), 120, "half"
            )
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        resumed = wren(
            "run", "--yolo", "--resume", str(out), "-m", "openai/scripted-model",
            "-c", f"model.api_base={server.url}", timeout=120,
        )  # fmt: skip
        assert resumed.returncode != 0
        assert "no longer matches the run after step 1" in resumed.stderr, resumed.stderr
        assert len(server.completions) == 2  # nothing was asked of the model
        # Put back as the last step left it, the run continues.
        (repo / "log.txt").write_text("step1\n")
        again = wren(
            "run", "--yolo", "--resume", str(out), "-m", "openai/scripted-model",
            "-c", f"model.api_base={server.url}", timeout=120,
        )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]


def test_resume_refuses_a_finished_run_and_a_directory_without_a_log(tmp_path):
    proc = wren(
        "run",
        "--yolo",
        "--resume",
        str(tmp_path),
        "-m",
        "openai/x",
        "-c",
        "model.api_base=http://127.0.0.1:9/v1",
    )
    assert proc.returncode != 0 and "no trajectory.jsonl there" in proc.stderr
    repo = make_git_repo(tmp_path / "repo", {"README.md": "hello\n"})
    with ScriptedOpenAIServer([SUBMIT]) as server:
        args = ["-m", "openai/scripted-model", "-c", f"model.api_base={server.url}"]
        first = wren("run", "--yolo", "-t", "submit", "--cwd", str(repo), "-o", str(tmp_path / "out"), *args)
        assert first.returncode == 0, first.stderr
        again = wren("run", "--yolo", "--resume", str(tmp_path / "out"), *args)
    assert again.returncode != 0 and "already ended (Submitted)" in again.stderr, again.stderr
