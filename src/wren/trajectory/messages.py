"""Reading chat messages: their text and their role, whatever API wrote them.

Messages come from Wren runs and from mini-swe-agent runs (1.x and 2.x), whose content may be a
string, a list of content parts, tool calls, or a Responses API `output` list.
"""

from __future__ import annotations

import json
from typing import Any


def _tool_call_text(arguments: Any) -> str:
    try:
        args = json.loads(arguments) if isinstance(arguments, str) else arguments
    except json.JSONDecodeError:
        return f"```\n{arguments}\n```"
    if isinstance(args, dict) and "command" in args:
        return f"```bash\n{args['command']}\n```"
    return f"```\n{json.dumps(args, indent=2)}\n```"


def _parts_text(parts: list) -> list[str]:
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif not isinstance(part, dict):
            continue
        elif part.get("type") == "tool_use":
            texts.append(_tool_call_text(part.get("input", {})))
        elif part.get("type") == "tool_result":
            inner = part.get("content", "")
            texts.extend(
                [inner] if isinstance(inner, str) else _parts_text(inner if isinstance(inner, list) else [])
            )
        elif part.get("type") == "function_call":
            texts.append(_tool_call_text(part.get("arguments", "{}")))
        elif part.get("type") == "message":
            texts.extend(_parts_text(part.get("content") or []))
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    return texts


def message_text(message: dict) -> str:
    """Everything a person should read of `message`, as plain text."""
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        texts.extend(_parts_text(content))
    for call in message.get("tool_calls") or []:
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        texts.append(_tool_call_text(function.get("arguments", "{}")))
    output = message.get("output")
    if isinstance(output, str):
        texts.append(output)
    elif isinstance(output, list):
        texts.extend(_parts_text(output))
    return "\n\n".join(t for t in texts if t).replace("\x00", "")


def message_role(message: dict) -> str:
    role = str(message.get("role") or message.get("type") or "unknown")
    if role == "user" and (message.get("extra") or {}).get("source") == "human":
        return "human"
    return role
