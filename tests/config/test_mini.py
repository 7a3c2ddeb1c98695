"""Translating mini-swe-agent configs: what each key becomes, what is an error, how files and overrides merge."""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

import pytest
import yaml

from wren.bench.config import BenchWrenConfig
from wren.config.assemble import assemble_config
from wren.config.loader import BUILTIN_DIR, load_config_dict
from wren.config.mini import is_mini_config, translate
from wren.config.schema import InteractiveWrenConfig
from wren.environments import environment_class
from wren.exceptions import ConfigError, FormatError
from wren.models.actions import parse_action

os.environ.setdefault("MSWEA_SILENT_STARTUP", "1")
pytest.importorskip("minisweagent")
CONFIG_DIR = Path(str(files("minisweagent") / "config"))
SHIPPED = sorted(CONFIG_DIR.rglob("*.yaml"))


def _write(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_detection_tells_mini_swe_agent_files_from_wren_ones():
    assert SHIPPED and all(is_mini_config(yaml.safe_load(p.read_text())) for p in SHIPPED)
    wren_files = [*BUILTIN_DIR.glob("*.yaml"), *(BUILTIN_DIR.parent / "catalog").glob("*.yaml")]
    assert wren_files and not any(is_mini_config(yaml.safe_load(p.read_text()) or {}) for p in wren_files)
    assert is_mini_config({"model": {"model_class": "litellm_textbased"}})
    assert not is_mini_config({"model": {"model_class": "scripted"}, "agent": {"step_limit": 3}})


def test_model_kwargs_map_to_wren_fields_and_the_rest_is_sent_as_given(tmp_path):
    registry = tmp_path / "registry.json"
    registry.write_text(
        json.dumps({"hosted_vllm/qwen": {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}})
    )
    t = translate(
        {
            "model": {
                "model_name": "hosted_vllm/qwen",
                "litellm_model_registry": str(registry),
                "model_kwargs": {
                    "api_base": "http://127.0.0.1:8000/v1",
                    "api_key": "$VLLM_KEY",
                    "temperature": 0.7,
                    "top_p": 0.9,
                    "max_tokens": 512,
                    "extra_body": {"chat_template_kwargs": {"enable_thinking": False}},
                    "extra_headers": {"X-Team": "a"},
                    "seed": 3,
                    "num_retries": 2,
                    "drop_params": True,
                },
            }
        }
    )
    model = t.config["model"]
    assert model["name"] == "hosted_vllm/qwen" and model["api_base"] == "http://127.0.0.1:8000/v1"
    assert (model["api_key"], model["temperature"], model["top_p"]) == ("$VLLM_KEY", 0.7, 0.9)
    assert model["max_output_tokens"] == 512 and model["headers"] == {"X-Team": "a"}
    assert model["completion_kwargs"] == {
        "extra_body": {"chat_template_kwargs": {"enable_thinking": False}},
        "seed": 3,
    }
    assert model["retries"] == 3 and model["input_cost_per_token"] == 1e-7
    assert t.config["agent"]["action_format"] == "toolcall"
    assert any("drop_params" in n for n in t.notes)
    # mini-swe-agent sends no temperature unless asked to; neither does the translation.
    assert translate({"model": {"model_name": "x"}}).config["model"]["temperature"] is None


def test_model_classes_pick_the_action_format():
    text = translate({"model": {"model_name": "m", "model_class": "litellm_textbased"}}).config
    assert text["agent"]["action_format"] == "text"
    assert text["agent"]["action_regex"] == r"```mswea_bash_command\s*\n(.*?)\n```"
    router = translate({"model": {"model_name": "minimax/minimax-m2", "model_class": "openrouter"}}).config
    assert router["model"]["name"] == "openrouter/minimax/minimax-m2"
    dotted = "minisweagent.models.litellm_textbased_model.LitellmTextbasedModel"
    assert translate({"model": {"model_class": dotted}}).config["agent"]["action_format"] == "text"


def test_regex_actions_parse_like_mini_swe_agent():
    regex = "<mswea_bash_command>(.*?)</mswea_bash_command>"
    action = parse_action({"content": "x <mswea_bash_command> ls -la\n</mswea_bash_command>"}, "text", regex)
    assert action.command == "ls -la"
    with pytest.raises(FormatError) as err:
        parse_action(
            {
                "content": f"<mswea_bash_command>a</mswea_bash_command>{'<mswea_bash_command>b</mswea_bash_command>'}"
            },
            "text",
            regex,
        )
    assert str(err.value) == "Expected exactly 1 action, found 2." and err.value.actions == ["a", "b"]
    with pytest.raises(ConfigError, match=r"config key 'agent\.action_regex': .*not a regular expression"):
        assemble_config(["agent.action_regex=(unclosed"])


def test_environment_sections_become_valid_wren_environment_configs():
    from wren.config.loader import validate

    for path in SHIPPED:
        data = yaml.safe_load(path.read_text())
        try:
            env = translate(data).config["environment"]
        except ConfigError:
            continue  # the services Wren does not speak; see the next test
        cls = environment_class(env["environment_class"])
        validate(cls.config_class, env, where="environment")  # every key is a field of the Wren environment
    env = translate(yaml.safe_load((CONFIG_DIR / "benchmarks" / "programbench.yaml").read_text())).config[
        "environment"
    ]
    assert (
        env["environment_class"] == "docker"
        and "--rm" not in env["run_args"]
        and "--network" in env["run_args"]
    )
    sing = translate(
        {"environment": {"environment_class": "singularity", "image": "x.sif", "exec_args": ["--contain"]}}
    )
    assert sing.config["environment"]["environment_class"] == "apptainer"
    assert translate({"environment": {"interpreter": ["sh", "-c"]}}).config["environment"]["shell"] == "sh"
    assert translate({"environment": {"pull_timeout": 300}}).config["environment"]["start_timeout"] == 300


def test_keys_without_a_wren_counterpart_are_named_in_one_error():
    data = {
        "model": {"model_name": "gpt-5-mini", "model_class": "portkey", "provider": "@openai"},
        "environment": {"environment_class": "swerex_modal"},
        "run": {"task": "fix it"},
        "agent": {"agent_class": "my.pkg.Agent"},
    }
    with pytest.raises(ConfigError) as err:
        translate(data)
    message = str(err.value)
    assert "\n" not in message
    for key in ("model.model_class", "environment.environment_class", "run.task", "agent.agent_class"):
        assert f"'{key}'" in message
    with pytest.raises(ConfigError, match=r"environment\.interpreter.*allowed: \[SHELL, '-c'\]"):
        translate({"environment": {"interpreter": ["bash", "-lc"]}})
    with pytest.raises(
        ConfigError, match=r"config key 'model\.observation_template': the template does not parse"
    ):
        translate({"model": {"observation_template": "{% if output.returncode %}"}})
    with pytest.raises(ConfigError, match=r"model\.model_kwargs\.drop_params"):
        translate({"model": {"model_kwargs": {"drop_params": False}}})


def test_keys_neither_knows_reach_wrens_validation_which_names_them(tmp_path):
    path = _write(tmp_path / "m.yaml", {"model": {"model_name": "openai/x", "model_kwrags": {}}})
    with pytest.raises(ConfigError, match=r"unknown config key 'model\.model_kwrags'"):
        assemble_config([path], schema=InteractiveWrenConfig)


def test_files_merge_as_mini_swe_agent_merges_them_and_overrides_go_where_they_belong(tmp_path):
    swebench = str(CONFIG_DIR / "benchmarks" / "swebench.yaml")
    mine = _write(
        tmp_path / "mine.yaml", {"model": {"model_class": "litellm_textbased", "model_kwargs": {"seed": 1}}}
    )
    wren_file = _write(tmp_path / "wren.yaml", {"agent": {"step_limit": 7}})
    specs = [swebench, mine, wren_file, "model.model_kwargs.temperature=0.5", "model.api_base=http://h/v1"]
    data = load_config_dict(specs)
    # The second mini-swe-agent file changed the class of the first one's model: its templates stay.
    assert data["agent"]["action_format"] == "text"
    assert (
        data["agent"]["system_template"]
        == yaml.safe_load(Path(swebench).read_text())["agent"]["system_template"]
    )
    assert data["model"]["completion_kwargs"] == {"parallel_tool_calls": True, "seed": 1}
    assert data["model"]["temperature"] == 0.5 and data["model"]["api_base"] == "http://h/v1"
    assert data["agent"]["step_limit"] == 7  # a Wren file after them wins
    assert data["model"]["name"] == "anthropic/claude-sonnet-4-5-20250929"


def test_declared_format_and_bad_format(tmp_path):
    path = _write(tmp_path / "plain.yaml", {"agent": {"step_limit": 9}})
    assert load_config_dict([path])["agent"]["max_format_errors"] == 5  # read as Wren's
    declared = load_config_dict([path], config_format="mini")
    assert declared["agent"]["max_format_errors"] == 3 and declared["agent"]["step_limit"] == 9
    assert (
        load_config_dict(["model.model_name=openai/x"], config_format="mini")["model"]["name"] == "openai/x"
    )
    with pytest.raises(ConfigError, match="--config-format must be one of auto, wren, mini, not 'yaml'"):
        load_config_dict([path], config_format="yaml")


def test_batch_runs_take_interactive_configs(tmp_path):
    notes: list[str] = []
    cfg = assemble_config(
        [str(CONFIG_DIR / "mini.yaml"), "model.model_name=openai/x"], schema=BenchWrenConfig, notes=notes
    )
    assert cfg.agent.step_limit == 0 and any(n.startswith("agent.mode") for n in notes)
    run = assemble_config(
        [str(CONFIG_DIR / "mini.yaml"), "model.model_name=openai/x", "agent.mode=yolo"],
        schema=InteractiveWrenConfig,
    )
    assert run.agent.mode == "yolo"


def test_template_variables_of_mini_swe_agent_are_defined(tmp_path):
    from jinja2 import Environment, StrictUndefined

    t = translate(
        {
            "agent": {
                "system_template": "{{ n_model_calls }}/{{ model_cost }}/{{ wall_time_limit_seconds }}/{{ model_name }}"
            },
            "model": {"model_name": "m"},
        }
    )
    rendered = (
        Environment(undefined=StrictUndefined)
        .from_string(t.config["agent"]["system_template"])
        .render(n_steps=2, cost=0.5, wall_time_limit=60, name="m")
    )
    assert rendered == "2/0.5/60/m"


def test_interactive_confirm_mode_with_a_mini_swe_agent_config(buggy_repo):
    from tests.agents.test_interactive import ScriptedUser
    from wren.agents.interactive import InteractiveAgent
    from wren.environments import get_environment
    from wren.models.scripted import ScriptedModel

    cfg = assemble_config(
        [
            str(CONFIG_DIR / "mini_textbased.yaml"),
            "model.model_class=litellm_textbased",
            "model.model_name=openai/x",
            'agent.whitelist_actions=["^cat "]',
            f"environment.cwd={buggy_repo}",
        ],
        schema=InteractiveWrenConfig,
    )
    assert cfg.agent.mode == "confirm"  # mini_textbased.yaml's own
    replies = ["cat calc.py", "sed -i 's/a - b/a + b/' calc.py", "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"]
    outputs = [f"THOUGHT: go.\n\n```mswea_bash_command\n{r}\n```" for r in replies]
    # `cat` is whitelisted; the edit and the submission are confirmed; then no new task.
    user = ScriptedUser([("confirm", ""), ("confirm", ""), ("new_task", "")])
    agent = InteractiveAgent(
        ScriptedModel(outputs=outputs), get_environment(cfg.environment), config=cfg.agent, user=user
    )
    assert agent.run("fix add").exit_status == "Submitted"
    assert [kind for kind, _ in user.asked] == ["confirm", "confirm", "new_task"]
    assert "return a + b" in (buggy_repo / "calc.py").read_text()


def test_names_of_shipped_configs_resolve_as_in_mini_swe_agent():
    mini_default = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text())["agent"]["system_template"]
    swebench = load_config_dict(["swebench", "model.model_name=x"])
    assert swebench["agent"]["step_limit"] == 250 and swebench["environment"]["cwd"] == "/testbed"
    # Wren's own built-in of the same name comes first, unless the format is declared.
    assert load_config_dict(["default"])["agent"]["max_format_errors"] == 5
    declared = load_config_dict(["default.yaml"], config_format="mini")
    assert declared["agent"]["system_template"] == mini_default
    with pytest.raises(ConfigError, match="config file not found: swebench"):
        load_config_dict(["swebench"], config_format="wren")


def test_slm_with_a_mini_swe_agent_model_override_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"'model\.model_kwargs\.temperature' \(a mini-swe-agent key\)"):
        assemble_config(
            [str(CONFIG_DIR / "mini.yaml"), "model.model_kwargs.temperature=0.2"], slm="gemma-3-270m"
        )
