"""Parsing the one bash action out of a model's reply.

Small models are sloppy: they write ```sh or ```shell, put spaces after the fence, forget the
final newline, or pass tool-call arguments as a JSON string. All of that is accepted; zero or
several actions are not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from wren.exceptions import FormatError

_FENCE = re.compile(
    r"```[ \t]*(?:bash|sh|shell|console|zsh)[ \t]*\r?\n(?P<body>.*?)(?:\r?\n)?[ \t]*```",
    re.DOTALL | re.IGNORECASE,
)
# A reply that ends inside an open fence (the model stopped at the closing ``` stop sequence).
_OPEN_FENCE = re.compile(
    r"```[ \t]*(?:bash|sh|shell|console|zsh)[ \t]*\r?\n(?P<body>.*)\Z", re.DOTALL | re.IGNORECASE
)


@dataclass(frozen=True)
class Action:
    """One command to run, and the tool call it came from, if any."""

    command: str
    tool_call_id: str | None = None


def parse_text_action(content: str) -> Action:
    """Exactly one ```bash block in `content`."""
    blocks = [m.group("body") for m in _FENCE.finditer(content)]
    if not blocks:
        rest = _FENCE.sub("", content)
        tail = _OPEN_FENCE.search(rest)
        if tail:
            blocks = [tail.group("body")]
    blocks = [b.strip("\n") for b in blocks]
    if len(blocks) != 1:
        found = "no" if not blocks else str(len(blocks))
        raise FormatError(
            f"found {found} bash code blocks; exactly one is required", content=content, actions=blocks
        )
    if not blocks[0].strip():
        raise FormatError("the bash code block is empty", content=content)
    return Action(blocks[0])


def parse_regex_action(content: str, action_regex: str) -> Action:
    """Exactly one match of `action_regex` (its first group, else the match) in `content`."""
    pattern = re.compile(action_regex, re.DOTALL)  # checked when the config was validated
    found = [(m.group(1) if pattern.groups else m.group(0)).strip() for m in pattern.finditer(content)]
    if len(found) != 1:
        raise FormatError(f"Expected exactly 1 action, found {len(found)}.", content=content, actions=found)
    return Action(found[0])


def cut_after_first_action(content: str) -> str:
    """`content` up to the end of its first complete bash block (what follows is a base model rambling)."""
    match = _FENCE.search(content)
    return content[: match.end()] if match else content


def first_action_block(content: str) -> str:
    """The first complete bash block of `content`, fences included ("" when there is none)."""
    match = _FENCE.search(content)
    return match.group(0) if match else ""


def _arguments(raw: object) -> dict:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = json.loads(text) if text else {}
        except json.JSONDecodeError:
            # Some servers hand over the bare command instead of a JSON object.
            return {"command": text}
        if isinstance(value, str):  # arguments double-encoded as a JSON string
            return _arguments(value)
        if isinstance(value, dict):
            return value
    raise FormatError(f"tool call arguments must be a JSON object, got {raw!r}")


def parse_tool_action(tool_calls: list[dict] | None, content: str = "") -> Action:
    """Exactly one call of the `bash` tool."""
    calls = tool_calls or []
    if len(calls) != 1:
        found = "no" if not calls else str(len(calls))
        raise FormatError(
            f"found {found} tool calls; exactly one call of the bash tool is required", content=content
        )
    call = calls[0]
    function = call.get("function") or {}
    name = function.get("name")
    if name != "bash":
        raise FormatError(f"unknown tool {name!r}; the only tool is bash", content=content)
    command = _arguments(function.get("arguments")).get("command")
    if not isinstance(command, str) or not command.strip():
        raise FormatError("the bash tool call needs a non-empty string argument 'command'", content=content)
    return Action(command, tool_call_id=call.get("id"))


BASH_TOOL = {
    "type": "function",
    "function": {
        "name": "bash",
        "description": "Run one bash command in the task's working directory and return its output.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The bash command to run."}},
            "required": ["command"],
        },
    },
}


def parse_action(message: dict, action_format: str = "text", action_regex: str = "") -> Action:
    """The action of an assistant message in the configured format (`text` or `toolcall`)."""
    content = message.get("content") or ""
    if action_format == "text" and action_regex:
        return parse_regex_action(content, action_regex)
    if action_format == "toolcall":
        if not message.get("tool_calls") and "```" in content:
            # Small models often answer a tool-calling prompt with a fenced block instead.
            return parse_text_action(content)
        return parse_tool_action(message.get("tool_calls"), content)
    return parse_text_action(content)
