"""The bubblewrap sandbox: real bwrap, real files, a real listening socket on the host."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from wren.environments import get_environment
from wren.environments.sandbox import SandboxEnvironment
from wren.exceptions import ConfigError, ExecutionTimeoutError, Submitted


def _bwrap_works() -> str:
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install bubblewrap; .ci/docker_setup.sh does it)"
    probe = subprocess.run(
        ["bwrap", "--ro-bind", "/", "/", "--unshare-net", "true"], capture_output=True, text=True
    )
    return "" if probe.returncode == 0 else f"bwrap cannot create namespaces here: {probe.stderr.strip()}"


pytestmark = pytest.mark.skipif(bool(_bwrap_works()), reason=_bwrap_works() or "ok")


@pytest.fixture(params=["exec", "persistent"])
def sandbox(request, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = SandboxEnvironment(workdir=str(work), cwd=str(work), persistent=request.param == "persistent")
    yield env
    env.close()


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []

    def accept():
        try:
            while True:
                conn, _ = server.accept()
                accepted.append(conn)
                conn.close()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def connect_command(port: int) -> str:
    # bash's /dev/tcp, not this interpreter: a venv under /tmp is not visible inside the sandbox.
    return f"timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' && echo connected"


def test_the_working_directory_is_writable(sandbox, tmp_path):
    result = sandbox.execute("echo data > made.txt && cat made.txt")
    assert result == {"output": "data\n", "returncode": 0}
    assert (tmp_path / "work" / "made.txt").read_text() == "data\n"


@pytest.fixture
def host_dir():
    """A host directory outside both the working directory and /tmp (which the sandbox replaces)."""
    path = Path(tempfile.mkdtemp(prefix="wren-sandbox-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path)


def test_writes_outside_the_working_directory_fail(sandbox, tmp_path, host_dir):
    for target in (host_dir / "escaped.txt", tmp_path / "escaped.txt", Path("/etc/wren-escape")):
        result = sandbox.execute(f"echo escaped > {target}")
        assert result["returncode"] != 0 or target.parent == tmp_path, target
        assert not target.exists(), target
    assert "Read-only file system" in sandbox.execute(f"touch {host_dir}/x")["output"]


def test_the_system_cannot_be_remounted_writable(sandbox, host_dir):
    result = sandbox.execute(
        f"mount -o remount,rw / ; echo rc=$?; mount -o remount,rw {host_dir}; echo rc=$?"
    )
    assert "rc=0" not in result["output"]
    assert sandbox.execute(f"echo x > {host_dir}/after-remount")["returncode"] != 0
    assert not (host_dir / "after-remount").exists()


def test_no_network_by_default(sandbox, listener):
    port, accepted = listener
    result = sandbox.execute(connect_command(port))
    assert result["returncode"] != 0 and "connected" not in result["output"]
    assert accepted == []


def test_network_when_enabled(tmp_path, listener):
    port, accepted = listener
    env = SandboxEnvironment(workdir=str(tmp_path), network=True)
    assert env.execute(connect_command(port))["output"] == "connected\n"


def test_tmp_is_private(sandbox):
    sandbox.execute("echo private > /tmp/wren-sandbox-probe")
    assert not Path("/tmp/wren-sandbox-probe").exists()


def test_commands_do_not_leak_cwd_or_variables(sandbox, tmp_path):
    sandbox.execute("mkdir -p sub && cd sub && export LEAK=1")
    assert sandbox.execute('pwd; echo "${LEAK:-none}"')["output"] == f"{tmp_path / 'work'}\nnone\n"


def test_timeout_kills_the_command(sandbox):
    with pytest.raises(ExecutionTimeoutError) as info:
        sandbox.execute("echo begun; sleep 30", timeout=1)
    assert "begun" in info.value.output
    assert sandbox.execute("echo next")["output"] == "next\n"


def test_submit(sandbox):
    with pytest.raises(Submitted) as info:
        sandbox.execute("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT; echo the-diff")
    assert info.value.submission == "the-diff\n"


def test_secrets_are_not_inherited(tmp_path, monkeypatch):
    monkeypatch.setenv("WREN_FAKE_API_KEY", "hunter2")
    env = get_environment({"environment_class": "sandbox", "workdir": str(tmp_path)})
    assert "hunter2" not in env.execute("env")["output"]


def test_bad_workdir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="workdir"):
        SandboxEnvironment(workdir=str(tmp_path / "missing"))
