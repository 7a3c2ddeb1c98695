"""Traces for RL: with `--record DIR`, every completion request is written per program as it was sent
and as the backend answered, so training uses exactly what was sampled.

`DIR/<program_id>.jsonl` gets one line per request: the forwarded request (prompt or messages and
sampling parameters), the backend's answer (the whole JSON body, or every SSE event's payload of a
stream), and `completions`: per choice the text, the token ids and the per-token log-probabilities
pulled from wherever the backend put them (OpenAI `logprobs.content`, llama.cpp's `id` per token and
`tokens`, vLLM's `token_ids` / `prompt_token_ids`, legacy `logprobs.tokens/token_logprobs`).
Requests without a program id go to `_anonymous.jsonl`.

Log-probabilities only exist where they were asked for; with `ask_logprobs` the gateway asks for
them (`logprobs: true` on chat, `logprobs: 1` on completions) when the client did not.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def trace_file_name(program_id: str | None) -> str:
    """The file of one program: its id with anything but [A-Za-z0-9._-] replaced, never empty."""
    if not program_id:
        return "_anonymous.jsonl"
    return (_SAFE.sub("_", program_id).lstrip(".") or "_") + ".jsonl"


def ask_for_logprobs(body: dict[str, Any], endpoint: str) -> bool:
    """Add the log-probability request to `body` if the client made none; True if it changed."""
    if "logprobs" in body and body["logprobs"] not in (None, False, 0):
        return False
    body["logprobs"] = True if endpoint == "chat" else 1
    return True


def stream_payloads(data: bytes) -> list[Any]:
    """The JSON payload of every `data:` event of an SSE stream ([DONE] left out)."""
    out = []
    for event in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if not payload or payload == b"[DONE]":
                continue
            try:
                out.append(orjson.loads(payload))
            except orjson.JSONDecodeError:
                out.append({"unparsed": payload.decode("utf-8", "replace")})
    return out


def _tokens_of(logprobs: Any) -> tuple[list[Any], list[float | None], list[int | None]]:
    """(tokens, logprobs, ids) from one choice's `logprobs`, in any of the shapes servers use."""
    if not isinstance(logprobs, dict):
        return [], [], []
    content = logprobs.get("content")
    if isinstance(content, list):
        return (
            [c.get("token") for c in content],
            [c.get("logprob") for c in content],
            [c.get("id") for c in content],
        )
    tokens = logprobs.get("tokens") or []
    values = logprobs.get("token_logprobs") or []
    return list(tokens), list(values), [None] * len(tokens)


class _Choice:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.tokens: list[Any] = []
        self.logprobs: list[float | None] = []
        self.ids: list[int | None] = []
        self.token_ids: list[int] = []
        self.finish_reason: str | None = None

    def add(self, choice: dict[str, Any]) -> None:
        part = choice.get("delta") or choice.get("message") or {}
        text = part.get("content") if isinstance(part, dict) else None
        if text is None:
            text = choice.get("text")
        if isinstance(text, str):
            self.text.append(text)
        tokens, values, ids = _tokens_of(choice.get("logprobs"))
        self.tokens += tokens
        self.logprobs += values
        self.ids += ids
        for key in ("token_ids", "tokens"):  # vLLM's return_token_ids; llama.cpp's return_tokens
            extra = choice.get(key)
            if isinstance(extra, list) and all(isinstance(t, int) for t in extra):
                self.token_ids += extra
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]

    def summary(self) -> dict[str, Any]:
        ids = self.token_ids or ([i for i in self.ids] if any(i is not None for i in self.ids) else [])
        return {
            "text": "".join(self.text),
            "tokens": self.tokens,
            "token_ids": ids,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }


def completions_of(responses: list[Any]) -> dict[str, Any]:
    """Per choice index: text, token ids and log-probs; plus prompt token ids where returned."""
    choices: dict[int, _Choice] = {}
    prompt_ids: list[int] | None = None
    for obj in responses:
        if not isinstance(obj, dict):
            continue
        if isinstance(obj.get("prompt_token_ids"), list):
            prompt_ids = obj["prompt_token_ids"]
        for choice in obj.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            if isinstance(choice.get("prompt_token_ids"), list):
                prompt_ids = choice["prompt_token_ids"]
            choices.setdefault(int(choice.get("index") or 0), _Choice()).add(choice)
    return {
        "prompt_token_ids": prompt_ids,
        "choices": [choices[i].summary() for i in sorted(choices)],
    }


class TraceRecorder:
    """Appends one JSON line per completion request to `directory/<program file>`."""

    def __init__(self, directory: str | Path, ask_logprobs: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ask_logprobs = ask_logprobs

    def prepare(self, body: dict[str, Any], endpoint: str) -> bool:
        """Adjust a request before it is forwarded; True if `body` changed."""
        return ask_for_logprobs(body, endpoint) if self.ask_logprobs else False

    def record(
        self,
        program_id: str | None,
        endpoint: str,
        request: bytes,
        status: int,
        backend: str,
        answer: bytes,
        stream: bool,
        latency: float,
    ) -> Path:
        """Write one request and its answer; returns the program's file."""
        try:
            sent = orjson.loads(request)
        except orjson.JSONDecodeError:
            sent = request.decode("utf-8", "replace")
        if stream:
            responses = stream_payloads(answer)
        else:
            try:
                responses = [orjson.loads(answer)] if answer else []
            except orjson.JSONDecodeError:
                responses = [{"unparsed": answer.decode("utf-8", "replace")}]
        line = {
            "timestamp": time.time(),
            "program_id": program_id,
            "endpoint": endpoint,
            "backend": backend,
            "status": status,
            "stream": stream,
            "latency": round(latency, 6),
            "request": sent,
            "response": responses if stream else (responses[0] if responses else None),
            "completions": completions_of(responses),
        }
        path = self.directory / trace_file_name(program_id)
        with path.open("ab") as f:
            f.write(orjson.dumps(line) + b"\n")
        return path


def read_traces(directory: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Every program's recorded requests, by file stem."""
    out = {}
    for path in sorted(Path(directory).glob("*.jsonl")):
        out[path.stem] = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return out
