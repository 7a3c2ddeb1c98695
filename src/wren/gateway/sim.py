"""A simulated OpenAI-compatible inference server (`wren gateway sim serve`): HTTP around a SimEngine.

The engine (`engine.py`) says what each iteration costs in simulated time; this server runs it in
one asyncio task, paced `time_scale` times faster than the wall clock, and answers chat and text
completions (plain and streamed), `/v1/models`, `/health` and a vLLM-style `/metrics`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from aiohttp import web

from wren.gateway.engine import SimConfig, SimEngine, SimRequest, block_hashes, render_messages
from wren.gateway.serving import ServerThread, serve_forever, start_site

__all__ = ["SimConfig", "SimServer", "SimThread", "serve_sim", "start_sim"]


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"error": {"message": message, "type": "invalid_request_error", "code": status}}),
        content_type="application/json",
    )


class WallClock:
    """Simulated seconds since it started, `time_scale` times faster than the wall clock."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self.wall0 = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self.wall0) * self.time_scale


async def run_paced(engine: SimEngine, clock: WallClock, wakeup: asyncio.Event) -> None:
    """Step the engine forever, sleeping so that simulated time keeps pace with the wall clock."""
    scale = clock.time_scale
    while True:
        if not engine.has_work:
            wakeup.clear()
            await wakeup.wait()
            engine.now = max(engine.now, clock())
            continue
        engine.step()
        ahead = engine.now / scale - (time.monotonic() - clock.wall0)
        if ahead > 0.002:
            await asyncio.sleep(ahead)
        else:
            engine.max_lag = max(engine.max_lag, -ahead * scale)
            await asyncio.sleep(0)


class SimServer:
    """HTTP front of a SimEngine."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.engine: SimEngine | None = None
        self._task: asyncio.Task | None = None
        self._wakeup = asyncio.Event()
        self._ids = 0

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        clock = WallClock(self.config.time_scale)
        self.engine = SimEngine(self.config, clock)
        self._task = asyncio.get_running_loop().create_task(run_paced(self.engine, clock, self._wakeup))

    async def _stop(self, app: web.Application) -> None:
        if self._task is not None:
            self._task.cancel()

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="")

    async def models(self, request: web.Request) -> web.Response:
        body = {
            "object": "list",
            "data": [{"id": self.config.model, "object": "model", "owned_by": "wren-sim"}],
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def metrics(self, request: web.Request) -> web.Response:
        assert self.engine is not None
        return web.Response(text=self.engine.metrics_text(), content_type="text/plain")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, chat=False)

    async def _serve(self, request: web.Request, chat: bool) -> web.StreamResponse:
        engine = self.engine
        assert engine is not None
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as e:
            return _error(400, f"malformed JSON body: {e}")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return _error(400, "'messages' must be a non-empty list")
            text = render_messages(messages)
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return _error(400, "'prompt' must be a string")
            text = prompt
        max_tokens = (
            body.get("max_tokens") or body.get("max_completion_tokens") or self.config.default_max_tokens
        )
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return _error(400, "'max_tokens' must be a positive integer")
        prompt_tokens = engine.tokens_of(text)
        limit = engine.context_limit()
        if prompt_tokens + max_tokens > limit:
            return _error(
                400,
                f"this model's maximum context length is {limit} tokens; the request has {prompt_tokens} "
                f"prompt tokens and asks for {max_tokens} more",
            )
        req = SimRequest(text, prompt_tokens, block_hashes(text, engine.chars_per_block), max_tokens)
        engine.submit(req)
        self._wakeup.set()
        self._ids += 1
        rid = f"sim-{self._ids}"
        model = body.get("model") or self.config.model
        try:
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return await self._stream(request, req, rid, model, chat, include_usage)
            while not req.done:
                req.event.clear()
                await req.event.wait()
        finally:
            if not req.done:
                engine.cancel(req)
        content = req.reply
        usage = self._usage(req)
        if chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "length",
            }
        else:
            choice = {"index": 0, "text": content, "finish_reason": "length"}
        out = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
        }
        return web.Response(body=orjson.dumps(out), content_type="application/json")

    @staticmethod
    def _usage(req: SimRequest) -> dict[str, Any]:
        return {
            "prompt_tokens": req.prompt_tokens,
            "completion_tokens": req.output,
            "total_tokens": req.prompt_tokens + req.output,
            "prompt_tokens_details": {"cached_tokens": max(0, req.cached_tokens)},
        }

    async def _stream(
        self, request: web.Request, req: SimRequest, rid: str, model: str, chat: bool, include_usage: bool
    ) -> web.StreamResponse:
        engine = self.engine
        assert engine is not None
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        kind = "chat.completion.chunk" if chat else "text_completion"
        sent = 0
        width = self.config.chars_per_token
        text = req.reply
        while True:
            req.event.clear()
            if req.new_tokens == 0 and not req.done:
                await req.event.wait()
            n, req.new_tokens = req.new_tokens, 0
            if n:
                events = []
                for k in range(sent, sent + n):
                    piece = text[k * width : (k + 1) * width]
                    delta = {"content": piece} if chat else None
                    choice = {"index": 0, "delta": delta} if chat else {"index": 0, "text": piece}
                    events.append(
                        b"data: "
                        + orjson.dumps({"id": rid, "object": kind, "model": model, "choices": [choice]})
                        + b"\n\n"
                    )
                sent += n
                await resp.write(b"".join(events))
            if req.done and req.new_tokens == 0:
                break
        finish = (
            {"index": 0, "delta": {}, "finish_reason": "length"}
            if chat
            else {"index": 0, "text": "", "finish_reason": "length"}
        )
        tail = [
            b"data: "
            + orjson.dumps({"id": rid, "object": kind, "model": model, "choices": [finish]})
            + b"\n\n"
        ]
        if include_usage:
            tail.append(
                b"data: "
                + orjson.dumps(
                    {"id": rid, "object": kind, "model": model, "choices": [], "usage": self._usage(req)}
                )
                + b"\n\n"
            )
        tail.append(b"data: [DONE]\n\n")
        await resp.write(b"".join(tail))
        await resp.write_eof()
        return resp


async def start_sim(config: SimConfig) -> tuple[web.AppRunner, int, SimServer]:
    """Start a simulated server; returns the runner, the bound port and the server."""
    server = SimServer(config)
    runner, port = await start_site(server.build_app(), config.host, config.port)
    return runner, port, server


def serve_sim(config: SimConfig, *, ready: Any = None) -> int | None:
    """Run a simulated server until interrupted; `ready(port)` is called once it listens.
    Returns the number of the signal that stopped it (None after Ctrl-C)."""
    return serve_forever(lambda: start_sim(config), ready=ready)


class SimThread(ServerThread):
    """A simulated server in a background thread (tests): `with SimThread(cfg) as s: s.url`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        super().__init__(lambda: start_sim(config))

    @property
    def server(self) -> SimServer | None:
        return self.served
