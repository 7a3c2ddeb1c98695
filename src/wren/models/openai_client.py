"""A direct HTTP client for OpenAI-compatible chat endpoints (vLLM, SGLang, llama.cpp, Ollama /v1).

LiteLLM (through the openai SDK) rebuilds and re-validates every message of the history on every
call, so its per-call cost grows with the run. This client keeps each message's JSON encoding and
joins them, so a call costs what the request's bytes cost (benchmarks/agent_overhead.py measures it).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from wren.models.errors import RetryableModelError, classify_http_error

# Fields of a message that go on the wire; anything else (e.g. "extra") is Wren's bookkeeping.
_WIRE_FIELDS = ("role", "content", "tool_calls", "tool_call_id", "name")


class MessageEncoder:
    """JSON-encodes messages once each; a message is re-encoded only if its content changed."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[dict, int, str]] = {}

    def encode(self, message: dict) -> str:
        content = message.get("content")
        size = len(content) if isinstance(content, str) else -1
        hit = self._cache.get(id(message))
        if hit is not None and hit[0] is message and hit[1] == size:
            return hit[2]
        text = json.dumps({k: message[k] for k in _WIRE_FIELDS if k in message and message[k] is not None})
        # Holding `message` keeps its id from being reused by another object.
        self._cache[id(message)] = (message, size, text)
        return text

    def encode_all(self, messages: list[dict]) -> str:
        if len(self._cache) > 2 * len(messages) + 64:
            live = {id(m) for m in messages}
            self._cache = {k: v for k, v in self._cache.items() if k in live}
        return "[" + ",".join(self.encode(m) for m in messages) + "]"


class OpenAICompatibleClient:
    """POSTs chat completions to `{api_base}/chat/completions` over one keep-alive connection pool."""

    def __init__(self, api_base: str, *, api_key: str | None, headers: dict[str, str], timeout: float):
        self.url = api_base.rstrip("/") + "/chat/completions"
        base_headers = {"Content-Type": "application/json", **headers}
        if api_key:
            base_headers["Authorization"] = f"Bearer {api_key}"
        self.http = httpx.Client(headers=base_headers, timeout=httpx.Timeout(timeout, connect=10.0))
        self.encoder = MessageEncoder()

    def chat(self, messages: list[dict], body: dict[str, Any], headers: dict[str, str] | None = None) -> dict:
        """One chat completion; `body` holds every field but the messages."""
        fields = json.dumps(body)
        payload = (
            '{"messages":'
            + self.encoder.encode_all(messages)
            + ("," + fields[1:] if len(fields) > 2 else "}")
        )
        try:
            response = self.http.post(self.url, content=payload.encode(), headers=headers)
        except httpx.TransportError as e:
            raise RetryableModelError(f"cannot reach {self.url}: {e!r}") from e
        if response.status_code != 200:
            raise classify_http_error(response.status_code, response.text)
        try:
            return response.json()
        except json.JSONDecodeError as e:
            raise RetryableModelError(f"invalid JSON from {self.url}: {response.text[:200]!r}") from e

    def close(self) -> None:
        self.http.close()
