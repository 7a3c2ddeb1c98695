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
from wren.learn.convert import source_gguf

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

    from wren.learn.gguf_meta import read_metadata

    for name, (vtype, value, sub_type) in read_metadata(source, "tokenizer.").items():
        writer.add_key_value(
            name,
            value,
            gguf.GGUFValueType(vtype),
            sub_type=gguf.GGUFValueType(sub_type) if sub_type is not None else None,
        )


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
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(output)
    return output
