"""What of the run's history the model sees: small contexts keep the recent past whole and the rest short.

The trajectory keeps every message; only the prompt is shortened. The opening messages (system,
demonstrations, task) are kept as they are. Of the observations after them, the last `keep_last`
are kept whole (each capped at `max_observation_tokens`), and older ones become a one-line stub.
Observations are stubbed `block` at a time, so the prompt's prefix stays the same for `block`
steps in a row and the server's prefix cache keeps hitting; `block: 1` re-elides at every step.
"""

from __future__ import annotations

from wren.agents.config import HistoryConfig, elide

CHARS_PER_TOKEN = 4  # a rough count that needs no tokenizer; caps are budgets, not exact sizes


def _is_observation(message: dict) -> bool:
    return message.get("role") in ("user", "tool")


def _with_content(message: dict, content: str) -> dict:
    return {**message, "content": content}


def n_stubbed(n_stale: int, block: int) -> int:
    """How many of `n_stale` observations past the kept window are stubbed: whole blocks only."""
    block = max(block, 1)
    return (n_stale // block) * block


def shorten(messages: list[dict], n_prefix: int, config: HistoryConfig) -> list[dict]:
    """The messages to send: the first `n_prefix` as they are, later observations stubbed or capped."""
    if not config.keep_last and not config.max_observation_tokens:
        return messages
    head, rest = messages[:n_prefix], messages[n_prefix:]
    observations = [i for i, m in enumerate(rest) if _is_observation(m)]
    stale = len(observations) - config.keep_last if config.keep_last else 0
    stubbed = set(observations[: n_stubbed(max(stale, 0), config.block)])
    cap = config.max_observation_tokens * CHARS_PER_TOKEN
    out = list(head)
    for i, message in enumerate(rest):
        content = str(message.get("content") or "")
        if i in stubbed:
            out.append(_with_content(message, config.stub.format(lines=content.count("\n") + 1)))
        elif cap and _is_observation(message) and len(content) > cap:
            out.append(_with_content(message, elide(content, cap // 2, cap // 2)))
        else:
            out.append(message)
    return out
