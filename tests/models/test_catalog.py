from __future__ import annotations

import pytest

from wren.exceptions import ConfigError, ModelNotFound
from wren.models import get_model
from wren.models.catalog import (
    CatalogEntry,
    choose_model_name,
    choose_slm,
    known_models,
    load_catalog,
    load_catalog_file,
    resolve_model_name,
    resolve_slm,
)


def entry(wren: dict, slugs: dict | None = None) -> CatalogEntry:
    return CatalogEntry.model_validate(
        {"internal_name": "m-7b", "provider_slugs": slugs or {}, "agent_specific": {"wren": wren}}
    )


def test_name_resolution_order():
    slugs = {"hosted_vllm": "hosted_vllm/Org/M-7B", "openrouter": "openrouter/org/m-7b"}
    assert (
        entry({"model_name": "openai/explicit", "model_class": "openrouter"}, slugs).resolved_name()
        == "openai/explicit"
    )
    assert entry({"model_class": "openrouter"}, slugs).resolved_name() == "openrouter/org/m-7b"
    assert entry({"model_class": "ollama"}, slugs).resolved_name() == "m-7b"


def test_entry_becomes_a_model_config_with_its_kwargs_and_reasoning():
    e = entry({"model_class": "hosted_vllm", "api_base": "http://h/v1", "reasoning": "disabled", "model_kwargs": {"temperature": 0.6}},
              {"hosted_vllm": "hosted_vllm/Org/M"})  # fmt: skip
    assert e.model_config_dict() == {
        "name": "hosted_vllm/Org/M",
        "api_base": "http://h/v1",
        "reasoning": "disabled",
        "temperature": 0.6,
    }
    model = get_model(e.model_config_dict())
    assert model.config.reasoning == "disabled" and model.use_direct


def test_catalog_files_load_and_extra_dirs_override(tmp_path):
    builtin = load_catalog()
    assert "gemma-3-270m" in builtin and "qwen3-8b" in builtin
    (tmp_path / "mine.yaml").write_text(
        "internal_name: qwen3-8b\nprovider_slugs: {ollama: ollama_chat/qwen3:8b}\n"
        "agent_specific: {wren: {model_class: ollama, api_base: 'http://127.0.0.1:11434'}}\n"
    )
    assert load_catalog([tmp_path])["qwen3-8b"].resolved_name() == "ollama_chat/qwen3:8b"


def test_catalog_typo_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("internal_name: x\nagent_specific: {wren: {modle_class: ollama}}\n")
    with pytest.raises(ConfigError, match="unknown config key 'bad.yaml.agent_specific.wren.modle_class'"):
        load_catalog_file(bad)


def test_providers_win_over_catalog_and_unknown_names_are_listed():
    providers = {
        "qwen3-8b": {"name": "openai/mine", "api_base": "http://x/v1"},
        "tiny": {"name": "openai/tiny"},
    }
    assert known_models(providers)["qwen3-8b"]["name"] == "openai/mine"
    assert resolve_slm("tiny", providers) == {"name": "openai/tiny"}
    with pytest.raises(ModelNotFound, match="unknown SLM 'tinny'; known: .*gemma-3-270m.*tiny"):
        resolve_slm("tinny", providers)


def test_dash_m_uses_the_catalog_or_a_plain_litellm_name():
    assert resolve_model_name("qwen3-8b")["name"] == "hosted_vllm/Qwen/Qwen3-8B"
    assert resolve_model_name("anthropic/claude-x") == {"name": "anthropic/claude-x"}


def test_an_entry_names_the_configs_it_needs_and_an_embedded_one_leaves_its_address_open():
    e = entry({"model_class": "llamacpp", "api_base": "http://127.0.0.1:8765/v1", "config": ["slm"], "embedded": True},
              {"llamacpp": "openai/m"})  # fmt: skip
    choice = e.choice()
    assert (choice.model, choice.config, choice.embedded) == ({"name": "openai/m"}, ["slm"], True)
    assert choice.model_at_default()["api_base"] == "http://127.0.0.1:8765/v1"
    assert e.model_config_dict()["api_base"] == "http://127.0.0.1:8765/v1"  # `wren models check` asks there
    plain = entry({"model_class": "hosted_vllm", "api_base": "http://h/v1"}, {"hosted_vllm": "hosted_vllm/M"})
    assert plain.choice().model["api_base"] == "http://h/v1" and not plain.choice().embedded


def test_the_bundled_entry_needs_the_small_model_config():
    choice = choose_slm("gemma-3-270m")
    assert choice.config == ["slm"] and choice.embedded
    assert choose_model_name("gemma-3-270m") == choice
    assert choose_model_name("openai/other").model == {"name": "openai/other"}


def test_a_provider_config_key_is_kept_out_of_its_model_config():
    providers = {"tiny": {"name": "openai/tiny", "config": "slm"}}
    assert choose_slm("tiny", providers).config == ["slm"]
    assert resolve_slm("tiny", providers) == {"name": "openai/tiny"}
    assert known_models(providers)["tiny"] == {"name": "openai/tiny"}
