from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from wren.exceptions import ConfigError, ModelNotFound
from wren.models import get_model
from wren.models.catalog import (
    CATALOG_DIR,
    CatalogEntry,
    builtin_catalog,
    choose_model_name,
    choose_slm,
    default_model,
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


def test_the_builtin_catalog_marks_one_default_whose_adapters_are_installed(monkeypatch):
    monkeypatch.delenv("WREN_CATALOG", raising=False)
    default = default_model()
    entry = load_catalog()[default]
    assert entry.default and [n for n, e in load_catalog().items() if e.default] == [default]
    # Shipping a tuned default means shipping its adapter: a default that cannot be chosen fails here.
    assert entry.missing_adapters() == []
    assert choose_slm(default).embedded


def test_a_builtin_catalog_without_exactly_one_default_is_an_error(tmp_path):
    body = "agent_specific: {wren: {model_class: llamacpp, embedded: true}}\n"
    (tmp_path / "a.yaml").write_text(f"internal_name: a\n{body}")
    (tmp_path / "b.yaml").write_text(f"internal_name: b\n{body}")
    with pytest.raises(ConfigError, match="exactly one entry default: true, not 0"):
        builtin_catalog(tmp_path)
    (tmp_path / "a.yaml").write_text(f"internal_name: a\ndefault: true\n{body}")
    assert builtin_catalog(tmp_path)["a"].default
    (tmp_path / "b.yaml").write_text(f"internal_name: b\ndefault: true\n{body}")
    with pytest.raises(ConfigError, match=r"not 2 \(a, b\)"):
        builtin_catalog(tmp_path)


def test_the_tuned_entry_names_its_adapter_as_installed_package_data():
    entry = load_catalog()["wren-edit-270m"]
    wren = entry.agent_specific["wren"]
    assert wren.embedded and wren.lora == [str(CATALOG_DIR / "adapters" / "wren-edit-270m.gguf")]
    package_data = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    globs = package_data["tool"]["setuptools"]["package-data"]["wren"]
    assert any(fnmatch.fnmatch("config/catalog/adapters/wren-edit-270m.gguf", glob) for glob in globs)


def test_an_entry_without_its_adapter_is_listed_but_chosen_only_once_it_is_there(tmp_path, monkeypatch):
    """The built-in tuned entry, copied into a user catalog: its adapter is package data beside it,
    here a file that is not there yet."""
    (tmp_path / "wren-edit-270m.yaml").write_text((CATALOG_DIR / "wren-edit-270m.yaml").read_text())
    monkeypatch.setenv("WREN_CATALOG", str(tmp_path))
    adapter = tmp_path / "adapters" / "wren-edit-270m.gguf"
    assert load_catalog()["wren-edit-270m"].missing_adapters() == [str(adapter)]
    with pytest.raises(ConfigError, match=f"wren-edit-270m: the adapter {adapter} is not installed"):
        choose_slm("wren-edit-270m")
    # Nothing else breaks: the other names still resolve, and the tuned one is simply not offered.
    assert "wren-edit-270m" not in known_models() and "gemma-3-270m" in known_models()
    assert choose_slm("gemma-3-270m").lora == []
    listing = subprocess.run(
        [sys.executable, "-m", "wren.cli.main", "models", "list"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=120,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    assert "unavailable: the adapter wren-edit-270m.gguf is not installed" in listing.stdout
    assert "lora: wren-edit-270m.gguf" in listing.stdout

    adapter.parent.mkdir()
    adapter.write_bytes(b"GGUF")  # its presence is what the catalog checks; the server reads it
    assert choose_slm("wren-edit-270m").lora == [str(adapter)]
    assert "wren-edit-270m" in known_models()


def test_a_user_entry_marked_default_is_the_model_when_none_is_named(tmp_path, monkeypatch):
    from wren.config.assemble import assemble_config

    adapter = tmp_path / "adapters" / "wren-edit-270m.gguf"
    adapter.parent.mkdir()
    adapter.write_bytes(b"GGUF")
    text = (CATALOG_DIR / "wren-edit-270m.yaml").read_text()
    (tmp_path / "wren-edit-270m.yaml").write_text(text.replace("description:", "default: true\ndescription:"))
    monkeypatch.setenv("WREN_CATALOG", str(tmp_path))
    assert default_model() == "wren-edit-270m"
    asked: list[dict] = []

    def serve(port: int, **kw: object) -> str:
        asked.append(kw)
        return f"http://127.0.0.1:{port}/v1"

    # No model named: the default entry, with its adapter; --slm gemma-3-270m: the base, without.
    cfg = assemble_config(["run.embedded_port=9123"], embedded=serve)
    assert cfg.model.api_base == "http://127.0.0.1:9123/v1" and cfg.agent.demonstrations
    assemble_config(["run.embedded_port=9123"], slm="gemma-3-270m", embedded=serve)
    assert [kw.get("lora") for kw in asked] == [[str(adapter)], None]

    (tmp_path / "other.yaml").write_text("internal_name: other\ndefault: true\n")
    with pytest.raises(ConfigError, match="more than one user catalog entry is marked default: true"):
        default_model()
