"""Conversations to token ids with a loss mask: only trainable assistant turns are learnt.

The spans of assistant turns are found by rendering the chat template on growing prefixes
(which works for any template whose renderings extend one another), then mapped to tokens
through the tokenizer's offsets.
"""

from __future__ import annotations

from typing import Any

from wren.serve.training_dir import render

IGNORE = -100


def assistant_spans(tokenizer: Any, messages: list[dict]) -> tuple[str, list[tuple[int, int, bool]]]:
    """The rendered conversation and the character span of every assistant turn, with whether it is trained."""
    full = render(tokenizer, messages)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(render(tokenizer, messages[:k], generation_prompt=True))
        end = len(render(tokenizer, messages[: k + 1]))
        if not full.startswith(render(tokenizer, messages[: k + 1])):
            raise ValueError(
                "the chat template does not render conversations as extensions of their prefixes"
            )
        spans.append((start, end, bool(message.get("train", True))))
    return full, spans


def tokenize_conversation(
    tokenizer: Any, messages: list[dict], max_length: int, *, with_turns: bool = False
) -> dict[str, list[int]]:
    """input_ids and labels (IGNORE outside trained turns), cut to `max_length` tokens. `with_turns`
    adds `turn_ids`: each token's assistant turn (counting every assistant message, trained or
    not), -1 outside them."""
    text, spans = assistant_spans(tokenizer, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    labels = [IGNORE] * len(ids)
    turn_ids = [-1] * len(ids)
    for i, (start, end) in enumerate(offsets):
        for turn, (s, e, trained) in enumerate(spans):
            if s <= start and end <= e and end > start:
                turn_ids[i] = turn
                if trained:
                    labels[i] = ids[i]
                break
    row = {"input_ids": ids[:max_length], "labels": labels[:max_length]}
    if with_turns:
        row["turn_ids"] = turn_ids[:max_length]
    return row
