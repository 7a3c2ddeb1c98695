"""A llama.cpp LoRA adapter GGUF back into a PEFT adapter directory, so training can go on from it.

The shipped `wren-edit-270m` is only an adapter GGUF (a few MB of package data); a user who wants
to tune it further on their own tasks needs its weights as PEFT reads them. llama.cpp and PEFT
apply the same B·A·(alpha/r), so the matrices are copied as they are; the tensor names are gguf-py's
map for the architecture, read backwards over the base model's own module names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wren.exceptions import ConfigError
from wren.serve.gguf_export import _arch, _text_config

_PARTS = {"lora_a": "lora_A", "lora_b": "lora_B"}


def _field(reader: Any, name: str) -> Any:
    field = reader.fields.get(name)
    return field.contents() if field is not None else None


def _base_modules(model_dir: Path) -> dict[str, list[int]]:
    """The base model's weight-bearing modules and their weights' shapes, from its safetensors headers."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{model_dir} holds no safetensors weights: give a training directory")
    modules = {}
    for path in files:
        with safe_open(str(path), framework="pt") as weights:
            for key in weights.keys():  # noqa: SIM118 (the handle is not iterable)
                if key.endswith(".weight"):
                    modules[key.removesuffix(".weight")] = list(weights.get_slice(key).get_shape())
    return modules


def import_adapter_gguf(
    adapter_gguf: str | Path, output: str | Path, base_model_dir: str | Path, *, lora_dropout: float = 0.0
) -> Path:
    """Write the LoRA adapter GGUF `adapter_gguf` as a PEFT adapter directory `output` over the
    training directory `base_model_dir` (the base model the adapter was trained over)."""
    import gguf
    import torch
    from safetensors.torch import save_file

    adapter_gguf, output, base_model_dir = Path(adapter_gguf), Path(output), Path(base_model_dir)
    if not adapter_gguf.is_file():
        raise ConfigError(f"adapter GGUF {adapter_gguf} does not exist")
    try:
        reader = gguf.GGUFReader(str(adapter_gguf))
    except (ValueError, OSError) as e:
        raise ConfigError(f"{adapter_gguf} is not a GGUF file: {e}") from e
    if _field(reader, "general.type") != "adapter" or _field(reader, "adapter.type") != "lora":
        raise ConfigError(f"{adapter_gguf} is not a LoRA adapter GGUF (general.type, adapter.type)")
    config = _text_config(base_model_dir)
    arch = _arch(config)
    if _field(reader, "general.architecture") != arch:
        raise ConfigError(
            f"{adapter_gguf} adapts a {_field(reader, 'general.architecture')} model, "
            f"not the {arch} model in {base_model_dir}"
        )
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, int(config["num_hidden_layers"]))
    shapes = _base_modules(base_model_dir)
    by_gguf_name = {}
    for module in shapes:
        target = names.get_name(module.replace("model.language_model.", "model."))
        if target is not None:
            by_gguf_name[target] = module
    tensors: dict[str, torch.Tensor] = {}
    ranks = set()
    for tensor in reader.tensors:
        stem, _, part = tensor.name.rpartition(".weight.")
        module = by_gguf_name.get(stem)
        if part not in _PARTS or module is None:
            raise ConfigError(f"{adapter_gguf}: tensor {tensor.name} adapts no module of {base_model_dir}")
        values = torch.from_numpy(tensor.data.copy()).to(torch.float32)
        # A is r x in, B is out x r: the side that is not the rank must match the base weight.
        shape = shapes[module]
        side = 1 if part == "lora_a" else 0
        if values.dim() != 2 or len(shape) != 2 or values.shape[side] != shape[side]:
            raise ConfigError(
                f"{adapter_gguf}: tensor {tensor.name} of shape {list(values.shape)} does not fit "
                f"{module} (weight {' x '.join(map(str, shape))}) of {base_model_dir}"
            )
        rank = values.shape[1 - side]
        tensors[f"base_model.model.{module}.{_PARTS[part]}.weight"] = values
        ranks.add(rank)
    if not tensors or len(ranks) != 1:
        raise ConfigError(f"{adapter_gguf}: expected LoRA matrices of one rank, found ranks {sorted(ranks)}")
    rank = ranks.pop()
    alpha = _field(reader, "adapter.lora.alpha")
    settings = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": float(alpha) if alpha is not None else float(rank),
        "lora_dropout": lora_dropout,
        "bias": "none",
        "target_modules": sorted({key.split(".")[-3] for key in tensors}),
        "base_model_name_or_path": str(base_model_dir.resolve()),
        "inference_mode": False,
    }
    output.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(output / "adapter_model.safetensors"))
    (output / "adapter_config.json").write_text(json.dumps(settings, indent=2))
    return output
