"""Models between llama.cpp's GGUF and transformers' training directories.

GGUF -> training directory: transformers reads the GGUF (dequantizing it); the weights are copied
into a fresh model so that no quantization config stays behind, and tied embeddings stay tied.
The chat template is Gemma's when the GGUF carries none (the bundled base model does not).
The GGUF's path is recorded in `wren_source.json`: writing a GGUF again copies its tokenizer.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from wren.exceptions import ConfigError

SOURCE_FILE = "wren_source.json"

# Gemma's turn format; a system prompt goes in front of the first user turn, as Gemma's own
# template does. Roles must alternate (export makes them).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim"
    " + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def gguf_to_training_dir(
    gguf_path: str | Path,
    output: str | Path,
    *,
    tokenizer_from: str | Path | None = None,
    tokenizer: bool = True,
) -> Path:
    """Write a transformers training directory (fp32 weights, tokenizer, chat template) for a GGUF.

    `tokenizer_from` names a training directory whose tokenizer to copy instead of rebuilding it
    from the GGUF (exact for a model tuned from that directory, and much faster: transformers
    reads a 262k-entry GGUF vocabulary slowly). `tokenizer=False` writes the weights only.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path).resolve()
    if not gguf_path.is_file():
        raise ConfigError(f"GGUF file {gguf_path} does not exist")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    where, name = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(where, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # The output head is tied to the embeddings: its weight is not in the state dict of its own.
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise ConfigError(f"{gguf_path}: weights do not match the model ({missing[:3]} {unexpected[:3]})")
    fresh.tie_weights()
    fresh.save_pretrained(str(output))
    if tokenizer:
        if tokenizer_from:
            loaded_tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from))
        else:
            loaded_tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        if not loaded_tokenizer.chat_template:
            loaded_tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
        loaded_tokenizer.save_pretrained(str(output))
    (output / SOURCE_FILE).write_text(json.dumps({"gguf": str(gguf_path)}, indent=2))
    return output


def source_gguf(model_dir: str | Path) -> str:
    """The GGUF a training directory was converted from ('' when it was not)."""
    path = Path(model_dir) / SOURCE_FILE
    return json.loads(path.read_text()).get("gguf", "") if path.is_file() else ""


def tokenizer_of(source: str | Path) -> Any:
    """The tokenizer of a training directory or of a GGUF file.

    transformers rebuilds a GGUF's tokenizer from its vocabulary, slowly for 262k entries, so the
    result is kept under the state directory and read from there the next time.
    """
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise ConfigError("counting tokens needs the learn extra: pip install 'wren-agent[learn]'") from e
    path = Path(source)
    if path.is_dir():
        return AutoTokenizer.from_pretrained(str(path))
    if not path.is_file():
        raise ConfigError(f"tokenizer {source}: neither a training directory nor a GGUF file")
    from wren.serve.embedded import state_dir

    kept = state_dir() / "tokenizers" / f"{path.stem}-{path.stat().st_size}"
    if (kept / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(str(kept))
    tokenizer = AutoTokenizer.from_pretrained(str(path.resolve().parent), gguf_file=path.name)
    # Written beside and renamed: a half-written copy must never be taken for the tokenizer.
    partial = kept.with_name(kept.name + f".partial-{os.getpid()}")
    tokenizer.save_pretrained(str(partial))
    try:
        partial.rename(kept)
    except OSError:  # another process kept it first
        shutil.rmtree(partial, ignore_errors=True)
    return tokenizer


def token_counter(source: str | Path) -> Any:
    """A function counting tokens with the tokenizer of a training directory or a GGUF file."""
    tokenizer = tokenizer_of(source)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
