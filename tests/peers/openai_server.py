"""A scripted OpenAI-compatible HTTP server: the test peer for every model client.

It answers `/v1/chat/completions` (plain and SSE streaming, tool calls, usage), `/v1/completions`
and `/v1/models` from a script of replies, and records each request it got.

A script entry is a string (the assistant's content) or a dict with any of:
  content, tool_calls ([{"name", "arguments"}]), status (HTTP error to return), delay (seconds),
  repeat (how many times to use this entry), usage ({"prompt_tokens", "completion_tokens"}).
When the script runs out, the last entry repeats. With `respond` (a function of the request
body), each reply's content is what it returns instead: a policy that reads the conversation.

Run standalone: python -m tests.peers.openai_server --script script.json --port 0
(prints "PORT <n>" when listening).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _expand(script: list[Any]) -> list[dict]:
    out = []
    for entry in script:
        item = {"content": entry} if isinstance(entry, str) else dict(entry)
        out.extend([item] * int(item.pop("repeat", 1)))
    return out


class ScriptedOpenAIServer:
    """Serves the script on 127.0.0.1 in a background thread (`with ScriptedOpenAIServer(...) as s`)."""

    def __init__(
        self,
        script: list[Any],
        *,
        port: int = 0,
        model: str = "scripted-model",
        record: bool = True,
        respond: Callable[[dict[str, Any]], str] | None = None,
    ):
        self.respond = respond
        self.script = _expand(script) or [{"content": ""}]
        self.model = model
        self.record = record
        self.requests: list[dict] = []
        self.index = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def next_reply(self, body: dict[str, Any] | None = None) -> dict:
        if self.respond is not None:
            return {"content": self.respond(body or {})}
        with self.lock:
            reply = self.script[min(self.index, len(self.script) - 1)]
            self.index += 1
            return reply

    @property
    def completions(self) -> list[dict[str, Any]]:
        """The recorded model calls, without a run's other requests (such as its release)."""
        return [r for r in self.requests if r["path"].endswith("completions")]

    def start(self) -> ScriptedOpenAIServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _send_json(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send_json(
                        200, {"object": "list", "data": [{"id": server.model, "object": "model"}]}
                    )
                elif self.path.rstrip("/").endswith("/health"):
                    self._send_json(200, {"status": "ok"})
                else:
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send_json(400, {"error": {"message": "malformed JSON"}})
                    return
                if server.record:
                    with server.lock:
                        server.requests.append(
                            {"path": self.path, "headers": dict(self.headers), "body": body}
                        )
                if not (self.path.endswith("/chat/completions") or self.path.endswith("/completions")):
                    self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                reply = server.next_reply(body)
                if reply.get("delay"):
                    time.sleep(float(reply["delay"]))
                if reply.get("status"):
                    self._send_json(
                        int(reply["status"]),
                        {
                            "error": {
                                "message": reply.get("error", "scripted error"),
                                "type": "scripted",
                                "code": reply["status"],
                            }
                        },
                    )
                    return
                chat = self.path.endswith("/chat/completions")
                content = reply.get("content") or ""
                prompt_chars = len(json.dumps(body.get("messages") or body.get("prompt") or ""))
                usage = reply.get("usage") or {
                    "prompt_tokens": max(prompt_chars // 4, 1),
                    "completion_tokens": max(len(content) // 4, 1),
                }
                usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
                tool_calls = [
                    {
                        "id": f"call_{server.index}_{i}",
                        "type": "function",
                        "function": {
                            "name": tc.get("name", "bash"),
                            "arguments": tc["arguments"]
                            if isinstance(tc["arguments"], str)
                            else json.dumps(tc["arguments"]),
                        },
                    }
                    for i, tc in enumerate(reply.get("tool_calls") or [])
                ]
                if body.get("stream"):
                    self._stream(chat, content, tool_calls, usage, body)
                    return
                if chat:
                    message: dict[str, Any] = {
                        "role": "assistant",
                        "content": content or (None if tool_calls else ""),
                    }
                    if tool_calls:
                        message["tool_calls"] = tool_calls
                    choice = {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if tool_calls else "stop",
                    }
                    obj = "chat.completion"
                else:
                    choice = {"index": 0, "text": content, "finish_reason": "stop"}
                    obj = "text_completion"
                self._send_json(
                    200,
                    {
                        "id": f"cmpl-{server.index}",
                        "object": obj,
                        "created": int(time.time()),
                        "model": body.get("model", server.model),
                        "choices": [choice],
                        "usage": usage,
                    },
                )

            def _stream(self, chat: bool, content: str, tool_calls: list, usage: dict, body: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def send(payload: Any) -> None:
                    data = (
                        b"data: "
                        + (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
                        + b"\n\n"
                    )
                    self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    self.wfile.flush()

                base = {
                    "id": "stream",
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "model": body.get("model", server.model),
                }
                pieces = [content[i : i + 8] for i in range(0, len(content), 8)] or [""]
                for piece in pieces:
                    delta = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
                    send({**base, "choices": [delta]})
                if tool_calls and chat:
                    send(
                        {
                            **base,
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {
                                        "tool_calls": [{"index": i, **tc} for i, tc in enumerate(tool_calls)]
                                    },
                                }
                            ],
                        }
                    )
                send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    send({**base, "choices": [], "usage": usage})
                send(b"[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--script", required=True, help="JSON file with the list of replies")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    with open(args.script) as f:
        script = json.load(f)
    server = ScriptedOpenAIServer(script, port=args.port, record=not args.no_record)
    print(f"PORT {server.port}", flush=True)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
