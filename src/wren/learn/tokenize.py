"""Conversations to token ids with a loss mask: only trainable assistant turns are learnt.

The spans of assistant turns are found by rendering the chat template on growing prefixes
(which works for any template whose renderings extend one another), then mapped to tokens
through the tokenizer's offsets.
"""

from __future__ import annotations

from typing import Any

IGNORE = -100


def render(tokenizer: Any, messages: list[dict], *, generation_prompt: bool = False) -> str:
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=generation_prompt)


def trained_spans(tokenizer: Any, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its trainable assistant turns."""
    full = render(tokenizer, messages)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant" or not message.get("train", True):
            continue
        start = len(render(tokenizer, messages[:k], generation_prompt=True))
        end = len(render(tokenizer, messages[: k + 1]))
        if not full.startswith(render(tokenizer, messages[: k + 1])):
            raise ValueError(
                "the chat template does not render conversations as extensions of their prefixes"
            )
        spans.append((start, end))
    return full, spans


def tokenize_conversation(tokenizer: Any, messages: list[dict], max_length: int) -> dict[str, list[int]]:
    """input_ids and labels (IGNORE outside trained turns), cut to `max_length` tokens."""
    text, spans = trained_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    labels = [IGNORE] * len(ids)
    for i, (start, end) in enumerate(offsets):
        if any(s <= start and end <= e and end > start for s, e in spans):
            labels[i] = ids[i]
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}
