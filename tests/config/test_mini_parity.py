"""Each config that mini-swe-agent 2.4.6 ships, run by mini-swe-agent's own agent and by Wren against the
same scripted OpenAI-compatible server: the system, instance and observation messages must be equal.

The config files are read from the installed mini-swe-agent package, never copied here.
"""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from tests.peers.git_repo import make_git_repo

# mini-swe-agent imports LiteLLM, which would fetch its price table from the network first.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")
minisweagent = pytest.importorskip("minisweagent")

CONFIG_DIR = Path(str(files("minisweagent") / "config"))
SHIPPED = sorted(p.relative_to(CONFIG_DIR).as_posix() for p in CONFIG_DIR.rglob("*.yaml"))
TASK = "Make hello.txt say hello."

# How each shipped config is meant to be run, as its own comments and docs say: text-based ones with a
# text-based model class. The scripted reply carries the action in the form the config asks for.
TEXT_FENCE = "THOUGHT: look first.\n\n```mswea_bash_command\n{}\n```"
TEXT_XML = "THOUGHT: look first.\n\n<mswea_bash_command>{}</mswea_bash_command>"
STYLE = {
    "default.yaml": ("litellm_textbased", TEXT_FENCE),
    "mini_textbased.yaml": ("litellm_textbased", TEXT_FENCE),
    "benchmarks/swebench_backticks.yaml": ("litellm_textbased", TEXT_FENCE),
    "benchmarks/swebench_xml.yaml": ("litellm_textbased", TEXT_XML),
}
# Configs that name a service Wren does not speak; loading them must fail naming each such key.
UNSUPPORTED = {"benchmarks/swebench_modal.yaml": ("model.model_class", "environment.environment_class")}
# An overlay runs on top of its base, as its header says; here with a model and environment Wren speaks.
OVERLAYS = {
    "benchmarks/swebench_modal.yaml": (
        "benchmarks/swebench.yaml",
        ["model.model_class=litellm", "environment.environment_class=local", "environment.env.BASH_ENV="],
    )
}


def _script(style: str | None, first: str = "cat hello.txt; echo line2") -> list:
    commands = [first, "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"]
    if style is None:
        return [{"content": "Looking.", "tool_calls": [{"arguments": {"command": c}}]} for c in commands]
    return [style.format(c) for c in commands]


def _overrides(name: str, url: str, repo: Path) -> list[str]:
    specs = [
        f"model.model_kwargs.api_base={url}",
        "model.model_kwargs.api_key=sk-test",
        "model.model_name=openai/scripted-model",
        "model.cost_tracking=ignore_errors",
        f"environment.cwd={repo}",
    ]
    if name in STYLE:
        specs.append(f"model.model_class={STYLE[name][0]}")
    return specs


def _local_copy(name: str, tmp_path: Path) -> Path:
    """The shipped config, or for a container one a copy whose environment runs locally (same env, timeout).

    The comparison is about the messages; container settings are checked in test_mini.py.
    """
    path = CONFIG_DIR / name
    data = yaml.safe_load(path.read_text())
    env = data.get("environment") or {}
    if env.get("environment_class", "local") == "local":
        return path
    # BASH_ENV names the container's ~/.bashrc; sourced on this host it is not the same shell at all.
    variables = {k: v for k, v in (env.get("env") or {}).items() if k != "BASH_ENV"}
    data["environment"] = {"env": variables, **({"timeout": env["timeout"]} if "timeout" in env else {})}
    copy = tmp_path / Path(name).name
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def _run_mini(path: Path, specs: list[str]) -> None:
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.config import get_config_from_spec
    from minisweagent.environments import get_environment
    from minisweagent.models import get_model
    from minisweagent.utils.serialize import recursive_merge

    config = recursive_merge(get_config_from_spec(path), *(get_config_from_spec(s) for s in specs))
    model = get_model(config=config.get("model", {}))
    env = get_environment(config.get("environment", {}), default_type="local")
    agent_config = {k: v for k, v in config.get("agent", {}).items() if k != "agent_class"}
    try:
        DefaultAgent(model, env, **agent_config).run(TASK)
    finally:
        getattr(env, "cleanup", lambda: None)()  # mini-swe-agent's docker environment stops its container


def _run_wren(path: Path, specs: list[str], out: Path) -> None:
    from wren.agents.interactive import InteractiveAgent
    from wren.config.assemble import assemble_config
    from wren.config.schema import InteractiveWrenConfig
    from wren.environments import get_environment
    from wren.run import run_agent

    cfg = assemble_config([str(path), *specs], schema=InteractiveWrenConfig)
    cfg.agent.mode = "yolo"
    with get_environment(cfg.environment) as env:
        run_agent(cfg, TASK, env=env, output_dir=out, agent_class=InteractiveAgent)


def _sent(server) -> list[dict]:
    """The messages of the last request, without the assistant turn (each client words it its own way)."""
    messages = server.completions[-1]["body"]["messages"]
    keep = ("role", "content", "tool_call_id")
    return [{k: m[k] for k in keep if k in m} for m in messages if m["role"] != "assistant"]


@pytest.mark.parametrize("name", SHIPPED)
def test_wren_sends_what_mini_swe_agent_sends(name, scripted_server, tmp_path):
    base, extra = OVERLAYS.get(name, (name, []))
    path = _local_copy(base, tmp_path)
    overlay = [str(CONFIG_DIR / name)] if name in OVERLAYS else []
    style = STYLE.get(name, (None, None))[1]
    repo = make_git_repo(tmp_path / "repo", {"hello.txt": "hi\n"})
    sent = {}
    for who in ("mini", "wren"):
        server = scripted_server(_script(style))
        specs = [*overlay, *_overrides(name, server.url, repo), *extra]
        if who == "mini":
            _run_mini(path, specs)
        else:
            _run_wren(path, specs, tmp_path / "wren-run")
        assert len(server.completions) == 2, f"{who} made {len(server.completions)} requests"
        sent[who] = _sent(server)
    roles = [m["role"] for m in sent["mini"]]
    assert roles[:2] == ["system", "user"] and roles[2] in ("user", "tool")
    assert "line2" in sent["mini"][2]["content"]  # the observation shows the command's output
    for i, (mini_msg, wren_msg) in enumerate(zip(sent["mini"], sent["wren"], strict=True)):
        assert wren_msg == mini_msg, f"message {i} ({mini_msg['role']}) differs"


def test_swebench_config_in_docker_sends_what_mini_swe_agent_sends(scripted_server, tmp_path):
    """The SWE-bench config as shipped, environment included: both agents run it in a real container."""
    from tests.peers.containers import require_docker_image

    image = require_docker_image()
    name = "benchmarks/swebench.yaml"
    sent = {}
    for who in ("mini", "wren"):
        # stdout only: docker exec carries stderr apart, so how the two interleave is up to chance
        server = scripted_server(_script(None, "cat /etc/debian_version; echo line2"))
        specs = [
            *_overrides(name, server.url, tmp_path)[:-1],
            f"environment.image={image}",
            "environment.cwd=/tmp",
        ]
        if who == "mini":
            _run_mini(CONFIG_DIR / name, specs)
        else:
            _run_wren(CONFIG_DIR / name, specs, tmp_path / "wren-run")
        assert len(server.completions) == 2, f"{who} made {len(server.completions)} requests"
        sent[who] = _sent(server)
    assert "line2" in sent["mini"][2]["content"] and "</returncode>" in sent["mini"][2]["content"]
    assert sent["wren"] == sent["mini"]


@pytest.mark.parametrize("name", ["mini.yaml", "mini_textbased.yaml"])
def test_timeouts_and_format_errors_read_as_in_mini_swe_agent(name, scripted_server, tmp_path):
    """A command that times out, and (text-based) a reply without an action, get the same messages."""
    path = CONFIG_DIR / name
    style = STYLE.get(name, (None, None))[1]
    submit = _script(style)[-1]
    if style is None:
        slow = {"content": "Wait.", "tool_calls": [{"arguments": {"command": "echo started; sleep 30"}}]}
        script = [slow, submit]
    else:
        script = ["THOUGHT: no action in this reply.", style.format("echo started; sleep 30"), submit]
    repo = make_git_repo(tmp_path / "repo", {"hello.txt": "hi\n"})
    sent = {}
    for who in ("mini", "wren"):
        server = scripted_server(script)
        specs = [*_overrides(name, server.url, repo), "environment.timeout=1"]
        if who == "mini":
            _run_mini(path, specs)
        else:
            _run_wren(path, specs, tmp_path / "wren-run")
        assert len(server.completions) == len(script), f"{who} made {len(server.completions)} requests"
        sent[who] = _sent(server)
    assert "timed out after 1 seconds" in sent["mini"][-1]["content"]
    assert sent["wren"] == sent["mini"]


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_unsupported_services_alone_are_named_in_one_error(name, tmp_path):
    from wren.config.loader import load_config_dict
    from wren.exceptions import ConfigError

    with pytest.raises(ConfigError) as err:
        load_config_dict([str(CONFIG_DIR / name)])
    message = str(err.value)
    assert "\n" not in message
    for key in UNSUPPORTED[name]:
        assert repr(key) in message


def test_every_shipped_config_is_covered():
    assert {"default.yaml", "mini.yaml", "mini_textbased.yaml", "benchmarks/swebench.yaml"} <= set(SHIPPED)
    for name in SHIPPED:
        assert isinstance(yaml.safe_load((CONFIG_DIR / name).read_text()), dict), name
    json.dumps(SHIPPED)  # the parametrization ids are plain names
