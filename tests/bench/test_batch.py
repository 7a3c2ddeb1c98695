"""`wren batch` with the scripted model on the fixture repository: real git, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.peers.containers import require_docker_image, wren_containers
from tests.peers.fixture_repo import build_calc_repo, copies, write_jsonl
from tests.peers.scripted_batch import ran, read_preds, scripted_outputs, write_config
from wren.bench.batch import BatchRunner, PredictionsStore
from wren.bench.config import BenchWrenConfig
from wren.bench.datasets import load_instances
from wren.bench.progress import BatchProgress
from wren.config.assemble import assemble_config
from wren.exceptions import ConfigError

PATH_ENV = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]


@pytest.fixture
def calc(tmp_path):
    inst = build_calc_repo(tmp_path / "repos")
    return tmp_path, inst


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _stop_leftover_runs():
    """A failed test must not leave a batch running (it would disturb the next tests)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wren.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PATH": PATH_ENV, **(env or {})},
        **kwargs,
    )
    _STARTED.append(proc)
    return proc


def _config(tmp_path: Path, outputs: list[str], **sections) -> BenchWrenConfig:
    path = write_config(tmp_path / "cfg.yaml", outputs, **sections)
    return assemble_config([str(path)], schema=BenchWrenConfig)


def _local(config: BenchWrenConfig, tmp_path: Path) -> BenchWrenConfig:
    """`config` running on the repositories in tmp_path/repos, in a local environment with PATH_ENV."""
    config.bench.workspace.repos = str(tmp_path / "repos")
    config.environment = {"environment_class": "local", "env": {"PATH": PATH_ENV}}
    return config


def test_batch_then_eval_resolves_everything(calc):
    tmp_path, inst = calc
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 4))
    write_config(tmp_path / "cfg.yaml", scripted_outputs(tmp_path / "steps.log", extra_steps=1))
    out = tmp_path / "out"
    proc = _cli("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
                "-w", "2", "-c", str(tmp_path / "cfg.yaml"))  # fmt: skip
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    preds = read_preds(out)
    assert sorted(preds) == [f"wren-fixtures__calc-{i}" for i in range(1, 5)]
    assert all("+    if x > hi:" in p["model_patch"] for p in preds.values())
    statuses = json.loads((out / "exit_statuses.json").read_text())
    assert {s["exit_status"] for s in statuses.values()} == {"Submitted"}
    one = out / "wren-fixtures__calc-1"
    assert (one / "trajectory.jsonl").is_file() and (one / "wren-fixtures__calc-1.log").is_file()
    traj = json.loads((one / "wren-fixtures__calc-1.traj.json").read_text())
    assert traj["info"]["exit_status"] == "Submitted"
    assert "Submitted 4" in text and "4 run, 0 already done" in text

    report = tmp_path / "eval" / "report.json"
    proc = _cli("eval", "-p", str(out / "preds.json"), "-d", str(tmp_path / "ds.jsonl"),
                "--repos", str(tmp_path / "repos"), "-o", str(report))  # fmt: skip
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    assert json.loads(report.read_text())["resolved_instances"] == 4

    # Run again: everything is done already; --redo-existing runs it all again.
    again = _cli("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
                 "-c", str(tmp_path / "cfg.yaml"), "--filter", "calc-[12]$")  # fmt: skip
    text, _ = again.communicate(timeout=300)
    assert "0 run, 2 already done" in text
    assert sorted(ran(tmp_path / "steps.log")) == sorted(preds)
    redo = _cli("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
                "-c", str(tmp_path / "cfg.yaml"), "--slice", "1", "--redo-existing")  # fmt: skip
    text, _ = redo.communicate(timeout=300)
    assert "1 run, 0 already done" in text
    assert ran(tmp_path / "steps.log").count("wren-fixtures__calc-1") == 2
    assert len(read_preds(out)) == 4


def test_kill_9_then_resume_loses_nothing_and_repeats_nothing(calc):
    tmp_path, inst = calc
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 6))
    log = tmp_path / "steps.log"
    write_config(tmp_path / "cfg.yaml", scripted_outputs(log, extra_steps=3, step_command="sleep 0.3"))
    args = ["batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(tmp_path / "out"), "--repos",
            str(tmp_path / "repos"), "-c", str(tmp_path / "cfg.yaml")]  # fmt: skip
    first = _cli(*args)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        preds_file = tmp_path / "out" / "preds.json"
        if preds_file.exists() and len(json.loads(preds_file.read_text())) >= 2:
            break
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    done_before = set(read_preds(tmp_path / "out"))  # valid JSON even after kill -9
    assert 2 <= len(done_before) < 6

    second = _cli(*args)
    text, _ = second.communicate(timeout=300)
    assert second.returncode == 0, text
    assert f"{6 - len(done_before)} run, {len(done_before)} already done" in text
    preds = read_preds(tmp_path / "out")
    assert len(preds) == 6 and all("+    if x > hi:" in p["model_patch"] for p in preds.values())
    fixed = ran(log)
    for instance_id in done_before:
        assert fixed.count(instance_id) == 1, instance_id  # finished ones were not run again
    assert set(fixed) == set(preds)
    assert list((tmp_path / "out" / ".workspaces").iterdir()) == []  # the killed run's checkouts are gone


def _wait_for(log: Path, step: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ran(log, step) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ran(log, step), f"no instance reached {step}"


def _wait_until(predicate, what: str, timeout: float = 120) -> None:
    """Poll for a state the test needs (a handshake); the timeout only bounds a broken run."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def test_ctrl_c_stops_cleanly_and_leaves_no_process(calc):
    tmp_path, inst = calc
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 3))
    log = tmp_path / "steps.log"
    write_config(tmp_path / "cfg.yaml", scripted_outputs(log, extra_steps=1, step_command="sleep 61.25"))
    proc = _cli("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(tmp_path / "out"), "--repos",
                str(tmp_path / "repos"), "-w", "2", "-c", str(tmp_path / "cfg.yaml"))  # fmt: skip
    _wait_for(log, "step0")
    _wait_until(lambda: _processes_with("sleep 61.25"), "the step's command never started")
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, text
    assert time.monotonic() - started < 30
    assert "interrupted" in text
    assert _processes_with("sleep 61.25") == []
    preds = tmp_path / "out" / "preds.json"
    assert not preds.exists() or json.loads(preds.read_text()) == {}  # interrupted runs are not recorded


@pytest.mark.docker
def test_ctrl_c_leaves_no_container(calc):
    image = require_docker_image()
    tmp_path, inst = calc
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 2))
    write_config(
        tmp_path / "cfg.yaml",
        scripted_outputs(Path("/dev/null"), extra_steps=1, step_command="sleep 61.75"),
        environment={"environment_class": "docker", "image": image},
    )
    proc = _cli("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(tmp_path / "out"), "--repos",
                str(tmp_path / "repos"), "-w", "2", "-c", str(tmp_path / "cfg.yaml"))  # fmt: skip
    _wait_until(lambda: len(wren_containers(proc.pid)) >= 2, "the containers never started", timeout=240)
    # Both commands run inside their containers (visible here: same kernel) before Ctrl-C.
    _wait_until(lambda: len(_processes_with("sleep 61.75")) >= 2, "the commands never started")
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, text
    assert wren_containers(proc.pid) == []


def test_failing_instance_is_an_exit_status_not_a_crash(calc):
    tmp_path, inst = calc
    broken = {**inst, "instance_id": "broken-1", "repo": "nobody/missing"}
    instances = load_instances(write_jsonl(tmp_path / "ds.jsonl", [broken, *copies(inst, 1)]))
    config = _config(tmp_path, scripted_outputs(tmp_path / "steps.log"))
    _local(config, tmp_path)
    summary = BatchRunner(config, tmp_path / "out", workers=2).run(instances)
    assert summary["exit_statuses"] == {"Submitted": 1, "WorkspaceError": 1}
    log_text = (tmp_path / "out" / "broken-1" / "broken-1.log").read_text()
    assert "no git repository for nobody/missing" in log_text
    assert read_preds(tmp_path / "out")["broken-1"]["model_patch"] == ""


def test_bad_arguments_and_a_second_runner_on_the_same_directory(calc, tmp_path):
    config = _config(tmp_path, [])
    with pytest.raises(ConfigError, match="--workers"):
        BatchRunner(config, tmp_path / "o", workers=0)
    with pytest.raises(ConfigError, match="--executor"):
        BatchRunner(config, tmp_path / "o", executor="processes")
    with pytest.raises(ConfigError, match="needs --repos"):
        BatchRunner(config, tmp_path / "o").run([{"instance_id": "x", "repo": "a/b"}])
    first = BatchRunner(config, tmp_path / "o")
    with first._exclusive(), pytest.raises(ConfigError, match="another wren batch"):  # noqa: SIM117
        with BatchRunner(config, tmp_path / "o")._exclusive():
            pass
    (tmp_path / "o" / "preds.json").write_text("{not json")
    with pytest.raises(ConfigError, match="preds.json is not valid JSON"):
        PredictionsStore(tmp_path / "o")


def test_progress_shows_workers_steps_and_cost():
    from rich.console import Console

    console = Console(record=True, width=120, force_terminal=False)
    progress = BatchProgress(3, live=False, console=console)
    progress.instance_started("a__b-1")
    progress.instance_step("a__b-1", 7, 0.125)
    progress.instance_finished("a__b-2", "Submitted", 0.5)
    console.print(progress.render())
    text = console.export_text()
    assert "[1/3] a__b-2: Submitted" in text
    assert "a__b-1" in text and "running" in text and " 7 " in text and "$0.1250" in text
    assert "cost $0.5000" in text and "Submitted: 1" in text and "ETA" in text


def test_ray_executor(calc):
    pytest.importorskip("ray", reason="ray (the [ray] extra) is not installed")
    tmp_path, inst = calc
    instances = load_instances(write_jsonl(tmp_path / "ds.jsonl", copies(inst, 2)))
    config = _config(tmp_path, scripted_outputs(tmp_path / "steps.log"))
    _local(config, tmp_path)
    import ray

    try:
        summary = BatchRunner(config, tmp_path / "out", workers=2, executor="ray").run(instances)
    finally:
        ray.shutdown()
    assert summary["exit_statuses"] == {"Submitted": 2}
    assert sorted(ran(tmp_path / "steps.log")) == ["wren-fixtures__calc-1", "wren-fixtures__calc-2"]


def test_each_instance_is_one_program_released_at_its_end(calc):
    """Through a real gateway in front of a scripted OpenAI server: one program id per instance."""
    from tests.peers.openai_server import ScriptedOpenAIServer
    from tests.peers.scripted_batch import scripted_outputs
    from wren.gateway.app import GatewayThread
    from wren.gateway.config import GatewayConfig

    tmp_path, inst = calc
    instances = load_instances(write_jsonl(tmp_path / "ds.jsonl", copies(inst, 2)))
    fix, submit = scripted_outputs(tmp_path / "steps.log")
    server = ScriptedOpenAIServer([fix, submit, fix, submit]).start()
    gateway = GatewayThread(GatewayConfig(backends=[server.url], port=0)).start()
    try:
        config = assemble_config(
            [f"model.api_base={gateway.url}", "model.api_key=test-key", "model.retries=0"],
            model="openai/scripted-model",
            schema=BenchWrenConfig,
        )
        _local(config, tmp_path)
        summary = BatchRunner(config, tmp_path / "out", workers=1).run(instances)
        programs = httpx.get(gateway.base + "/programs", timeout=10).json()
    finally:
        gateway.stop()
        server.stop()
    assert summary["exit_statuses"] == {"Submitted": 2}
    ids = [
        json.loads((tmp_path / "out" / i / f"{i}.traj.json").read_text())["info"]["config"]["program_id"]
        for i in ("wren-fixtures__calc-1", "wren-fixtures__calc-2")
    ]
    assert len(set(ids)) == 2 and all(pid.startswith("wren-fixtures__calc-") for pid in ids)
    assert programs["count"] == 0  # both released when their instance ended (the lease is 600 s)
    assert all("+    if x > hi:" in p["model_patch"] for p in read_preds(tmp_path / "out").values())


def test_kill_9_leftovers_are_removed_under_a_workspace_root_of_the_users(calc):
    tmp_path, inst = calc
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 2))
    root = tmp_path / "my-checkouts"
    root.mkdir()
    (root / "keep.txt").write_text("not Wren's")
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    # Each instance's first step waits for the gate: the first run is killed while one is checked out.
    wait = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    write_config(tmp_path / "cfg.yaml", scripted_outputs(log, extra_steps=1, step_command=wait))
    out = tmp_path / "out"
    args = ["batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
            "-c", str(tmp_path / "cfg.yaml"), "-c", f"bench.workspace.root={root}"]  # fmt: skip
    first = _cli(*args)
    _wait_for(log, "step0")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    leftovers = [p for p in root.rglob("*") if p.name.startswith("wren-")]
    assert leftovers, "the killed run left its checkout under the user's root"
    # What a kill -9 in the middle of writing preds.json leaves.
    (out / f".preds.json.{first.pid}.1234.tmp").write_text("{")
    gate.touch()
    second = _cli(*args)
    text, _ = second.communicate(timeout=300)
    assert second.returncode == 0, text
    assert len(read_preds(out)) == 2
    assert [p for p in root.rglob("*") if p.name.startswith("wren-")] == []
    assert (root / "keep.txt").read_text() == "not Wren's"
    assert list(out.glob(".*.tmp")) == []


def test_dead_model_and_missing_repo_exit_non_zero_with_one_line_per_kind(calc, scripted_server):
    """The bundled entry with a dead api_base: no server is started, every failure is named, a rerun retries."""
    import socket

    from wren.config.loader import read_yaml

    tmp_path, inst = calc
    broken = {**inst, "instance_id": "broken-1", "repo": "nobody/missing"}
    write_jsonl(tmp_path / "ds.jsonl", [broken, *copies(inst, 2)])
    out = tmp_path / "out"
    home = tmp_path / "home"
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{bound.getsockname()[1]}/v1"
        proc = _cli("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
                    "-w", "2", "--slm", "gemma-3-270m", "-c", f"model.api_base={dead}", "-c", "model.retries=1",
                    env={"WREN_HOME": str(home), "COLUMNS": "80"})  # fmt: skip
        text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, text
    assert "Traceback" not in text, text
    assert "3 of 3 instances failed for reasons outside the task" in text
    kind_lines = [line.strip() for line in text.splitlines() if line.startswith("  ")]
    assert [line.split(":")[0] for line in kind_lines] == ["model unreachable", "environment error"], text
    assert kind_lines[0].startswith("model unreachable: 2 (RetryableModelError): cannot reach")
    assert kind_lines[1].startswith(
        "environment error: 1 (WorkspaceError): no git repository for nobody/missing"
    )
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert f"hint: nothing answered at {dead}" in text
    assert not list(home.glob("serve-*.json"))  # no embedded server was started
    one = out / "wren-fixtures__calc-1"
    assert "Traceback" in (one / "wren-fixtures__calc-1.log").read_text()  # the traceback went to the log
    statuses = json.loads((out / "exit_statuses.json").read_text())
    assert statuses["broken-1"]["failure"] == "environment error"
    # The bundled entry brought the small-model config, visible in the trajectory's config.
    info = json.loads((one / "wren-fixtures__calc-1.traj.json").read_text())["info"]
    assert info["config"]["agent"]["system_template"] == read_yaml("slm")["agent"]["system_template"]
    assert info["config"]["agent"]["demonstrations"] and info["config"]["model"]["api_base"] == dead

    # With a model that answers, the same command (minus the broken instance) retries the failed ones.
    fix, submit = scripted_outputs(tmp_path / "steps.log")
    server = scripted_server([fix, submit, fix, submit], model="gemma-3-270m")
    again = _cli("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
                 "--slm", "gemma-3-270m", "-c", f"model.api_base={server.url}", "--filter", "calc")  # fmt: skip
    text, _ = again.communicate(timeout=300)
    assert again.returncode == 0, text
    assert "2 run, 0 already done" in text and "outside the task" not in text
    assert sorted(ran(tmp_path / "steps.log")) == ["wren-fixtures__calc-1", "wren-fixtures__calc-2"]


def test_a_rejecting_model_is_a_model_error_and_limits_are_agent_outcomes(calc, scripted_server):
    tmp_path, inst = calc
    instances = load_instances(write_jsonl(tmp_path / "ds.jsonl", copies(inst, 1)))
    for script, failures in (
        ([{"status": 401, "content": "bad key"}], {"model error": ["wren-fixtures__calc-1"]}),
        (["no bash block here"], {}),  # format errors until the limit: the agent's outcome
    ):
        server = scripted_server(script)
        config = assemble_config(
            [f"model.api_base={server.url}", "model.retries=0", "agent.max_format_errors=2"],
            model="openai/scripted-model",
            schema=BenchWrenConfig,
        )
        _local(config, tmp_path)
        summary = BatchRunner(config, tmp_path / "out", workers=1, redo_existing=True).run(instances)
        assert {g.kind: g.instance_ids for g in summary["failures"]} == failures, summary
    assert summary["exit_statuses"] == {"LimitsExceeded": 1}


def test_no_model_named_means_the_embedded_default_with_the_small_model_config(calc, scripted_server):
    """With an api_base given (a scripted peer here) and no model named, the embedded default's
    config applies and no server is started."""
    from wren.config.loader import read_yaml

    tmp_path, inst = calc
    write_jsonl(tmp_path / "ds.jsonl", copies(inst, 2))
    fix, submit = scripted_outputs(tmp_path / "steps.log")
    server = scripted_server([fix, submit, fix, submit])
    out, home = tmp_path / "out", tmp_path / "home"
    proc = _cli("batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
                "-c", f"model.api_base={server.url}", env={"WREN_HOME": str(home)})  # fmt: skip
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text
    assert "Submitted 2" in text and "Traceback" not in text
    assert not list(home.glob("serve-*.json"))  # no embedded server was started
    slm = read_yaml("slm")
    for instance_id in ("wren-fixtures__calc-1", "wren-fixtures__calc-2"):
        config = json.loads((out / instance_id / f"{instance_id}.traj.json").read_text())["info"]["config"]
        assert config["agent"]["system_template"] == slm["agent"]["system_template"]
        assert (config["model"]["name"], config["model"]["api_base"]) == ("openai/gemma-3-270m", server.url)
    bodies = [r["body"] for r in server.requests if r["path"] == "/v1/chat/completions"]
    assert len(bodies) == 4 and all(b["model"] == "gemma-3-270m" for b in bodies)
    assert all(b["stop"] == slm["model"]["completion_kwargs"]["stop"] for b in bodies)


def test_exit_statuses_map_to_agent_outcomes_or_failure_kinds():
    from wren.bench.outcomes import failure_kind

    assert [failure_kind(s) for s in ("Submitted", "LimitsExceeded", "ContextWindowExceeded")] == [None] * 3
    assert failure_kind("RetryableModelError") == "model unreachable"
    assert {failure_kind(s) for s in ("PermanentModelError", "ModelNotFound", "ModelError")} == {
        "model error"
    }
    assert failure_kind("EnvironmentStartError") == failure_kind("WorkspaceError") == "environment error"
    assert failure_kind("KeyError") == failure_kind("Error") == "error"
