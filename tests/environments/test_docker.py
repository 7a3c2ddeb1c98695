"""The docker environment against a real engine and the image .ci/docker_setup.sh builds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.peers.containers import require_docker_image, wren_containers
from wren.environments import get_environment
from wren.environments.docker import DockerEnvironment, EnvironmentStartError, PodmanEnvironmentConfig
from wren.exceptions import ConfigError, ExecutionTimeoutError, Submitted

pytestmark = pytest.mark.docker

# Lists the command lines of all processes in the container, one per line.
PROCESSES = "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done"


@pytest.fixture(scope="module", params=["exec", "persistent"])
def env(request):
    image = require_docker_image()
    environment = DockerEnvironment(
        image=image, cwd="/tmp", env={"WREN_TEST_VAR": "configured"}, persistent=request.param == "persistent"
    )
    yield environment
    environment.close()


def test_output_status_and_stderr_in_order(env):
    result = env.execute("echo out; echo err >&2; echo out2; exit 3")
    assert result == {"output": "out\nerr\nout2\n", "returncode": 3}


def test_commands_do_not_leak_cwd_or_variables(env):
    env.execute("cd / && export LEAK=1 && shopt -s extglob && f() { :; }")
    result = env.execute('pwd; echo "leak=${LEAK:-none}"; type f >/dev/null 2>&1 && echo has-f || echo no-f')
    assert result["output"] == "/tmp\nleak=none\nno-f\n"


def test_configured_env_and_cwd_argument(env):
    assert env.execute("echo $WREN_TEST_VAR; pwd", cwd="/usr")["output"] == "configured\n/usr\n"


def test_quoting_heredocs_and_output_without_newline(env):
    command = "cat <<'EOF'\nit's \"quoted\" $HOME `x`\nEOF\nprintf 'no newline'"
    assert env.execute(command)["output"] == 'it\'s "quoted" $HOME `x`\nno newline'


def test_stdin_is_empty(env):
    assert env.execute("cat; echo done")["output"] == "done\n"


def test_timeout_kills_the_command_inside_the_container(env):
    with pytest.raises(ExecutionTimeoutError) as info:
        env.execute("echo started; sleep 77 & sleep 78; echo never", timeout=2)
    assert "started" in info.value.output and "never" not in info.value.output
    assert info.value.action.startswith("echo started")
    survivors = env.execute(PROCESSES)["output"]
    assert "sleep 77" not in survivors and "sleep 78" not in survivors
    assert env.execute("echo still usable")["output"] == "still usable\n"


def test_output_cap_keeps_head_and_tail(env):
    old = env.config.output_cap
    env.config.output_cap = 1000
    try:
        if env._shell is not None:
            env._shell.output_cap = 1000
        out = env.execute("echo FIRST; seq 1 100000; echo LAST")["output"]
    finally:
        env.config.output_cap = old
        if env._shell is not None:
            env._shell.output_cap = old
    assert out.startswith("FIRST\n") and out.endswith("LAST\n")
    assert "bytes of output elided" in out and len(out) < 1200


def test_submit_marker_raises_submitted(env):
    with pytest.raises(Submitted) as info:
        env.execute("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT; printf 'diff --git a/x b/x\\n'")
    assert info.value.submission == "diff --git a/x b/x\n"


def test_a_command_that_kills_its_shell_is_reported_and_the_next_one_runs(env):
    result = env.execute("kill -9 $$ $PPID")
    assert result["returncode"] != 0
    assert env.execute("echo alive")["output"] == "alive\n"


def test_template_vars_name_the_container(env):
    assert env.get_template_vars()["container_name"] == env.container_name


def test_close_removes_the_container():
    image = require_docker_image()
    environment = get_environment({"environment_class": "docker", "image": image})
    name = environment.container_name
    assert name in wren_containers(os.getpid())
    environment.close()
    assert name not in wren_containers(os.getpid())
    environment.close()  # idempotent


def test_a_sweep_of_child_sessions_while_closing_spares_the_removal():
    # Ctrl-C in a batch closes environments in workers while the main thread kills the child
    # sessions left; the container's removal must survive that sweep. In a child process, so the
    # sweep cannot reach this test process's own commands.
    image = require_docker_image()
    script = textwrap.dedent(
        f"""
        import threading
        from wren.environments.docker import DockerEnvironment
        from wren.environments.processes import kill_child_sessions
        env = DockerEnvironment(image={image!r})
        print(env.container_name, flush=True)
        closing = threading.Thread(target=env.close)
        closing.start()
        while closing.is_alive():
            kill_child_sessions()
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    name = owner.stdout.readline().strip()
    assert owner.wait(timeout=120) == 0
    assert name and name not in wren_containers(owner.pid)


def _owner_process(image: str) -> subprocess.Popen:
    script = textwrap.dedent(
        f"""
        from wren.environments.docker import DockerEnvironment
        env = DockerEnvironment(image={image!r})
        print(env.container_name, flush=True)
        with env:
            env.execute("sleep 600", timeout=900)
        """
    )
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def _wait_gone(pid: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := wren_containers(pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_no_container_outlives_its_process(sig):
    image = require_docker_image()
    owner = _owner_process(image)
    name = owner.stdout.readline().strip()
    assert name in wren_containers(owner.pid)
    time.sleep(1)  # let it reach `sleep 600`
    owner.send_signal(sig)
    owner.wait(timeout=60)
    assert _wait_gone(owner.pid) == []


def test_missing_image_is_a_clear_error_and_leaves_nothing():
    require_docker_image()
    before = set(wren_containers(os.getpid()))
    with pytest.raises(EnvironmentStartError, match="no-such-image-wren"):
        DockerEnvironment(image="no-such-image-wren:1", pull="never")
    assert set(wren_containers(os.getpid())) <= before


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="environment.image"):
        DockerEnvironment()
    with pytest.raises(ConfigError, match="pull"):
        DockerEnvironment(image="x", pull="sometimes")
    with pytest.raises(ConfigError, match="unknown config key 'environment.imag'"):
        get_environment({"environment_class": "docker", "imag": "x"})
    assert PodmanEnvironmentConfig(image="x").executable == "podman"


def _podman_image() -> str:
    import shutil

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (.ci/docker_setup.sh installs it)")
    from tests.peers.containers import TEST_IMAGE

    if (
        subprocess.run(["podman", "image", "exists", TEST_IMAGE], capture_output=True, timeout=120).returncode
        != 0
    ):
        pytest.fail(f"podman is installed but has no {TEST_IMAGE}; run .ci/docker_setup.sh")
    return TEST_IMAGE


def test_podman_runs_commands_and_removes_its_container():
    image = _podman_image()
    env = get_environment({"environment_class": "podman", "image": image, "cwd": "/tmp", "persistent": True})
    name = env.container_name
    try:
        assert env.execute("cd / && export A=1; echo $A")["output"] == "1\n"
        assert env.execute('pwd; echo "${A:-unset}"')["output"] == "/tmp\nunset\n"
        env.config.persistent = False
        assert env.execute("python3 -c 'print(6 * 7)'") == {"output": "42\n", "returncode": 0}
    finally:
        env.close()
    listed = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert name not in listed.stdout
