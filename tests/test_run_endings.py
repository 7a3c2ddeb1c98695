"""However a run ends, nothing it started outlives it: real `wren` processes, real signals, real trees.

Each run starts 200 background processes, a depth-50 recursive spawner and a process in a session of
its own, all carrying a probe variable; the test ends wren (SIGTERM, SIGHUP, SIGKILL of the batch
process) and counts what still carries the probe.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import bash
from tests.peers.containers import require_docker_image, wren_containers
from tests.peers.fixture_repo import build_calc_repo, copies, write_jsonl
from tests.peers.scripted_batch import write_config
from tests.peers.wheelhouse import env_cache, shared_dirs  # noqa: F401, F811 (fixtures)
from wren.environments.cgroups import parents

WREN = [sys.executable, "-m", "wren.cli.main"]
PATH_ENV = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
PROBE = "WREN_ENDING_PROBE"
TREE = 200 + 51 + 1  # background sleeps, the spawner's levels, the detached one


def _tree_command(token: str, then: str = "sleep 600") -> str:
    """A command that leaves a big tree behind, then blocks in `then`."""
    return (
        f"export {PROBE}={token}\n"
        "for i in $(seq 200); do sleep 600 >/dev/null 2>&1 & done\n"
        'spawn() { if [ "$1" -gt 0 ]; then spawn $(($1 - 1)) & fi; exec sleep 600; }\n'
        "(spawn 50 >/dev/null 2>&1) &\n"
        "setsid sleep 600 >/dev/null 2>&1 &\n"
        f"echo spawned; {then}"
    )


def probed(token: str) -> list[int]:
    """Live processes whose environment carries the probe (the test's own marker, not wren's)."""
    needle = f"{PROBE}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if needle not in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0"):
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in "ZX":
            found.append(int(entry))
    return found


def wait_until(predicate, what: str, timeout: float = 120.0) -> None:
    """Poll for a state (a handshake); the timeout only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def none_left_within(token: str, seconds: float = 2.0) -> list[int]:
    """The probed processes still alive `seconds` after wren exited ([] as soon as there are none)."""
    deadline = time.monotonic() + seconds
    while (left := probed(token)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


_STARTED: list[tuple[subprocess.Popen, str]] = []


@pytest.fixture(autouse=True)
def _no_leftovers():
    """A failed test must not leave wren or its tree running beside the next tests."""
    yield
    while _STARTED:
        proc, token = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in probed(token):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _hangups_as_from_a_terminal() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _start(
    args: list[str], token: str, *, cwd: Path | None = None, prefix: list[str] = ()
) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WREN_")} | {"PATH": PATH_ENV}
    proc = subprocess.Popen(
        [*prefix, *WREN, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=cwd,
        # As from a terminal: under `nohup` SIGHUP is inherited ignored, and wren keeps it ignored.
        preexec_fn=_hangups_as_from_a_terminal,
    )
    _STARTED.append((proc, token))
    return proc


def _last_exit(jsonl: Path) -> dict:
    records = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    exits = [m for m in records[-1]["messages"] if m.get("role") == "exit"]
    assert exits, f"the last record of {jsonl} is not the run's end: {records[-1]}"
    return exits[-1]["extra"]


def _sandbox_or_skip() -> None:
    from wren.environments.sandbox import SandboxEnvironment

    try:
        SandboxEnvironment().close()
    except Exception as e:
        pytest.skip(f"no sandbox here: {e}")
    probe = subprocess.run(["bwrap", "--unshare-user", "--unshare-pid", "--ro-bind", "/", "/", "true"],
                           capture_output=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.skip(f"bubblewrap cannot make namespaces here: {probe.stderr.decode()[:200]}")


@pytest.mark.parametrize("kind", ["local", "sandbox"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_ends_the_run_and_all_it_started(kind, signum, buggy_repo, scripted_server, tmp_path):
    if kind == "sandbox":
        _sandbox_or_skip()
    token = uuid.uuid4().hex
    server = scripted_server([bash(_tree_command(token), "Start the tree.")])
    out = tmp_path / "out"
    proc = _start(
        ["run", "-t", "leave a tree behind", "-m", "openai/scripted-model", "-c", f"model.api_base={server.url}",
         "--env", kind, "--cwd", str(buggy_repo), "--yolo", "-o", str(out)],
        token,
    )  # fmt: skip
    wait_until(lambda: len(probed(token)) >= TREE, f"the tree never grew to {TREE} processes")
    text = ""
    if signum == signal.SIGHUP:
        proc.stdout.close()  # as when the terminal closes: what wren prints now goes nowhere
        proc.send_signal(signum)
        proc.wait(timeout=120)
    else:
        proc.send_signal(signum)
        text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, text
    assert none_left_within(token) == []
    expected = {signal.SIGTERM: "Terminated", signal.SIGHUP: "Hangup"}[signum]
    assert _last_exit(out / "trajectory.jsonl")["exit_status"] == expected
    assert json.loads((out / "run.traj.json").read_text())["info"]["exit_status"] == expected
    # The program was released at the model's server (a gateway) before wren exited.
    assert any(r["path"].endswith("/programs/release") for r in server.requests)


@pytest.mark.parametrize("kind", ["local", "sandbox"])
def test_sigkill_of_the_batch_ends_its_runs_and_their_trajectories(kind, scripted_server, tmp_path):
    if kind == "sandbox":
        _sandbox_or_skip()
    token = uuid.uuid4().hex
    inst = build_calc_repo(tmp_path / "repos")
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 2))
    server = scripted_server([bash(_tree_command(token), "Start the tree.")])
    environment = {"environment_class": kind, "env": {"PATH": PATH_ENV}}
    model = {"name": "openai/scripted-model", "api_base": server.url}
    write_config(tmp_path / "cfg.yaml", [], environment=environment, model=model)
    out = tmp_path / "out"
    proc = _start(
        ["batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
         "-w", "2", "-c", str(tmp_path / "cfg.yaml")],
        token,
    )  # fmt: skip
    wait_until(lambda: len(probed(token)) >= 2 * TREE, f"the two trees never grew to {2 * TREE} processes")
    proc.kill()
    proc.communicate(timeout=60)
    assert none_left_within(token) == []
    for i in (1, 2):
        jsonl = out / f"wren-fixtures__calc-{i}" / "trajectory.jsonl"
        wait_until(lambda j=jsonl: "Killed" in j.read_text(), "the guard never ended the trajectory", 30)
        assert _last_exit(jsonl)["exit_status"] == "Killed"
    # The guard also released both programs at the model's server.
    released = lambda: [r for r in server.requests if r["path"].endswith("/programs/release")]  # noqa: E731
    wait_until(lambda: len(released()) == 2, "the guard never released the programs", 30)
    assert {r["body"]["program_id"].rsplit("-", 1)[0] for r in released()} == {
        "wren-fixtures__calc-1",
        "wren-fixtures__calc-2",
    }


def _cap_prefix(tmp_path: Path, limit: int) -> tuple[list[str], Path | None]:
    """An argv prefix that runs wren under a process cap of the test's own, so that a fork loop
    cannot take the machine down even if wren's containment fails; skip where none can be made."""
    v2, v1 = parents()
    for parent in (v1, v2):
        if parent is None:
            continue
        group = parent / f"wren-test-cap-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
            (group / "pids.max").write_text(str(limit))
        except OSError:
            with contextlib.suppress(OSError):
                group.rmdir()
            continue
        join = 'echo $$ > "$0" && exec "$@"'
        return ["sh", "-c", join, str(group / "cgroup.procs")], group
    if os.geteuid() != 0:
        return ["prlimit", f"--nproc={len(os.listdir('/proc')) + limit}"], None
    pytest.skip("no way to cap a fork loop here (root without a writable pids cgroup)")


def test_a_fork_loop_is_ended_by_the_timeout_and_leaves_nothing(buggy_repo, scripted_server, tmp_path):
    token = uuid.uuid4().hex
    # Every bash sources BASH_ENV, which starts another bash: the pyenv-in-~/.bashrc loop.
    bash_env = tmp_path / "bashrc"
    bash_env.write_text("bash -c true\n")
    server = scripted_server([bash("echo hello", "Say hello.")])
    prefix, cap = _cap_prefix(tmp_path, 400)
    out = tmp_path / "out"
    try:
        started = time.monotonic()
        proc = _start(
            ["run", "-t", "say hello", "-m", "openai/scripted-model", "-c", f"model.api_base={server.url}",
             "--cwd", str(buggy_repo), "--yolo", "-o", str(out), "-c", f"environment.env.BASH_ENV={bash_env}",
             "-c", f"environment.env.{PROBE}={token}", "-c", "environment.timeout=8",
             "-c", "environment.max_processes=64", "-c", "agent.step_limit=1"],
            token,
            prefix=prefix,
        )  # fmt: skip
        text, _ = proc.communicate(timeout=120)
        assert time.monotonic() - started < 60, text
        assert none_left_within(token) == []
        records = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]
        observation = records[1]["messages"][-1]["content"]
        assert "timed out" in observation
        if parents() != (None, None):
            assert "process limit 64 reached: fork failed" in observation
        assert _last_exit(out / "trajectory.jsonl")["exit_status"] == "LimitsExceeded"
    finally:
        if cap is not None:
            wait_until(
                lambda: not (cap / "cgroup.procs").read_text().split(), "the cap group never emptied", 30
            )
            cap.rmdir()


@pytest.mark.docker
def test_sigterm_during_a_docker_run_leaves_no_container(buggy_repo, scripted_server, tmp_path):
    image = require_docker_image()
    token = uuid.uuid4().hex
    server = scripted_server([bash(f"export {PROBE}={token}; echo started; sleep 600", "Wait.")])
    proc = _start(
        ["run", "-t", "wait", "-m", "openai/scripted-model", "-c", f"model.api_base={server.url}",
         "--env", "docker", "-c", f"environment.image={image}", "--yolo", "-o", str(tmp_path / "out")],
        token,
    )  # fmt: skip
    wait_until(lambda: probed(token), "the command never started in its container", 240)
    assert len(wren_containers(proc.pid)) == 1
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert wren_containers(proc.pid) == []
    assert _last_exit(tmp_path / "out" / "trajectory.jsonl")["exit_status"] == "Terminated"


@pytest.mark.docker
def test_sigterm_during_a_four_worker_docker_batch_leaves_no_container(tmp_path):
    image = require_docker_image()
    token = uuid.uuid4().hex
    inst = build_calc_repo(tmp_path / "repos")
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 4))
    reply = bash(f"export {PROBE}={token}; sleep 600", "Wait.")
    write_config(tmp_path / "cfg.yaml", [reply], environment={"environment_class": "docker", "image": image})
    out = tmp_path / "out"
    proc = _start(
        ["batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
         "-w", "4", "-c", str(tmp_path / "cfg.yaml")],
        token,
    )  # fmt: skip
    wait_until(lambda: len(probed(token)) >= 4, "the four commands never started", 400)
    assert len(wren_containers(proc.pid)) == 4
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert wren_containers(proc.pid) == []
    for i in range(1, 5):
        assert (
            _last_exit(out / f"wren-fixtures__calc-{i}" / "trajectory.jsonl")["exit_status"] == "Terminated"
        )
    preds = out / "preds.json"
    assert not preds.exists() or json.loads(preds.read_text()) == {}  # stopped runs are redone, not recorded


@pytest.mark.docker
def test_prune_removes_containers_whose_process_is_gone_and_only_those(tmp_path):
    image = require_docker_image()
    from wren.environments.docker import run_labels

    dead = subprocess.Popen(["true"])
    dead.wait()
    names = {
        "orphan": f"wren-test-orphan-{uuid.uuid4().hex[:8]}",
        "live": f"wren-test-live-{uuid.uuid4().hex[:8]}",
    }
    labels = {
        "orphan": run_labels(names["orphan"]) | {"wren.pid": str(dead.pid)},
        "live": run_labels(names["live"]),  # this test's own process, alive
    }
    try:
        for key, name in names.items():
            argv = ["docker", "run", "-d", "--name", name]
            for label, value in labels[key].items():
                argv += ["--label", f"{label}={value}"]
            subprocess.run([*argv, image, "sleep", "600"], check=True, capture_output=True, timeout=300)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WREN_")} | {"PATH": PATH_ENV}
        dry = subprocess.run([*WREN, "docker", "prune", "--dry-run"], capture_output=True, text=True, env=env)
        assert names["orphan"] in dry.stdout and names["live"] not in dry.stdout, dry.stdout + dry.stderr
        assert names["orphan"] in wren_containers()
        done = subprocess.run([*WREN, "docker", "prune"], capture_output=True, text=True, env=env)
        assert done.returncode == 0 and names["orphan"] in done.stdout, done.stdout + done.stderr
        left = wren_containers()
        assert names["orphan"] not in left and names["live"] in left
    finally:
        subprocess.run(["docker", "rm", "-f", *names.values()], capture_output=True, timeout=300)


def test_sigterm_during_wren_eval_ends_the_tests_it_runs(tmp_path, env_cache):  # noqa: F811
    token = uuid.uuid4().hex
    inst = build_calc_repo(tmp_path / "repos")
    slow = [{**i, "test_cmd": _tree_command(token)} for i in copies(inst, 2)]
    write_jsonl(tmp_path / "ds.jsonl", slow)
    preds = tmp_path / "preds.json"
    preds.write_text(
        json.dumps({i["instance_id"]: {"instance_id": i["instance_id"], "model_patch": ""} for i in slow})
    )
    proc = _start(
        ["eval", "--predictions", str(preds), "--dataset", str(tmp_path / "ds.jsonl"), "--repos",
         str(tmp_path / "repos"), "--env", "local", "--workers", "2", "-c",
         f"bench.workspace.env_cache={env_cache}", "-o", str(tmp_path / "report.json")],
        token,
    )  # fmt: skip
    wait_until(
        lambda: len(probed(token)) >= 2 * TREE, f"the two tests never grew to {2 * TREE} processes", 240
    )
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert none_left_within(token) == []
