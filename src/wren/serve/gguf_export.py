"""Training directory -> GGUF, so that `wren serve` (llama.cpp) serves a tuned model at once.

The tokenizer is copied from the GGUF the model was converted from (every `tokenizer.*` field):
rebuilt from the training directory alone, the SentencePiece vocabulary comes out wrong. The
hyperparameters come from the training directory's config and the tensors are renamed with
gguf-py's map for the architecture. Gemma's norms are stored as (1 + w) in GGUF and as w in
transformers, hence the +1. A LoRA adapter can also be written alone, as an adapter GGUF that
llama.cpp applies over the base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from wren.exceptions import ConfigError
from wren.serve.convert import GEMMA_CHAT_TEMPLATE, source_gguf

SUPPORTED = {"gemma3_text": "gemma3", "gemma3": "gemma3"}
Precision = Literal["f32", "f16", "q8_0"]


def _text_config(model_dir: Path) -> dict[str, Any]:
    config = json.loads((model_dir / "config.json").read_text())
    return config.get("text_config", config)


def _arch(config: dict[str, Any]) -> str:
    arch = SUPPORTED.get(config.get("model_type", ""))
    if arch is None:
        raise ConfigError(
            f"GGUF export supports {', '.join(sorted(set(SUPPORTED.values())))} models, not "
            f"{config.get('model_type')!r}; use llama.cpp's convert_hf_to_gguf.py for others"
        )
    return arch


def _rope_theta(config: dict[str, Any]) -> float:
    params = config.get("rope_parameters") or {}
    full = params.get("full_attention", params) if isinstance(params, dict) else {}
    return float(full.get("rope_theta") or config.get("rope_theta") or 10000.0)


def _copy_tokenizer(writer: Any, source: str) -> None:
    import gguf

    from wren.serve.gguf_meta import read_metadata

    for name, (vtype, value, sub_type) in read_metadata(source, "tokenizer.").items():
        writer.add_key_value(
            name,
            value,
            gguf.GGUFValueType(vtype),
            sub_type=gguf.GGUFValueType(sub_type) if sub_type is not None else None,
        )


def _has_chat_template(source: str) -> bool:
    from wren.serve.gguf_meta import read_metadata

    return "tokenizer.chat_template" in read_metadata(source, "tokenizer.chat_template")


def _state_dict(model_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(path)))
    if not state:
        raise ConfigError(f"{model_dir} holds no *.safetensors weights")
    return state


def _tensor(writer: Any, name: str, data: np.ndarray, precision: Precision) -> None:
    import gguf

    if data.ndim == 1 or precision == "f32":
        writer.add_tensor(name, data.astype(np.float32))
    elif precision == "f16":
        writer.add_tensor(name, data.astype(np.float16))
    else:
        quantized = gguf.quants.quantize(data.astype(np.float32), gguf.GGMLQuantizationType.Q8_0)
        writer.add_tensor(
            name, quantized, raw_shape=quantized.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0
        )


def _finish(writer: Any, tmp: Path, output: Path) -> Path:
    """Write the file under its temporary name, then move it into place (no half-written GGUF)."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(output)
    return output


def export_gguf(
    model_dir: str | Path,
    output: str | Path,
    *,
    tokenizer_gguf: str = "",
    precision: Precision = "q8_0",
    name: str = "",
) -> Path:
    """Write the model of a training directory as one GGUF file."""
    import gguf

    model_dir, output = Path(model_dir), Path(output)
    source = tokenizer_gguf or source_gguf(model_dir)
    if not source or not Path(source).is_file():
        raise ConfigError(
            f"{model_dir} does not say which GGUF it came from; pass --tokenizer-gguf FILE (the original GGUF) "
            "so that its tokenizer is copied"
        )
    config = _text_config(model_dir)
    arch = _arch(config)
    head_dim = int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])
    scalar = config.get("query_pre_attn_scalar")
    if scalar is not None and int(scalar) != head_dim:
        raise ConfigError(
            f"query_pre_attn_scalar {scalar} differs from head_dim {head_dim}; llama.cpp's {arch} cannot express it"
        )
    n_blocks = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, n_blocks)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_name(name or model_dir.name)
    writer.add_file_type(
        {
            "f32": gguf.LlamaFileType.ALL_F32,
            "f16": gguf.LlamaFileType.MOSTLY_F16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        }[precision]
    )
    writer.add_context_length(int(config.get("max_position_embeddings", 32768)))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(n_blocks)
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(_rope_theta(config))
    if config.get("sliding_window"):
        writer.add_sliding_window(int(config["sliding_window"]))
    _copy_tokenizer(writer, source)
    if not _has_chat_template(source):
        # The bundled base model has none; servers would fall back to ChatML, which it never saw.
        writer.add_chat_template(GEMMA_CHAT_TEMPLATE)
    for key, tensor in sorted(_state_dict(model_dir).items()):
        if key == "lm_head.weight":
            continue  # tied to the token embeddings
        # A multimodal checkpoint keeps its text model under model.language_model.
        base = key.removesuffix(".weight").replace("model.language_model.", "model.")
        target = names.get_name(base)
        if target is None:
            raise ConfigError(f"{model_dir}: no GGUF name for tensor {key}")
        data = tensor.float().numpy()
        if base.endswith("norm"):
            data = data + 1.0
        _tensor(writer, f"{target}.weight", data, precision)
    return _finish(writer, tmp, output)


def _adapter_base_config(adapter_dir: Path, base_model_dir: str | Path | None) -> dict[str, Any]:
    if base_model_dir:
        return _text_config(Path(base_model_dir))
    settings = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = Path(settings.get("base_model_name_or_path") or "")
    if not (base / "config.json").is_file():
        raise ConfigError(
            f"{adapter_dir} names base model {str(base)!r}, which has no config.json here; pass --base-model DIR"
        )
    return _text_config(base)


def export_adapter_gguf(
    adapter_dir: str | Path, output: str | Path, *, base_model_dir: str | Path | None = None
) -> Path:
    """Write a PEFT LoRA adapter as a llama.cpp adapter GGUF, served beside its base model's GGUF.

    llama.cpp adds B·A·(alpha/r) to each adapted weight, as PEFT does, so `adapter.lora.alpha` is
    PEFT's lora_alpha. Only linear layers can be carried (llama.cpp adapts no embeddings or norms).
    """
    import gguf
    from safetensors.torch import load_file

    adapter_dir, output = Path(adapter_dir), Path(output)
    settings_path = adapter_dir / "adapter_config.json"
    weights_path = adapter_dir / "adapter_model.safetensors"
    if not settings_path.is_file() or not weights_path.is_file():
        raise ConfigError(
            f"{adapter_dir} is not a PEFT adapter (adapter_config.json + adapter_model.safetensors)"
        )
    settings = json.loads(settings_path.read_text())
    if settings.get("peft_type") != "LORA":
        raise ConfigError(
            f"{adapter_dir}: only LoRA adapters can be written as GGUF, not {settings.get('peft_type')}"
        )
    if settings.get("use_rslora") or settings.get("use_dora"):
        raise ConfigError(
            f"{adapter_dir}: rsLoRA and DoRA adapters have no llama.cpp form; merge them instead"
        )
    config = _adapter_base_config(adapter_dir, base_model_dir)
    arch = _arch(config)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, int(config["num_hidden_layers"]))
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(settings.get("lora_alpha", settings.get("r", 8))))
    for key, tensor in sorted(load_file(str(weights_path)).items()):
        # base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight -> blk.0.attn_q.weight.lora_a
        module, _, part = key.removeprefix("base_model.model.").rpartition(".lora_")
        if part not in ("A.weight", "B.weight"):
            raise ConfigError(f"{adapter_dir}: tensor {key} is not a LoRA A or B matrix")
        target = names.get_name(module.replace("model.language_model.", "model."))
        if target is None:
            raise ConfigError(f"{adapter_dir}: no GGUF name for adapted module {module}")
        writer.add_tensor(f"{target}.weight.lora_{part[0].lower()}", tensor.float().numpy())
    return _finish(writer, tmp, output)
