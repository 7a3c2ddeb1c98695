from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from wren.environments import get_environment
from wren.environments.base import CappedBuffer
from wren.environments.local import LocalEnvironment
from wren.exceptions import ConfigError, ExecutionTimeoutError, Submitted


def test_runs_in_cwd_with_env_and_returncode(tmp_path):
    env = LocalEnvironment(cwd=str(tmp_path), env={"WREN_X": "42"})
    out = env.execute("pwd; echo $WREN_X; exit 3")
    assert out["output"].split() == [str(tmp_path), "42"]
    assert out["returncode"] == 3


def test_each_command_has_its_own_shell(tmp_path):
    env = LocalEnvironment(cwd=str(tmp_path))
    env.execute("cd /; export LEAK=1")
    assert env.execute("pwd; echo ${LEAK:-none}")["output"].split() == [str(tmp_path), "none"]


def test_credentials_are_not_inherited_unless_forwarded(monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "sk-abcdef123456")
    monkeypatch.setenv("HARMLESS_SETTING", "yes")
    plain = LocalEnvironment()
    assert plain.execute("echo ${SOME_API_KEY:-unset} $HARMLESS_SETTING")["output"].split() == [
        "unset",
        "yes",
    ]
    forwarded = LocalEnvironment(forward_env=["SOME_API_KEY"])
    assert forwarded.execute("echo $SOME_API_KEY")["output"].strip() == "sk-abcdef123456"


def test_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "child.pid"
    env = LocalEnvironment(cwd=str(tmp_path), timeout=1)
    start = time.monotonic()
    with pytest.raises(ExecutionTimeoutError) as info:
        env.execute(f"echo started; sleep 300 & echo $! > {pid_file}; wait")
    assert time.monotonic() - start < 10
    assert "started" in info.value.output
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # A zombie still answers kill(0); its state in /proc says it is dead.
        status = Path(f"/proc/{child}/stat")
        if status.exists() and status.read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("background child of a timed-out command survived")


def test_background_child_holding_the_pipe_does_not_hang_the_command(tmp_path):
    env = LocalEnvironment(cwd=str(tmp_path), timeout=20)
    start = time.monotonic()
    out = env.execute("sleep 30 & echo quick")
    assert out["output"].strip() == "quick" and time.monotonic() - start < 5
    os.system("pkill -f 'sleep 30' >/dev/null 2>&1")


def test_output_cap_keeps_head_and_tail_without_holding_everything():
    env = LocalEnvironment(output_cap=10_000, timeout=60)
    out = env.execute("echo FIRST; head -c 200000000 /dev/zero | tr '\\0' x; echo; echo LAST")
    text = out["output"]
    assert text.startswith("FIRST") and text.rstrip().endswith("LAST")
    assert "bytes of output elided" in text and len(text) < 11_000


def test_capped_buffer_counts_dropped_bytes():
    buf = CappedBuffer(10)
    for chunk in [b"abc", b"defgh", b"ijklmnop", b"qrst"]:
        buf.write(chunk)
    assert buf.head == b"abcde" and b"".join(buf.tail) == b"pqrst" and buf.dropped == 10


@pytest.mark.parametrize("marker", ["COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT", "MINI_SWE_AGENT_FINAL_OUTPUT"])
def test_submit_marker_on_the_first_line_ends_with_the_rest_as_submission(marker):
    env = LocalEnvironment()
    with pytest.raises(Submitted) as info:
        env.execute(f"echo {marker}; echo the patch")
    assert info.value.submission == "the patch\n"
    env.execute(f"echo not first; echo {marker}")  # marker elsewhere is ordinary output


def test_get_environment_validates_keys():
    with pytest.raises(ConfigError, match="unknown config key 'environment.timout'"):
        get_environment({"environment_class": "local", "timout": 3})
    with pytest.raises(ConfigError, match="unknown environment 'nowhere'"):
        get_environment("nowhere")
    assert get_environment("local", timeout=5).config.timeout == 5


def test_interrupt_while_waiting_kills_the_command(tmp_path):
    import signal
    import threading

    pid_file = tmp_path / "pid"
    env = LocalEnvironment(cwd=str(tmp_path), timeout=60)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        env.execute(f"echo $$ > {pid_file}; sleep 300")
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def _running(tag: str) -> list[int]:
    """Live processes whose command line holds `tag` (zombies are dead, only not yet reaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if tag.encode() in cmdline and state not in "ZX":
            found.append(int(entry))
    return found


# The probe script writes its pid once it is about to become `sleep N`; the test waits for that file.
DETACHED = {
    "nohup": "nohup sh probe.sh >/dev/null 2>&1 &",
    "setsid": "setsid sh probe.sh >/dev/null 2>&1 &",
    "double fork": "( setsid sh -c 'sh probe.sh &' & ) >/dev/null 2>&1",
}


def _probe(tmp_path: Path, n: str) -> Path:
    (tmp_path / "probe.sh").write_text(f"echo $$ > {tmp_path}/probe.pid\nexec sleep {n}\n")
    return tmp_path / "probe.pid"


def _started(pid_file: Path, tag: str) -> int:
    """Wait (a handshake, generous on a busy machine) until the probe runs `sleep N`; its pid."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().strip():
            pid = int(pid_file.read_text())
            if pid in _running(tag):
                return pid
        time.sleep(0.01)
    raise AssertionError(f"the probe {tag!r} never started")


@pytest.mark.parametrize("how", sorted(DETACHED))
def test_detached_processes_do_not_outlive_the_environment(tmp_path, how):
    n = f"{os.getpid() % 1000}.{sorted(DETACHED).index(how) + 1}"  # a sleep only this test starts
    tag = f"sleep\0{n}"
    env = LocalEnvironment(cwd=str(tmp_path))
    pid_file = _probe(tmp_path, n)
    env.execute(DETACHED[how])
    _started(pid_file, tag)
    assert env.execute(f"pgrep -f 'sleep {n}' >/dev/null && echo alive")["output"] == "alive\n", (
        "a background process lives on between commands"
    )
    env.close()
    assert _running(tag) == []


def test_a_detached_child_does_not_escape_the_timeout(tmp_path):
    n = f"{os.getpid() % 1000}.77"
    tag = f"sleep\0{n}"
    env = LocalEnvironment(cwd=str(tmp_path))
    _probe(tmp_path, n)
    with pytest.raises(ExecutionTimeoutError):
        # The command waits for its detached child to be running before it starts to time out.
        command = f"setsid sh probe.sh >/dev/null 2>&1 & while ! pgrep -f 'sleep {n}' >/dev/null; do sleep 0.01; done; sleep 60"
        env.execute(command, timeout=5)
    assert _running(tag) == []
    assert env.execute("echo next")["output"] == "next\n"
    env.close()


def test_a_missing_working_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"environment\.cwd.*is not a directory"):
        LocalEnvironment(cwd=str(tmp_path / "nonexistent"))


FORK_40 = """python3 - <<'PY'
import os, time
for i in range(40):
    try:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    except OSError as e:
        print("fork", i, "failed:", e.strerror)
        break
PY"""


def test_the_process_limit_is_a_clear_observation_and_the_run_ends_its_members():
    env = LocalEnvironment(max_processes=16, timeout=60)
    if not env.cgroup.limited:
        env.close()
        pytest.skip("no writable pids cgroup here: the limit is not enforced")
    try:
        result = env.execute(FORK_40)
        assert "Resource temporarily unavailable" in result["output"]
        assert "[process limit 16 reached: fork failed once" in result["output"]
        assert len(env.cgroup.members()) >= 10  # the children that did start live on between commands
        # A command that stays under the limit gets no note.
        assert "process limit" not in env.execute("echo ok")["output"]
    finally:
        dirs = env.cgroup.dirs
        env.close()
    assert all(not d.exists() for d in dirs)
