"""Serving an aiohttp application: in the foreground until Ctrl-C, or from a background thread.

The gateway and the simulated inference server are both served this way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

Started = tuple[web.AppRunner, int, Any]
"""What a start function returns: the runner (cleanup() stops it), the bound port, the served object."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (it halves the proxy's per-request CPU), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _JSONErrorHandler(RequestHandler):
    """Answers a request that is not valid HTTP (a header too long, a bad request line) with an
    OpenAI-style JSON error and one log line, as the handlers answer bad bodies."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        reason = message or (str(exc) if exc is not None else "bad request")
        self.logger.warning("refused a malformed HTTP request from %s: %s", request.remote, reason)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; cannot send the error")
        body = orjson.dumps(
            {
                "error": {
                    "message": f"malformed HTTP request: {reason}",
                    "type": "invalid_request_error",
                    "code": status,
                }
            }
        )
        resp = web.Response(status=status, body=body, content_type="application/json")
        resp.force_close()
        return resp


class _JSONErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _JSONErrorHandler(self, loop=self._loop, **self._kwargs)


class _Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JSONErrorServer  # the same server, making JSON-error request handlers
        return server


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Listen on host:port (0 = any free port); return the runner and the bound port."""
    runner = _Runner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def serve_forever(start: Callable[[], Awaitable[Started]], *, ready: Any = None) -> int | None:
    """Serve until Ctrl-C, SIGTERM or SIGHUP; `ready(port)` is called once it listens.

    Returns the number of the signal that stopped it (None after Ctrl-C). The signals are taken by the
    event loop, not left to a Python handler: one that raises inside a running task would be kept by
    the task and never reach this loop, and the server would go on serving.
    """
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    stopped_by: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                loop.add_signal_handler(signum, lambda n=signum: (stopped_by.append(n), stop.set()))
        runner, port, _ = await start()
        if ready is not None:
            ready(port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with contextlib.suppress(KeyboardInterrupt):
            loop.run_until_complete(main())
    finally:
        loop.close()
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
    return stopped_by[0] if stopped_by else None


class ServerThread:
    """A server run from a background thread (tests, embedding): `with Sub(cfg) as s: s.url`."""

    def __init__(self, start: Callable[[], Awaitable[Started]]) -> None:
        self._start_fn = start
        self.port = 0
        self.served: Any = None
        self._loop = new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base + "/v1"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                runner, self.port, self.served = await self._start_fn()
            except BaseException as e:
                self._error = e
                self._started.set()
                return
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await runner.cleanup()

        self._loop.run_until_complete(main())

    def call(self, fn: Any) -> Any:
        """Run `fn()` on the server's loop and return its result (to inspect state safely)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def start(self):
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError(f"{type(self).__name__} did not start within 30 s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
