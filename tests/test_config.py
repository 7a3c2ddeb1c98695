from __future__ import annotations

from pathlib import Path

import pytest

from wren.config.assemble import assemble_config
from wren.config.loader import deep_merge, env_overrides, load_config_dict, parse_override, validate
from wren.config.schema import WrenConfig, load_config
from wren.exceptions import ConfigError, ModelNotFound


def test_override_parses_yaml_values():
    assert parse_override("agent.step_limit=7") == {"agent": {"step_limit": 7}}
    assert parse_override("model.api_base=http://h:1/v1") == {"model": {"api_base": "http://h:1/v1"}}
    assert parse_override("model.completion_kwargs={stop: [x]}") == {
        "model": {"completion_kwargs": {"stop": ["x"]}}
    }
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("agent.step_limit")


def test_deep_merge_merges_nested_and_replaces_leaves():
    merged = deep_merge({"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": 3}, "d": [2]})
    assert merged == {"a": {"b": 3, "c": 2}, "d": [2]}


def test_precedence_command_line_over_environment_over_yaml_over_builtin(tmp_path):
    builtin = load_config(environ={})
    assert builtin.agent.step_limit == 100
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("agent: {step_limit: 11, cost_limit: 1.5}\nmodel: {name: openai/from-yaml}\n")
    cfg = load_config([str(yaml_file)], environ={})
    assert (cfg.agent.step_limit, cfg.model.name) == (11, "openai/from-yaml")
    environ = {"WREN_AGENT__STEP_LIMIT": "22", "WREN_MODEL__NAME": "openai/from-env", "WREN_HOME": "/x"}
    cfg = load_config([str(yaml_file)], environ=environ)
    assert (cfg.agent.step_limit, cfg.agent.cost_limit, cfg.model.name) == (22, 1.5, "openai/from-env")
    cfg = load_config([str(yaml_file), "agent.step_limit=33"], environ=environ)
    assert (cfg.agent.step_limit, cfg.model.name) == (33, "openai/from-env")


def test_env_overrides_ignore_plain_wren_variables():
    assert env_overrides({"WREN_HOME": "/tmp", "WREN_RUN__OUTPUT": "x", "OTHER__A": "1"}) == {
        "run": {"output": "x"}
    }


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("agent.step_limt=3", "unknown config key 'agent.step_limt' (did you mean 'step_limit'?)"),
        ("model.api_bse=http://x", "unknown config key 'model.api_bse' (did you mean 'api_base'?)"),
        ("modle.name=x", "unknown config key 'modle'"),
        ("agent.step_limit=lots", "config key 'agent.step_limit'"),
    ],
)
def test_typo_in_a_key_is_an_error_naming_it(override, message):
    with pytest.raises(ConfigError) as info:
        validate(WrenConfig, load_config_dict([override], environ={}))
    assert message in str(info.value)


def test_unknown_builtin_or_missing_file_is_a_clear_error():
    with pytest.raises(ConfigError, match="built-in configs: .*default.*slm.*toolcall"):
        load_config_dict(["no-such-config.yaml"], environ={})


def test_builtin_configs_validate():
    for name in ("default", "toolcall", "slm"):
        cfg = load_config([name], environ={})
        assert cfg.agent.system_template


def test_slm_provider_replaces_model_and_command_line_still_wins(tmp_path, monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("WREN_"):
            monkeypatch.delenv(k)
    f = tmp_path / "p.yaml"
    f.write_text(
        "model: {name: openai/big, api_base: http://big/v1, temperature: 0.7}\n"
        "slm_providers:\n  tiny: {name: hosted_vllm/tiny, api_base: http://tiny/v1}\n"
    )
    cfg = assemble_config([str(f)], slm="tiny")
    assert (cfg.model.name, cfg.model.api_base, cfg.model.temperature) == (
        "hosted_vllm/tiny",
        "http://tiny/v1",
        0.0,
    )
    cfg = assemble_config([str(f), "model.temperature=0.3"], slm="tiny")
    assert cfg.model.temperature == 0.3
    with pytest.raises(ModelNotFound) as info:
        assemble_config([str(f)], slm="tinny")
    assert "tiny" in str(info.value) and "qwen3-8b" in str(info.value)


@pytest.fixture
def no_wren_env(monkeypatch):
    for k in list(__import__("os").environ):
        if k.startswith("WREN_"):
            monkeypatch.delenv(k)


SLM_SYSTEM = load_config(["slm"], environ={}).agent.system_template


def test_the_bundled_entry_brings_the_small_model_config_under_the_users_own(tmp_path, no_wren_env):
    started: list[int] = []
    idle: list[float] = []
    adapters: list[list[str]] = []

    def serve(port: int, idle_timeout: float, lora: list[str] = ()) -> str:
        started.append(port)
        idle.append(idle_timeout)
        adapters.append([Path(p).name for p in lora])
        return f"http://127.0.0.1:{port}/v1"

    mine = tmp_path / "mine.yaml"
    mine.write_text("agent: {step_limit: 7}\n")
    for kwargs in ({"slm": "gemma-3-270m"}, {"model": "gemma-3-270m"}, {}):
        cfg = assemble_config(
            [str(mine), "run.embedded_port=9123", "run.embedded_idle_timeout=30"], embedded=serve, **kwargs
        )
        assert cfg.agent.system_template == SLM_SYSTEM and cfg.agent.demonstrations, kwargs
        assert cfg.agent.step_limit == 7  # the user's file wins over the entry's config
        assert cfg.model.name == "openai/gemma-3-270m"
        assert cfg.model.completion_kwargs["stop"][0] == "<end_of_turn>"  # slm.yaml's model settings
        assert cfg.model.api_base == "http://127.0.0.1:9123/v1"
    assert started == [9123, 9123, 9123] and idle == [30.0, 30.0, 30.0]
    # The base entry is served bare; no model named is the default entry, the tuned one, with its adapter.
    assert adapters == [[], [], ["wren-edit-270m.gguf"]]
    # A given api_base starts nothing; without a server starter the entry's default address is used.
    cfg = assemble_config(["model.api_base=http://127.0.0.1:9/v1"], slm="gemma-3-270m", embedded=serve)
    assert cfg.model.api_base == "http://127.0.0.1:9/v1" and started == [9123, 9123, 9123]
    assert assemble_config([], slm="gemma-3-270m").model.api_base == "http://127.0.0.1:8765/v1"
    # Other models keep the default config, and naming a model in a file means no embedded default.
    assert assemble_config([], slm="qwen3-8b", embedded=serve).agent.demonstrations == []
    named = tmp_path / "named.yaml"
    named.write_text("model: {name: openai/mine, api_base: 'http://127.0.0.1:9/v1'}\n")
    cfg = assemble_config([str(named)], embedded=serve)
    assert (cfg.model.name, cfg.agent.demonstrations) == ("openai/mine", [])
    assert started == [9123, 9123, 9123]


def test_a_provider_entry_names_the_configs_its_model_needs(tmp_path, no_wren_env):
    f = tmp_path / "p.yaml"
    f.write_text(
        "slm_providers:\n"
        "  tiny: {name: openai/tiny, api_base: 'http://t/v1', config: [slm, agent.step_limit=9]}\n"
        "  odd: {name: openai/odd, config: {a: 1}}\n"
    )
    cfg = assemble_config([str(f)], slm="tiny")
    assert (cfg.model.name, cfg.agent.step_limit, cfg.agent.system_template) == ("openai/tiny", 9, SLM_SYSTEM)
    assert cfg.model.max_output_tokens == 128  # from slm.yaml's model section
    cfg = assemble_config([str(f), "agent.step_limit=4", "model.max_output_tokens=64"], slm="tiny")
    assert (cfg.agent.step_limit, cfg.model.max_output_tokens) == (4, 64)
    with pytest.raises(ConfigError, match=r"'slm_providers.odd.config' must be a list of config specs"):
        assemble_config([str(f)], slm="odd")
    f.write_text("slm_providers:\n  bad: {name: openai/b, config: [no-such-config]}\n")
    with pytest.raises(ConfigError, match="config file not found: no-such-config"):
        assemble_config([str(f)], slm="bad")
