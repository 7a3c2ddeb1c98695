"""The gateway's HTTP server: an OpenAI-compatible proxy that schedules programs.

A completion request goes through a few short steps around the scheduling policy: read it (the
body is parsed once, orjson, to find the program id and the stream flag, and re-encoded only when
it had to change), wait for the policy to place it (bounded by `max_queue_seconds`), send it with
one retry elsewhere if the backend cannot be reached, relay the JSON body or the stream
(`relay.py`), and account the step. Refusals are exceptions mapped to HTTP errors in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from wren.gateway.admission import Admission, Held
from wren.gateway.backends import Backend
from wren.gateway.config import GatewayConfig
from wren.gateway.metrics import GatewayMetrics
from wren.gateway.programs import ProgramReleased, ProgramState, ProgramTable, StepOutcome
from wren.gateway.record import TraceRecorder
from wren.gateway.relay import JSON_TYPE, error_response, relay_json, relay_stream
from wren.gateway.scheduler import NoHealthyBackend, Policy, ProgramPolicy, Rejected, get_policy_class
from wren.gateway.serving import ServerThread, serve_forever, start_site
from wren.gateway.upstream import ConnectFailed, UpstreamDisconnected, UpstreamError

log = logging.getLogger("wren.gateway")

GATEWAY_MARKER = "wren"


class BadRequest(Rejected):
    """The request is malformed."""


class Unauthorized(Rejected):
    """The client's API key is missing or wrong."""

    status = 401
    kind = "authentication_error"


def _refusal(e: Exception) -> tuple[int, web.Response]:
    """The HTTP answer to a request the gateway will not forward."""
    if isinstance(e, Rejected):
        return e.status, error_response(e.status, str(e), e.kind, e.retry_after)
    if isinstance(e, ProgramReleased):
        return 409, error_response(409, str(e), "program_released")
    return 503, error_response(503, f"{e}: all backends are down", "service_unavailable")


def _no_callback(_: object) -> None:
    """Placeholder until a held request's future exists."""


def _call_later(delay: float, fn: Any) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(delay, fn)


def _check_inputs(body: dict, endpoint: str) -> None:
    """Refuse inputs no backend can take, before anything is forwarded: chat `messages` must be a
    list of message objects with a role, a text completion needs a `prompt`."""
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list):
            raise BadRequest("'messages' must be a list of message objects")
        for k, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise BadRequest(f"'messages[{k}]' must be an object with a string 'role'")
    elif "prompt" not in body:
        raise BadRequest("'prompt' is required")


class Gateway:
    """State and handlers of one gateway."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.metrics = GatewayMetrics()
        self.programs = ProgramTable()
        self.backends = [
            Backend.create(
                url,
                capacity=config.capacity_for(url),
                connect_timeout=config.connect_timeout_seconds,
                read_timeout=config.read_timeout_seconds,
            )
            for url in config.backends
        ]
        self.policy: Policy = get_policy_class(config.policy)(self.backends, config, self.metrics)
        self.recorder = (
            TraceRecorder(config.record_dir, config.record_logprobs) if config.record_dir else None
        )
        self.admission = Admission(self.policy, config.max_queue_seconds, time.monotonic, _call_later)
        self.metrics.attach_state(
            lambda: (self.backends, self.programs, config.target_utilization, self.policy.queue_length())
        )
        forward = {h.lower() for h in config.forward_headers}
        if config.api_key or config.backend_api_key:
            forward.discard("authorization")
        self._forward = sorted(forward)
        self._backend_auth = (
            f"Authorization: Bearer {config.backend_api_key}\r\n".encode() if config.backend_api_key else b""
        )
        self._api_key = config.api_key.encode() if config.api_key else None
        # Every task the gateway starts, held until it ends: the event loop keeps only weak
        # references, so a task nobody holds can be garbage-collected before it has run.
        self.tasks: set[asyncio.Task] = set()

    # application
    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        r = app.router
        r.add_post("/v1/chat/completions", self.chat_completions)
        r.add_post("/v1/completions", self.completions)
        r.add_get("/v1/models", self.models)
        for prefix in ("", "/v1"):
            r.add_get(prefix + "/health", self.health)
            r.add_get(prefix + "/programs", self.list_programs)
            r.add_get(prefix + "/programs/{program_id}", self.get_program)
            r.add_post(prefix + "/programs/release", self.release)
        r.add_get("/metrics", self.metrics_page)
        r.add_route("*", "/v1/{tail:.*}", self.passthrough)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        # Learn capacities before the first request so admission is right from the start.
        await asyncio.gather(*(self._probe(b) for b in self.backends))
        self.spawn(self._every(self.config.health_interval_seconds, self._health_round))
        self.spawn(self._every(self.config.scrape_interval_seconds, self._scrape_round))
        self.spawn(self._every(min(5.0, self.config.lease_seconds / 4), self._lease_round))
        self.spawn(self._every(0.1, lambda: self.policy.tick(time.monotonic())))
        for b in self.backends:
            if b.capacity is None and isinstance(self.policy, ProgramPolicy):
                log.warning(
                    "backend %s: KV capacity unknown; programs on it are never paused (set --capacity)", b.url
                )
            else:
                log.info("backend %s: capacity %s (%s)", b.url, b.capacity, b.capacity_source)

    def spawn(self, coro: Any) -> asyncio.Task:
        """Run `coro` in the background, holding the task until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _on_cleanup(self, app: web.Application) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for b in self.backends:
            b.close()

    async def _probe(self, b: Backend) -> None:
        if await b.check_health():
            await b.scrape()
        else:
            b.mark_down(b.last_error or "health check failed")

    @staticmethod
    async def _every(seconds: float, fn: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a background round must never die
                log.exception("gateway background task failed")

    async def _health_round(self) -> None:
        results = await asyncio.gather(*(b.check_health() for b in self.backends))
        for b, ok in zip(self.backends, results, strict=True):
            if ok and b.mark_up():
                await b.scrape()
                self.policy.backend_up(b, time.monotonic())
            elif not ok and b.mark_down(b.last_error or "health check failed"):
                self.policy.backend_down(b, time.monotonic())

    async def _scrape_round(self) -> None:
        await asyncio.gather(*(b.scrape() for b in self.backends if b.healthy))

    def _lease_round(self) -> None:
        for prog in self.programs.idle(self.config.lease_seconds):
            log.info("release %s: idle past its %gs lease", prog.program_id, self.config.lease_seconds)
            self._release(prog, "lease")

    def _release(self, prog: ProgramState, reason: str) -> None:
        self.programs.remove(prog)
        self.policy.release(prog, time.monotonic())
        self.metrics.releases.labels(reason).inc()

    def _backend_failed(self, b: Backend, reason: str) -> None:
        self.metrics.backend_errors.labels(b.url, "connect").inc()
        if b.mark_down(reason):
            self.policy.backend_down(b, time.monotonic())

    async def _recheck(self, b: Backend) -> None:
        if not await b.check_health() and b.mark_down(b.last_error or "health check failed"):
            self.policy.backend_down(b, time.monotonic())

    # proxy
    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._completion(request, "/v1/chat/completions", "chat")

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._completion(request, "/v1/completions", "completions")

    def _authorized(self, request: web.Request) -> bool:
        if self._api_key is None:
            return True
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        return hmac.compare_digest(token.encode(), self._api_key)

    def _headers_for(self, request: web.Request) -> bytes:
        if not self._forward:
            return self._backend_auth
        parts = [self._backend_auth]
        headers = request.headers
        for name in self._forward:
            value = headers.get(name)
            if value is not None:
                parts.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
        return b"".join(parts)

    def _program_id(self, request: web.Request, body: dict) -> tuple[str | None, bool]:
        """The program id from the body, extra_body, metadata or X-Program-Id (in that order); True if the
        body changed."""
        found = []
        changed = False
        if "program_id" in body:
            found.append(body.pop("program_id"))
            changed = True
        extra = body.get("extra_body")
        if isinstance(extra, dict) and "program_id" in extra:
            found.append(extra.pop("program_id"))
            if not extra:
                del body["extra_body"]
            changed = True
        meta = body.get("metadata")
        if isinstance(meta, dict) and "program_id" in meta:
            found.append(meta.pop("program_id"))
            if not meta:
                del body["metadata"]
            changed = True
        header = request.headers.get("X-Program-Id")
        if header is not None:
            found.append(header)
        for value in found:
            if value is None or value == "":
                continue
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ValueError(f"program_id must be a string, got {type(value).__name__}")
            pid = str(value)
            if len(pid) > self.config.max_program_id_length:
                raise ValueError(f"program_id is longer than {self.config.max_program_id_length} characters")
            return pid, changed
        return None, changed

    async def _completion(self, request: web.Request, path: str, endpoint: str) -> web.StreamResponse:
        t0 = time.perf_counter()
        status = 499  # stays so if the client goes away
        prog: ProgramState | None = None
        try:
            prog, payload, stream, wants_usage = await self._read(request, endpoint)
            status, response = await self._serve(request, prog, path, payload, stream, wants_usage, t0)
            return response
        except (Rejected, NoHealthyBackend, ProgramReleased) as e:
            status, response = _refusal(e)
            return response
        finally:
            if prog is not None and prog.ephemeral and not prog.released:
                self._release(prog, "request_end")
            self.metrics.observe_request(endpoint, status, time.perf_counter() - t0)

    async def _read(
        self, request: web.Request, endpoint: str = "chat"
    ) -> tuple[ProgramState, bytes, bool, bool]:
        """The program and the payload to forward; BadRequest for anything malformed."""
        if not self._authorized(request):
            raise Unauthorized("missing or wrong API key")
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise BadRequest(f"malformed JSON body: {e}") from None
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        _check_inputs(body, endpoint)
        try:
            pid, changed = self._program_id(request, body)
        except ValueError as e:
            raise BadRequest(str(e)) from None
        stream = body.get("stream") is True
        wants_usage = True
        if stream:
            opts = body.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage")):
                wants_usage = False
                body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
                changed = True
        if self.recorder is not None and self.recorder.prepare(body, endpoint):
            changed = True
        prog, _ = self.programs.get_or_create(pid)
        prog.last_activity = time.monotonic()
        return prog, (orjson.dumps(body) if changed else raw), stream, wants_usage

    async def _serve(
        self,
        request: web.Request,
        prog: ProgramState,
        path: str,
        payload: bytes,
        stream: bool,
        wants_usage: bool,
        t0: float,
    ) -> tuple[int, web.StreamResponse]:
        """Place, send, relay and account one completion request."""
        step = StepOutcome(len(payload), self.programs.estimate_prompt_tokens(prog, len(payload)))
        t_wait = time.perf_counter()
        least = self.programs.least_prompt_tokens(prog, step.chars)
        backend: Backend | None = await self._admit(prog, step.estimate, least)
        waited = time.perf_counter() - t_wait
        status = 499
        headers = self._headers_for(request)
        try:
            try:
                resp = await backend.pool.request("POST", path, payload, headers)
            except ConnectFailed as e:
                # It never reached that backend: mark it down and place the request once more.
                self._backend_failed(backend, str(e))
                self.metrics.retries.inc()
                self.policy.unsend(prog, backend, time.monotonic())
                backend = None
                t_wait = time.perf_counter()
                backend = await self._admit(prog, step.estimate)
                waited += time.perf_counter() - t_wait
                resp = await backend.pool.request("POST", path, payload, headers)
            self.metrics.added_seconds.observe(time.perf_counter() - t0 - waited)
            ctype = resp.headers.get("content-type", "")
            tap: list[bytes] | None = [] if self.recorder is not None else None
            if stream and resp.status == 200 and ctype.startswith("text/event-stream"):
                out, status, error = await relay_stream(request, resp, step, wants_usage, tap=tap)
                if error is not None:
                    self._upstream_failed(backend, error)
                self._record(prog, path, payload, status, backend, b"".join(tap or ()), True, t0)
                return status, out
            out = await relay_json(resp, step)
            status = resp.status
            self._record(prog, path, payload, status, backend, out.body or b"", False, t0)
            return status, out
        except ConnectFailed as e:
            if backend is not None:
                self._backend_failed(backend, str(e))
            status = 502
            return status, error_response(502, f"backend unreachable: {e}", "upstream_error")
        except UpstreamError as e:
            if backend is not None:
                self._upstream_failed(backend, e)
            status = 502
            return status, error_response(502, f"backend request failed: {e}", "upstream_error")
        finally:
            # Every end of a request (success, error, client gone, stream cut short) ends the step.
            now = time.monotonic()
            self.programs.end_step(prog, step, now)
            self.policy.finish(prog, backend, now)

    def _record(
        self, prog: ProgramState, path: str, payload: bytes, status: int, backend: Backend, answer: Any,
        stream: bool, t0: float,
    ) -> None:  # fmt: skip
        if self.recorder is None:
            return
        try:
            self.recorder.record(
                None if prog.ephemeral else prog.program_id, path, payload, status, backend.url,
                bytes(answer), stream, time.perf_counter() - t0,
            )  # fmt: skip
        except OSError as e:  # a full disk must not fail the client's request
            log.warning("could not record the request of %s: %s", prog.program_id, e)

    async def _admit(self, prog: ProgramState, tokens: int, least: int | None = None) -> Backend:
        """The backend the policy places the request on, waiting while it is held."""
        admission = self.admission
        backend = admission.submit(prog, tokens, least, _no_callback, _no_callback)
        if not isinstance(backend, Held):
            return backend
        held = backend
        started = time.monotonic()
        fut = asyncio.get_running_loop().create_future()

        def placed(b: Backend) -> None:
            if fut.done():  # cancelled meanwhile: the placement is undone at once
                self.policy.finish(prog, b, time.monotonic())
            else:
                fut.set_result(b)

        def refused(e: BaseException) -> None:
            if not fut.done():
                fut.set_exception(e)

        held.placed, held.refused = placed, refused
        try:
            return await fut
        except asyncio.CancelledError:
            admission.abandon(held)
            raise
        finally:
            self.metrics.queue_seconds.observe(time.monotonic() - started)

    def _upstream_failed(self, backend: Backend, error: UpstreamError) -> None:
        self.metrics.backend_errors.labels(backend.url, type(error).__name__).inc()
        if isinstance(error, UpstreamDisconnected):
            self.spawn(self._recheck(backend))

    async def models(self, request: web.Request) -> web.StreamResponse:
        return await self.passthrough(request, path="/v1/models")

    async def passthrough(self, request: web.Request, path: str | None = None) -> web.StreamResponse:
        """Forward any other /v1 request to a healthy backend, without program accounting."""
        if not self._authorized(request):
            return error_response(401, "missing or wrong API key", "authentication_error")
        healthy = [b for b in self.backends if b.healthy]
        if not healthy:
            return error_response(503, "no healthy backend", "service_unavailable")
        body = await request.read()
        target = path or request.rel_url.path_qs
        ctype = request.headers.get("Content-Type", JSON_TYPE).encode("latin-1", "replace")
        for b in healthy:
            try:
                resp = await b.pool.request(request.method, target, body, self._headers_for(request), ctype)
            except ConnectFailed as e:
                self._backend_failed(b, str(e))
                continue
            except UpstreamError as e:
                return error_response(502, f"backend request failed: {e}", "upstream_error")
            try:
                data = await resp.read()
            except UpstreamError as e:
                return error_response(502, f"backend request failed: {e}", "upstream_error")
            finally:
                resp.release()
            return web.Response(
                status=resp.status,
                body=data,
                headers={"Content-Type": resp.headers.get("content-type", JSON_TYPE)},
            )
        return error_response(503, "no healthy backend", "service_unavailable")

    # program endpoints
    async def list_programs(self, request: web.Request) -> web.Response:
        programs = [p.summary() for p in self.programs.programs.values()]
        paused = sum(1 for p in programs if p["state"] == "paused")
        body = {
            "count": len(programs),
            "paused": paused,
            "queued": self.policy.queue_length(),
            "programs": programs,
        }
        return web.Response(body=orjson.dumps(body), content_type=JSON_TYPE)

    async def get_program(self, request: web.Request) -> web.Response:
        prog = self.programs.get(request.match_info["program_id"])
        if prog is None:
            return error_response(404, f"unknown program {request.match_info['program_id']!r}", "not_found")
        return web.Response(body=orjson.dumps(prog.summary()), content_type=JSON_TYPE)

    async def release(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(401, "missing or wrong API key", "authentication_error")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as e:
            return error_response(400, f"malformed JSON body: {e}")
        pid = body.get("program_id") if isinstance(body, dict) else None
        if not isinstance(pid, str | int) or isinstance(pid, bool) or pid == "":
            return error_response(400, 'body must be {"program_id": "<id>"}')
        prog = self.programs.get(str(pid))
        if prog is None:
            return error_response(404, f"unknown program {pid!r}", "not_found")
        self._release(prog, "client")
        return web.Response(
            body=orjson.dumps({"released": True, "program_id": str(pid)}), content_type=JSON_TYPE
        )

    # status
    async def health(self, request: web.Request) -> web.Response:
        healthy = sum(1 for b in self.backends if b.healthy)
        body = {
            "status": "ok" if healthy == len(self.backends) else ("degraded" if healthy else "down"),
            "gateway": GATEWAY_MARKER,
            "policy": self.policy.name,
            "programs": len(self.programs),
            "queued": self.policy.queue_length(),
            "backends": [b.summary(self.config.target_utilization) for b in self.backends],
        }
        return web.Response(status=200 if healthy else 503, body=orjson.dumps(body), content_type=JSON_TYPE)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )


async def start_gateway(config: GatewayConfig) -> tuple[web.AppRunner, int, Gateway]:
    """Start serving; returns the runner (call `cleanup()` to stop), the bound port and the gateway."""
    gateway = Gateway(config)
    runner, port = await start_site(gateway.build_app(), config.host, config.port)
    return runner, port, gateway


def serve(config: GatewayConfig, *, ready: Any = None) -> int | None:
    """Run the gateway until interrupted; `ready(port)` is called once it listens.
    Returns the number of the signal that stopped it (None after Ctrl-C)."""
    return serve_forever(lambda: start_gateway(config), ready=ready)


class GatewayThread(ServerThread):
    """A gateway served from a background thread (tests, embedding): `with GatewayThread(cfg) as g: g.url`."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        super().__init__(lambda: start_gateway(config))

    @property
    def gateway(self) -> Gateway | None:
        return self.served
