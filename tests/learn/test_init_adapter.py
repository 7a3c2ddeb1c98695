"""Training on from an adapter GGUF: the GGUF read back into a PEFT adapter computes what the
adapter it was written from computes, training starts from it, and wrong inputs are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wren.exceptions import ConfigError

MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _random_adapter(model_dir: Path, out: Path) -> Path:
    """A saved PEFT LoRA (r 4, alpha 8) over `model_dir` whose B is not zero, so it changes the model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    tuned = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=MODULES, lora_dropout=0.0))
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    tuned.save_pretrained(str(out))
    return out


def _logits(model_dir: Path, adapter_dir: Path) -> object:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    adapted = PeftModel.from_pretrained(model, str(adapter_dir))
    with torch.no_grad():
        return adapted(torch.tensor([[2, 5, 9, 14, 3, 7]])).logits


def test_an_adapter_gguf_read_back_computes_what_its_peft_adapter_does(tiny_model: Path, tmp_path: Path):
    import torch

    from wren.serve.adapter_import import import_adapter_gguf
    from wren.serve.gguf_export import export_adapter_gguf

    original = _random_adapter(tiny_model, tmp_path / "adapter")
    gguf = export_adapter_gguf(original, tmp_path / "adapter.gguf", base_model_dir=tiny_model)
    back = import_adapter_gguf(gguf, tmp_path / "back", tiny_model)

    settings = json.loads((back / "adapter_config.json").read_text())
    assert (settings["r"], settings["lora_alpha"]) == (4, 8.0)
    assert settings["target_modules"] == sorted(MODULES)
    expected, got = _logits(tiny_model, original), _logits(tiny_model, back)
    assert torch.allclose(got, expected, atol=1e-5)
    # The adapter matters: without it the model computes something else.
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    with torch.no_grad():
        alone = plain(torch.tensor([[2, 5, 9, 14, 3, 7]])).logits
    assert not torch.allclose(alone, expected, atol=1e-2)


def test_training_goes_on_from_an_adapter_gguf(tiny_model: Path, tmp_path: Path):
    from tests.learn.tiny import sample_records
    from wren.learn.data.export import write_jsonl
    from wren.learn.train.finetune import TrainConfig, train
    from wren.serve.gguf_export import export_adapter_gguf

    gguf = export_adapter_gguf(
        _random_adapter(tiny_model, tmp_path / "adapter"), tmp_path / "a.gguf", base_model_dir=tiny_model
    )
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, sample_records(4))
    out = tmp_path / "run"
    log = train(
        TrainConfig(
            model=str(tiny_model), data=str(data), output=str(out), max_steps=2, init_adapter=str(gguf)
        )
    )
    assert log["steps"] == 2
    # It trained the given adapter (rank 4, alpha 8), not a new one with the default settings.
    settings = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (settings["r"], settings["lora_alpha"]) == (4, 8.0)
    assert (out / "init-adapter" / "adapter_model.safetensors").is_file()


def test_bad_starting_adapters_are_clear_errors(tiny_model: Path, tmp_path: Path):
    from wren.learn.train.finetune import peft_adapter_dir

    text = tmp_path / "notes.gguf"
    text.write_text("not a model\n")
    with pytest.raises(ConfigError, match="is not a GGUF file"):
        peft_adapter_dir(str(text), tiny_model, tmp_path / "a")
    with pytest.raises(ConfigError, match="neither a file, a directory, nor a catalog entry"):
        peft_adapter_dir("no-such-model", tiny_model, tmp_path / "b")
    # The shipped model's entry names its adapter GGUF: read over a 2-layer model it fits nothing,
    # and the error says which tensor.
    from wren.models.catalog import builtin_catalog

    if builtin_catalog()["wren-edit-270m"].missing_adapters():
        pytest.skip("the shipped adapter is not installed")
    with pytest.raises(ConfigError, match=r"tensor blk\.\d+\.\w+\.weight\.lora_[ab]"):
        peft_adapter_dir("wren-edit-270m", tiny_model, tmp_path / "c")
