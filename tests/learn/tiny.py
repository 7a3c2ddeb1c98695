"""A tiny randomly initialised Gemma-3-shaped model and a tokenizer trained on the spot, saved as a
training directory (what `wren learn convert` makes of a GGUF)."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def sample_records(n: int = 6) -> list[dict]:
    """SFT records in the export format: a task, a reply in the THOUGHT + bash format, an observation."""
    records = []
    for i in range(n):
        name = ["add", "clamp", "ratio", "total", "window", "evens"][i % 6]
        records.append(
            {
                "messages": [
                    {"role": "system", "content": "You solve tasks with bash."},
                    {"role": "user", "content": f"Fix {name} in calc/ops.py; test {i}."},
                    {
                        "role": "assistant",
                        "content": f"THOUGHT: look at {name}.\n\n```bash\ngrep -n {name} calc/ops.py\n```",
                        "train": True,
                    },
                    {
                        "role": "user",
                        "content": f"<returncode>0</returncode>\n<output>\n3: def {name}(a, b):\n</output>",
                    },
                    {
                        "role": "assistant",
                        "content": "THOUGHT: run the tests.\n\n```bash\npython -m pytest -q\n```",
                        "train": True,
                    },
                ],
                "weight": 1.0,
                "instance_id": f"t-{i}",
                "window": 0,
            }
        )
    return records


def build_tiny_model(directory: Path, corpus: list[str]) -> Path:
    """Save a 2-layer Gemma3ForCausalLM and a byte-level BPE tokenizer with Gemma's chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from wren.serve.convert import GEMMA_CHAT_TEMPLATE

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    model = tiny_gemma(
        len(tokenizer),
        max_position_embeddings=2048,
        sliding_window=64,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def tiny_gemma(vocab_size: int, seed: int = 0, **overrides: object) -> object:
    """A 2-layer Gemma3ForCausalLM with random weights (tied embeddings, as Gemma-3-270M has)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    settings: dict = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        tie_word_embeddings=True,
        # Large enough embeddings that a LoRA on the layers can make sharp predictions (at 0.02, logits stay below ~1.3).
        initializer_range=0.2,
    )
    return Gemma3ForCausalLM(Gemma3TextConfig(**(settings | overrides)))
