"""`wren run`, `wren models` and `wren replay` as a user runs them: real processes, real sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SUBMIT, bash

WREN = [sys.executable, "-m", "wren.cli.main"]


def wren(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    full_env = (
        {k: v for k, v in os.environ.items() if not k.startswith("WREN_")} | {"COLUMNS": "200"} | (env or {})
    )
    return subprocess.run(
        [*WREN, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout
    )


FIX_SCRIPT = [
    bash("cat calc.py", "Look at the code."),
    bash("sed -i 's/a - b/a + b/' calc.py", "add subtracts; fix it."),
    bash("python3 -c 'import calc; assert calc.add(2, 3) == 5' && echo fixed", "Check the fix."),
    SUBMIT,
]


def test_wren_run_fixes_a_planted_bug_and_submits_the_diff(buggy_repo, scripted_server, tmp_path):
    server = scripted_server(FIX_SCRIPT)
    secret = "sk-live-0123456789abcdef"
    out = tmp_path / "out"
    proc = wren(
        "run", "-t", "add() subtracts instead of adding; fix it.", "-m", "openai/scripted-model",
        "-c", f"model.api_base={server.url}", "-c", "model.api_key=$MY_PROVIDER_KEY",
        "--cwd", str(buggy_repo), "--yolo", "-o", str(out),
        env={"MY_PROVIDER_KEY": secret},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Submitted" in proc.stdout and "fixed" in proc.stdout
    assert "return a + b" in (buggy_repo / "calc.py").read_text()
    traj = json.loads((out / "run.traj.json").read_text())
    assert traj["info"]["exit_status"] == "Submitted"
    assert "+    return a + b" in traj["info"]["submission"]
    assert traj["info"]["model_stats"]["api_calls"] == 4
    assert traj["info"]["config"]["model"]["api_key"] == "$MY_PROVIDER_KEY"
    assert traj["messages"][-1]["role"] == "exit"
    lines = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3, 4]
    assert lines[1]["action"] == "cat calc.py" and "return a - b" in lines[1]["output"]
    assert {
        "cost",
        "prompt_tokens",
        "completion_tokens",
        "model",
        "latency",
        "timestamp",
        "returncode",
    } <= set(lines[1])
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {secret}"
    for path in out.iterdir():
        assert secret not in path.read_text()


def test_secret_printed_by_a_command_never_reaches_disk(buggy_repo, scripted_server, tmp_path):
    secret = "sk-live-9999999999abcdef"
    server = scripted_server([bash("echo $MY_PROVIDER_KEY; echo leaked"), SUBMIT])
    out = tmp_path / "out"
    proc = wren(
        "run", "-t", "t", "-m", "openai/x", "-c", f"model.api_base={server.url}", "-c", "model.api_key=$MY_PROVIDER_KEY",
        "-c", "environment.forward_env=[MY_PROVIDER_KEY]", "--cwd", str(buggy_repo), "-o", str(out),
        env={"MY_PROVIDER_KEY": secret},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = (out / "trajectory.jsonl").read_text() + (out / "run.traj.json").read_text()
    assert "leaked" in text and secret not in text and "***" in text


def test_run_that_does_not_submit_exits_nonzero(buggy_repo, scripted_server, tmp_path):
    server = scripted_server([bash("true")])
    proc = wren("run", "-t", "t", "-m", "openai/x", "-c", f"model.api_base={server.url}", "-c", "agent.step_limit=2",
                "--cwd", str(buggy_repo), "-o", str(tmp_path / "o"))  # fmt: skip
    assert proc.returncode == 1 and "LimitsExceeded" in proc.stdout


def test_unknown_slm_fails_before_running_and_lists_names(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "slm_providers:\n  my-local-slm: {name: openai/local, api_base: 'http://127.0.0.1:9/v1'}\n"
    )
    proc = wren("run", "-t", "t", "--slm", "my-locl-slm", "-c", str(config), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "unknown SLM 'my-locl-slm'" in proc.stderr and "my-local-slm" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_config_typo_is_an_error_naming_the_key(tmp_path):
    proc = wren("run", "-t", "t", "-m", "openai/x", "-c", "agent.step_limt=3", "-o", str(tmp_path / "o"))
    assert (
        proc.returncode == 2
        and "unknown config key 'agent.step_limt' (did you mean 'step_limit'?)" in proc.stderr
    )


def test_models_check_reports_up_and_down_and_exit_code(scripted_server, tmp_path):
    server = scripted_server(["OK"])
    config = tmp_path / "c.yaml"
    config.write_text(
        f"slm_providers:\n  up: {{name: openai/scripted-model, api_base: '{server.url}'}}\n"
        "  down: {name: openai/x, api_base: 'http://127.0.0.1:9/v1'}\n"
    )
    proc = wren("models", "check", "up", "-c", str(config))
    assert proc.returncode == 0 and "up" in proc.stdout
    proc = wren("models", "check", "-c", str(config), "--timeout", "3")
    assert proc.returncode == 1 and "down" in proc.stdout and "unreachable" in proc.stdout
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions", "/v1/chat/completions"]
    listing = wren("models", "list", "-c", str(config))
    assert "up" in listing.stdout and "qwen3-8b" in listing.stdout


def test_models_list_fits_80_columns_without_cutting_names_or_urls(tmp_path):
    from wren.models.catalog import load_catalog

    config = tmp_path / "c.yaml"
    config.write_text(
        "slm_providers:\n  my-local-slm: {name: openai/local-model, api_base: 'http://localhost:11434/v1', config: [slm]}\n"
    )
    proc = wren("models", "list", "-c", str(config), env={"COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, proc.stdout
    words = {word for line in lines for word in line.split()}
    for name, entry in load_catalog().items():
        model = entry.model_config_dict()
        assert {name, model["name"], model["api_base"]} <= words, (name, proc.stdout)
    assert {"my-local-slm", "openai/local-model", "http://localhost:11434/v1"} <= words
    assert "config: slm" in proc.stdout and "(embedded)" in proc.stdout


def test_check_model_flag_stops_a_run_against_a_dead_server(buggy_repo, tmp_path):
    proc = wren("run", "-t", "t", "-m", "openai/x", "-c", "model.api_base=http://127.0.0.1:9/v1", "--check-model",
                "--cwd", str(buggy_repo), "-o", str(tmp_path / "o"))  # fmt: skip
    assert proc.returncode == 1 and "down" in proc.stdout


def recorded_fix_run(repo, scripted_server, tmp_path) -> Path:
    """Record a run of FIX_SCRIPT in `repo`, then undo its edit; return the run's directory."""
    server = scripted_server(FIX_SCRIPT)
    out = tmp_path / "out"
    proc = wren(
        "run",
        "-t",
        "t",
        "-m",
        "openai/x",
        "-c",
        f"model.api_base={server.url}",
        "--cwd",
        str(repo),
        "-o",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    subprocess.run(["git", "checkout", "-q", "calc.py"], cwd=repo, check=True)
    return out


def test_replay_reports_same_then_differs(buggy_repo, scripted_server, tmp_path):
    out = recorded_fix_run(buggy_repo, scripted_server, tmp_path)
    same = wren("replay", str(out / "run.traj.json"), "--cwd", str(buggy_repo))
    assert same.returncode == 0, same.stdout
    assert "4 actions replayed, 0 observations differ" in same.stdout
    subprocess.run(["git", "checkout", "-q", "calc.py"], cwd=buggy_repo, check=True)
    (buggy_repo / "calc.py").write_text("def add(a, b):\n    return a * b\n")
    differs = wren("replay", str(out), "--cwd", str(buggy_repo))
    assert differs.returncode == 1 and "step 1: differs" in differs.stdout and "a * b" in differs.stdout


def test_replay_model_reproduces_a_saved_run(buggy_repo, scripted_server, tmp_path):
    from wren import DefaultAgent
    from wren.environments import get_environment
    from wren.models import get_model

    out = recorded_fix_run(buggy_repo, scripted_server, tmp_path)
    model = get_model({"model_class": "replay", "trajectory": str(out / "trajectory.jsonl")})
    result = DefaultAgent(model, get_environment("local", cwd=str(buggy_repo))).run("t")
    assert result.exit_status == "Submitted" and "+    return a + b" in result.submission
