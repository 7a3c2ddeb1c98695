"""mini-swe-agent configs through the command line, as their users run them: real processes, real sockets."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from tests.peers.fixture_repo import build_calc_repo, write_jsonl
from tests.peers.scripted_batch import FIX
from tests.test_cli_run import wren

pytest.importorskip("minisweagent")
CONFIG_DIR = Path(str(files("minisweagent") / "config"))
ENV = {"MSWEA_SILENT_STARTUP": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def _text_reply(command: str) -> str:
    return f"THOUGHT: next.\n\n```mswea_bash_command\n{command}\n```"


def _mini_model(url: str) -> list[str]:
    return [
        "-c", "model.model_class=litellm_textbased", "-c", "model.model_name=openai/scripted-model",
        "-c", f"model.model_kwargs.api_base={url}", "-c", "model.cost_tracking=ignore_errors",
    ]  # fmt: skip


def test_wren_run_takes_mini_swe_agents_default_yaml_as_it_is(buggy_repo, scripted_server, tmp_path):
    server = scripted_server(
        [
            _text_reply("sed -i 's/a - b/a + b/' calc.py"),
            _text_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"),
        ]
    )
    default = CONFIG_DIR / "default.yaml"
    proc = wren(
        "run", "-t", "add() subtracts; fix it.", "-c", str(default), *_mini_model(server.url),
        "--cwd", str(buggy_repo), "--yolo", "-o", str(tmp_path / "out"), env=ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "return a + b" in (buggy_repo / "calc.py").read_text()
    assert "drop_params" in proc.stderr  # what had no Wren counterpart is said, not dropped silently
    system, instance = server.requests[0]["body"]["messages"][:2]
    assert system["content"] == yaml.safe_load(default.read_text())["agent"]["system_template"].removesuffix(
        "\n"
    )
    assert instance["content"].startswith("Please solve this issue: add() subtracts; fix it.")
    observation = server.requests[1]["body"]["messages"][-1]["content"]
    assert observation.startswith("<returncode>0</returncode>\n<output>")


def test_convert_writes_a_wren_config_that_runs_as_the_original(tmp_path):
    swebench = CONFIG_DIR / "benchmarks" / "swebench.yaml"
    converted = tmp_path / "swebench.wren.yaml"
    proc = wren("config", "convert", "swebench", "-o", str(converted), env=ENV)  # by name, as mini-swe-agent
    assert proc.returncode == 0, proc.stderr
    text = converted.read_text()
    assert text.startswith("# Converted from the mini-swe-agent config") and "drop_params" in text
    data = yaml.safe_load(text)
    assert (
        data["agent"]["action_format"] == "toolcall" and data["environment"]["environment_class"] == "docker"
    )
    assert "model_kwargs" not in data["model"]
    shown = {}
    for name, path in (("original", swebench), ("converted", converted)):
        proc = wren("config", "show", "-c", str(path), "-c", "model.api_key=sk-secret-value", env=ENV)
        assert proc.returncode == 0, proc.stderr
        assert "sk-secret-value" not in proc.stdout
        shown[name] = yaml.safe_load(proc.stdout)
    assert shown["converted"] == shown["original"]
    assert (
        shown["original"]["agent"]["step_limit"] == 250
        and shown["original"]["environment"]["cwd"] == "/testbed"
    )


def test_convert_and_show_errors_are_one_line(tmp_path):
    wren_default = Path(__file__).parents[2] / "src" / "wren" / "config" / "builtin" / "default.yaml"
    proc = wren("config", "convert", str(wren_default), env=ENV)
    assert proc.returncode == 2 and "read as a Wren config already" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = wren("config", "show", "-c", str(CONFIG_DIR / "benchmarks" / "swebench_modal.yaml"), env=ENV)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "'model.model_class'" in proc.stderr and "'environment.environment_class'" in proc.stderr
    # A key neither knows, in the environment (validated when a run starts), is named before that.
    odd = tmp_path / "odd.yaml"
    odd.write_text(
        yaml.safe_dump(
            {
                "model": {"model_name": "x"},
                "environment": {"environment_class": "docker", "image": "i", "foo": 1},
            }
        )
    )
    for command in (["show", "-c"], ["convert"]):
        proc = wren("config", *command, str(odd), env=ENV)
        assert proc.returncode == 2 and "unknown config key 'environment.foo'" in proc.stderr
    proc = wren("run", "-t", "x", "--config-format", "toml", "--yolo", env=ENV)
    assert proc.returncode == 2 and "--config-format must be one of auto, wren, mini" in proc.stderr


def test_wren_batch_takes_a_mini_swe_agent_config(scripted_server, tmp_path):
    inst = build_calc_repo(tmp_path / "repos")
    write_jsonl(tmp_path / "ds.jsonl", [inst])
    server = scripted_server(
        [_text_reply(FIX), _text_reply("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && git diff")]
    )
    out = tmp_path / "out"
    proc = wren(
        "batch", "-d", str(tmp_path / "ds.jsonl"), "-o", str(out), "--repos", str(tmp_path / "repos"),
        "--env", "local", "--config-format", "mini", "-c", str(CONFIG_DIR / "mini_textbased.yaml"),
        *_mini_model(server.url), env=ENV, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    preds = json.loads((out / "preds.json").read_text())
    assert "+    if x > hi:" in preds[inst["instance_id"]]["model_patch"]
    instance_message = server.requests[0]["body"]["messages"][1]["content"]
    assert instance_message.startswith(f"Please solve this issue: {inst['problem_statement']}")
