"""Cutting a conversation into pieces that fit a maximum length.

A window keeps the head (system prompt and task) and a contiguous run of later turns; the turns
left out between them are replaced by one line saying so. Roles are made to alternate user /
assistant (tool results become user turns, neighbours of one role are merged) because chat
templates such as Gemma's reject anything else.
"""

from __future__ import annotations

from collections.abc import Callable

TokenCounter = Callable[[str], int]
OMITTED = "[{n} earlier steps omitted]"


def approx_tokens(text: str) -> int:
    """A tokenizer-free estimate (about 3.5 characters per token for code and English)."""
    return len(text) * 2 // 7 + 1


def message_tokens(message: dict, count: TokenCounter) -> int:
    return count(str(message.get("content") or "")) + 4  # role markers and turn delimiters


def normalise(messages: list[dict]) -> list[dict]:
    """Only system, user and assistant turns, alternating after the system prompt."""
    out: list[dict] = []
    for message in messages:
        role = message.get("role")
        if role == "exit":
            continue
        role = "user" if role == "tool" else role
        if role not in ("system", "user", "assistant"):
            continue
        entry = {"role": role, "content": str(message.get("content") or "")}
        if role == "assistant":
            entry["train"] = bool(message.get("train", True))
            entry.update({k: message[k] for k in ("token_ids", "logprobs") if k in message})
        if out and out[-1]["role"] == role and role != "system":
            out[-1]["content"] += "\n\n" + entry["content"]
            if role == "assistant":
                out[-1]["train"] = out[-1]["train"] and entry["train"]
                # Two replies joined are no longer what the server's tokens spell.
                out[-1].pop("token_ids", None)
                out[-1].pop("logprobs", None)
        else:
            out.append(entry)
    return out


def head_length(messages: list[dict]) -> int:
    """How many leading messages form the head: the system prompt and the first user turn."""
    n = 0
    if messages and messages[0]["role"] == "system":
        n = 1
    if len(messages) > n and messages[n]["role"] == "user":
        n += 1
    return n


def join(head: list[dict], omitted: int, body: list[dict]) -> list[dict]:
    """The head, a note of how many turns were left out, then `body` (which starts with a user turn)."""
    if not omitted:
        return normalise([*head, *body])
    note = {"role": "user", "content": OMITTED.format(n=omitted)}
    return normalise([*head, note, *body])


def split_head(messages: list[dict], n_head: int = 0) -> tuple[list[dict], list[dict]]:
    """(head, rest), normalised: the first `n_head` messages (a run's opening, few-shot turns
    included) or, with 0, the system prompt and the first user turn."""
    if n_head:
        return normalise(messages[:n_head]), normalise(messages[n_head:])
    messages = normalise(messages)
    h = head_length(messages)
    return messages[:h], messages[h:]


def windows(
    messages: list[dict], max_tokens: int, count: TokenCounter = approx_tokens, n_head: int = 0
) -> list[list[dict]]:
    """Windows that between them hold every assistant turn once, each within `max_tokens` if it can be.

    Every window starts with the head (see `split_head`). A turn too long for any window still gets
    a window of its own (the trainer truncates it).
    """
    head, rest = split_head(messages, n_head)
    budget = (
        max_tokens
        - sum(message_tokens(m, count) for m in head)
        - message_tokens({"content": OMITTED.format(n=999)}, count)
    )
    out: list[list[dict]] = []
    start = 0
    while start < len(rest):
        end, used = start, 0
        while end < len(rest):
            cost = message_tokens(rest[end], count)
            if used + cost > budget and any(m["role"] == "assistant" for m in rest[start:end]):
                break
            used += cost
            end += 1
        # End on an assistant turn: what follows the last one belongs to the next window.
        while end > start + 1 and rest[end - 1]["role"] != "assistant":
            end -= 1
        if not any(m["role"] == "assistant" for m in rest[start:end]):
            break
        omitted = sum(1 for m in rest[:start] if m["role"] == "assistant")
        out.append(join(head, omitted, rest[start:end]))
        start = end
    return out


def prefix_window(
    messages: list[dict], max_tokens: int, count: TokenCounter = approx_tokens, n_head: int = 0
) -> list[dict]:
    """The head and as many of the latest turns as fit: the context a history processor would keep."""
    head, rest = split_head(messages, n_head)
    budget = max_tokens - sum(message_tokens(m, count) for m in head)
    start, used = len(rest), 0
    while start > 0 and used + message_tokens(rest[start - 1], count) <= budget:
        start -= 1
        used += message_tokens(rest[start], count)
    # Cut, the kept part starts with a user turn so that roles alternate after the head and the note.
    while 0 < start < len(rest) and rest[start]["role"] != "user":
        start += 1
    omitted = sum(1 for m in rest[:start] if m["role"] == "assistant")
    return join(head, omitted, rest[start:])
