"""What of the run's history the model sees: small contexts keep the recent past whole and the rest short.

The trajectory keeps every message; only the prompt is shortened. The opening messages (system,
demonstrations, task) are kept as they are. Of the observations after them, the last `keep_last`
are kept whole (each capped at `max_observation_tokens`), and older ones become a one-line stub;
with `old_replies: command` the replies before them keep only their command, since a long run's
THOUGHTs alone outgrow a small window. Observations are stubbed `block` at a time, so the prompt's
prefix stays the same for `block` steps in a row and the server's prefix cache keeps hitting;
`block: 1` re-elides at every step.
"""

from __future__ import annotations

from wren.agents.config import HistoryConfig, elide
from wren.models.actions import first_action_block

CHARS_PER_TOKEN = 4  # a rough count that needs no tokenizer; caps are budgets, not exact sizes


def _is_observation(message: dict) -> bool:
    return message.get("role") in ("user", "tool")


def _with_content(message: dict, content: str) -> dict:
    return {**message, "content": content}


def n_stubbed(n_stale: int, block: int) -> int:
    """How many of `n_stale` observations past the kept window are stubbed: whole blocks only."""
    block = max(block, 1)
    return (n_stale // block) * block


def command_only(message: dict) -> dict:
    """A reply shortened to its command: a tool call keeps its call, a text reply its bash block."""
    if message.get("tool_calls"):
        return _with_content(message, "")
    block = first_action_block(str(message.get("content") or ""))
    return _with_content(message, block) if block else message


def shorten(messages: list[dict], n_prefix: int, config: HistoryConfig) -> list[dict]:
    """The messages to send: the first `n_prefix` as they are, later observations stubbed or capped."""
    if not config.keep_last and not config.max_observation_tokens:
        return messages
    head, rest = messages[:n_prefix], messages[n_prefix:]
    observations = [i for i, m in enumerate(rest) if _is_observation(m)]
    stale = len(observations) - config.keep_last if config.keep_last else 0
    stubbed = set(observations[: n_stubbed(max(stale, 0), config.block)])
    # Replies before the last stubbed observation are shortened with it, in the same block.
    replies_before = max(stubbed) if stubbed and config.old_replies == "command" else 0
    cap = config.max_observation_tokens * CHARS_PER_TOKEN
    out = list(head)
    for i, message in enumerate(rest):
        content = str(message.get("content") or "")
        if i in stubbed:
            out.append(_with_content(message, config.stub.format(lines=content.count("\n") + 1)))
        elif i < replies_before and message.get("role") == "assistant":
            out.append(command_only(message))
        elif cap and _is_observation(message) and len(content) > cap:
            out.append(_with_content(message, elide(content, cap // 2, cap // 2)))
        else:
            out.append(message)
    return out
