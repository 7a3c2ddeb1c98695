"""The bubblewrap sandbox: real bwrap, real files, a real listening socket on the host."""

from __future__ import annotations

import os
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
        ["bwrap", "--unshare-user", "--ro-bind", "/", "/", "--unshare-net", "true"],
        capture_output=True,
        text=True,
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
    assert "Read-only file system" in sandbox.execute("touch /usr/wren-escape")["output"]


def test_the_system_cannot_be_remounted_writable(sandbox):
    result = sandbox.execute(
        "mount -o remount,rw /usr ; echo rc=$?; mount -o remount,rw /etc/passwd; echo rc=$?"
    )
    assert "rc=0" not in result["output"]
    assert sandbox.execute("echo x > /usr/after-remount")["returncode"] != 0
    assert not Path("/usr/after-remount").exists()


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


def test_the_environment_is_an_allowlist(tmp_path, monkeypatch):
    """Secrets hide behind names that do not look secret; only listed variables get in."""
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db/app")
    monkeypatch.setenv("GH_PAT", "probe-pat-value")
    monkeypatch.setenv("SERVICE_CONFIG", "plain-but-private")
    monkeypatch.setenv("WREN_PROBE_FORWARDED", "forwarded-value")
    env = SandboxEnvironment(
        workdir=str(tmp_path), forward_env=["WREN_PROBE_FORWARDED"], env={"SET": "set-value"}
    )
    output = env.execute("env")["output"]
    for value in ("postgres://", "probe-pat-value", "plain-but-private"):
        assert value not in output
    assert "WREN_PROBE_FORWARDED=forwarded-value" in output and "SET=set-value" in output
    assert f"PATH={os.environ['PATH']}" in output and "HOME=/tmp" in output


def test_commands_run_as_an_unprivileged_user(sandbox):
    assert sandbox.execute("id -u; id -g")["output"] == "65534\n65534\n"
    # No capabilities either: the effective set is empty.
    assert "CapEff:\t0000000000000000" in sandbox.execute("grep CapEff /proc/self/status")["output"]


def test_host_files_outside_the_system_directories_are_not_there(sandbox, host_dir):
    (host_dir / "private.txt").write_text("host secret")
    probes = ["/etc/shadow", "/etc/gshadow", "/etc/ssh", "/root", "/home", "/run", "/var/run", str(host_dir)]
    result = sandbox.execute(
        "for p in " + " ".join(probes) + '; do [ -e "$p" ] && echo "visible $p"; done; true'
    )
    assert result["output"] == ""
    assert sandbox.execute(f"cat {host_dir}/private.txt")["returncode"] != 0
    # What a shell, git and Python need is there.
    check = sandbox.execute("git --version && python3 -c 'print(42)' && ls /etc/passwd")
    assert check["returncode"] == 0, check["output"]


@pytest.mark.skipif(shutil.which("python3") is None, reason="needs a system python3 inside the sandbox")
def test_host_unix_sockets_outside_tmp_cannot_be_reached(tmp_path, host_dir):
    """A daemon's socket (docker's is /var/run/docker.sock) would be a way out of any sandbox."""
    path = host_dir / "daemon.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    try:
        probe = f'python3 -c \'import socket; socket.socket(socket.AF_UNIX).connect("{path}"); print("connected")\''
        for network in (False, True):
            env = SandboxEnvironment(workdir=str(tmp_path), network=network)
            result = env.execute(probe)
            assert result["returncode"] != 0 and "connected" not in result["output"], result
    finally:
        server.close()


def test_readonly_paths_are_visible_and_not_writable(tmp_path, host_dir):
    (host_dir / "tool.txt").write_text("shared cache")
    env = SandboxEnvironment(workdir=str(tmp_path), readonly=[str(host_dir)])
    assert env.execute(f"cat {host_dir}/tool.txt")["output"] == "shared cache"
    assert env.execute(f"touch {host_dir}/x")["returncode"] != 0
    assert not (host_dir / "x").exists()
    with pytest.raises(ConfigError, match="environment.readonly"):
        SandboxEnvironment(workdir=str(tmp_path), readonly=[str(host_dir / "missing")])


def test_bad_workdir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="workdir"):
        SandboxEnvironment(workdir=str(tmp_path / "missing"))
