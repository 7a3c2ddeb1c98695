"""The gateway's HTTP server: an OpenAI-compatible proxy that schedules programs.

The request path is kept lean: the body is parsed once (orjson) to find the program id and the
stream flag, re-encoded only when it had to change (a program id to strip, usage to request), and
forwarded over pooled keep-alive connections. Usage is read from the tail of a plain response or
from the usage event of a stream without parsing the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from wren.gateway.backends import Backend
from wren.gateway.config import GatewayConfig
from wren.gateway.metrics import GatewayMetrics
from wren.gateway.programs import ProgramReleased, ProgramState, ProgramTable
from wren.gateway.scheduler import NoHealthyBackend, Policy, get_policy_class
from wren.gateway.serving import ServerThread, serve_forever, start_site
from wren.gateway.upstream import ConnectFailed, UpstreamDisconnected, UpstreamError

log = logging.getLogger("wren.gateway")

GATEWAY_MARKER = "wren"
_JSON = "application/json"
_DECODER = json.JSONDecoder()


def error_response(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    body = orjson.dumps({"error": {"message": message, "type": kind, "code": status}})
    return web.Response(status=status, body=body, content_type=_JSON)


def usage_from_body(data: bytes) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) from a completion response, reading only its usage object."""
    i = data.rfind(b'"usage"')
    if i < 0:
        return None
    j = data.find(b"{", i + 7)
    if j < 0 or data[i + 7 : j].strip() != b":":
        return None
    try:
        usage, _ = _DECODER.raw_decode(data[j:].decode("utf-8", "replace"))
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return None


def _split_events(data: bytes) -> list[bytes]:
    return data.replace(b"\r\n", b"\n").split(b"\n\n")


def _event_cut(buf: bytes) -> int:
    """Index just past the last complete SSE event in `buf`, or -1."""
    a = buf.rfind(b"\n\n")
    b = buf.rfind(b"\r\n\r\n")
    if a < 0 and b < 0:
        return -1
    return max(a + 2 if a >= 0 else -1, b + 4 if b >= 0 else -1)


class _StreamState:
    __slots__ = ("usage", "events", "client_wants_usage")

    def __init__(self, client_wants_usage: bool) -> None:
        self.usage: tuple[int, int] | None = None
        self.events = 0
        self.client_wants_usage = client_wants_usage


def _scan_usage(data: bytes, state: _StreamState) -> bytes:
    """Take usage from the SSE events in `data`; drop usage-only events the client did not ask for."""
    kept = []
    dropped = False
    for event in _split_events(data):
        if not event:
            continue
        if b'"usage"' in event:
            payload = event.split(b"data:", 1)[-1].strip()
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                obj = None
            usage = obj.get("usage") if isinstance(obj, dict) else None
            if isinstance(usage, dict):
                with contextlib.suppress(TypeError, ValueError):
                    state.usage = (
                        int(usage.get("prompt_tokens") or 0),
                        int(usage.get("completion_tokens") or 0),
                    )
                if not state.client_wants_usage and not obj.get("choices"):
                    dropped = True
                    continue
        kept.append(event)
    if not dropped:
        return data
    return b"".join(e + b"\n\n" for e in kept)


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
        self.spawn(self._every(0.1, self.policy.tick))
        for b in self.backends:
            if b.capacity is None and self.policy.name == "program":
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
                self.policy.backend_up(b)
            elif not ok and b.mark_down(b.last_error or "health check failed"):
                self.policy.backend_down(b)

    async def _scrape_round(self) -> None:
        await asyncio.gather(*(b.scrape() for b in self.backends if b.healthy))

    def _lease_round(self) -> None:
        for prog in self.programs.idle(self.config.lease_seconds):
            log.info("release %s: idle past its %gs lease", prog.program_id, self.config.lease_seconds)
            self._release(prog, "lease")

    def _release(self, prog: ProgramState, reason: str) -> None:
        self.programs.remove(prog)
        self.policy.release(prog)
        self.metrics.releases.labels(reason).inc()

    def _backend_failed(self, b: Backend, reason: str) -> None:
        self.metrics.backend_errors.labels(b.url, "connect").inc()
        if b.mark_down(reason):
            self.policy.backend_down(b)

    async def _recheck(self, b: Backend) -> None:
        if not await b.check_health() and b.mark_down(b.last_error or "health check failed"):
            self.policy.backend_down(b)

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
        """The program id from the body, extra_body or X-Program-Id (in that order); True if the body changed."""
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
        if not self._authorized(request):
            return error_response(401, "missing or wrong API key", "authentication_error")
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            self.metrics.observe_request(endpoint, 400, time.perf_counter() - t0)
            return error_response(400, f"malformed JSON body: {e}")
        if not isinstance(body, dict):
            return error_response(400, "request body must be a JSON object")
        try:
            pid, changed = self._program_id(request, body)
        except ValueError as e:
            return error_response(400, str(e))
        stream = body.get("stream") is True
        wants_usage = True
        if stream:
            opts = body.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage")):
                wants_usage = False
                body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
                changed = True
        payload = orjson.dumps(body) if changed else raw
        headers = self._headers_for(request)

        prog, _ = self.programs.get_or_create(pid)
        prog.last_activity = time.monotonic()
        chars = len(raw)
        estimate = self.programs.estimate_prompt_tokens(prog, chars)
        status = 499  # stays so if the client goes away
        try:
            status, response = await self._forward_request(
                request, prog, path, payload, headers, estimate, chars, stream, wants_usage, t0
            )
            return response
        finally:
            if prog.ephemeral and not prog.released:
                self._release(prog, "request_end")
            self.metrics.observe_request(endpoint, status, time.perf_counter() - t0)

    async def _forward_request(
        self,
        request: web.Request,
        prog: ProgramState,
        path: str,
        payload: bytes,
        headers: bytes,
        estimate: int,
        chars: int,
        stream: bool,
        wants_usage: bool,
        t0: float,
    ) -> tuple[int, web.StreamResponse]:
        policy = self.policy
        t_wait = time.perf_counter()
        try:
            backend = await policy.acquire(prog, estimate)
        except NoHealthyBackend as e:
            return 503, error_response(503, f"{e}: all backends are down", "service_unavailable")
        except ProgramReleased as e:
            return 409, error_response(409, str(e), "program_released")
        waited = time.perf_counter() - t_wait
        usage: tuple[int, int] | None = None
        completed = False
        events = 0
        prog.inflight += 1
        backend.inflight += 1
        try:
            t_sent = time.perf_counter()
            try:
                resp = await backend.pool.request("POST", path, payload, headers)
            except ConnectFailed as e:
                # It never reached that backend: mark it down and try once elsewhere.
                self._backend_failed(backend, str(e))
                self.metrics.retries.inc()
                prog.inflight -= 1
                backend.inflight -= 1
                try:
                    backend = await policy.acquire(prog, estimate)
                finally:
                    prog.inflight += 1  # on the new backend, or the old one if none was found
                    backend.inflight += 1
                t_sent = time.perf_counter()
                resp = await backend.pool.request("POST", path, payload, headers)
            pre = t_sent - t0 - waited
            ctype = resp.headers.get("content-type", _JSON)
            if not (stream and resp.status == 200 and ctype.startswith("text/event-stream")):
                try:
                    data = await resp.read()
                finally:
                    resp.release()
                t_recv = time.perf_counter()
                if resp.status == 200:
                    usage = usage_from_body(data)
                    completed = True
                out = web.Response(status=resp.status, body=data, headers={"Content-Type": ctype})
                self.metrics.added_seconds.observe(pre + (time.perf_counter() - t_recv))
                return resp.status, out
            # Streaming: pass each complete SSE event through as it arrives.
            state = _StreamState(wants_usage)
            out = web.StreamResponse(status=200, headers={"Content-Type": ctype, "Cache-Control": "no-cache"})
            buf = b""
            try:
                await out.prepare(request)
                self.metrics.added_seconds.observe(pre)
                async for chunk in resp.iter_chunks():
                    buf = buf + chunk if buf else chunk
                    cut = _event_cut(buf)
                    if cut < 0:
                        continue
                    data, buf = buf[:cut], buf[cut:]
                    state.events += data.count(b"data:")
                    if b'"usage"' in data:
                        data = _scan_usage(data, state)
                    await out.write(data)
                if buf:
                    await out.write(buf)
                completed = True
            except ConnectionError:
                return 499, out  # the client went away; the step still ends below
            except UpstreamError as e:
                self.metrics.backend_errors.labels(backend.url, type(e).__name__).inc()
                if isinstance(e, UpstreamDisconnected):
                    self.spawn(self._recheck(backend))
                err = orjson.dumps(
                    {
                        "error": {
                            "message": f"backend failed mid-stream: {e}",
                            "type": "upstream_error",
                            "code": 502,
                        }
                    }
                )
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await out.write(b"data: " + err + b"\n\n")
                return 502, out
            finally:
                resp.release()
                usage = state.usage
                events = state.events
            with contextlib.suppress(ConnectionError, RuntimeError):
                await out.write_eof()
            return 200, out
        except NoHealthyBackend as e:
            return 503, error_response(503, f"{e}: all backends are down", "service_unavailable")
        except ProgramReleased as e:
            return 409, error_response(409, str(e), "program_released")
        except ConnectFailed as e:
            self._backend_failed(backend, str(e))
            return 502, error_response(502, f"backend unreachable: {e}", "upstream_error")
        except UpstreamError as e:
            self.metrics.backend_errors.labels(backend.url, type(e).__name__).inc()
            if isinstance(e, UpstreamDisconnected):
                self.spawn(self._recheck(backend))
            return 502, error_response(502, f"backend request failed: {e}", "upstream_error")
        finally:
            # Every end of a request (success, error, client gone, stream without usage) ends the step.
            prog.inflight -= 1
            backend.inflight -= 1
            prog.last_activity = time.monotonic()
            if usage is not None:
                self.programs.record_usage(prog, chars, usage[0], usage[1])
                prog.steps += 1
            elif completed or events:
                self.programs.record_estimate(prog, estimate, events)
                prog.steps += 1
            else:
                prog.errors += 1
            policy.finish(prog)

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
        ctype = request.headers.get("Content-Type", _JSON).encode("latin-1", "replace")
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
                headers={"Content-Type": resp.headers.get("content-type", _JSON)},
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
        return web.Response(body=orjson.dumps(body), content_type=_JSON)

    async def get_program(self, request: web.Request) -> web.Response:
        prog = self.programs.get(request.match_info["program_id"])
        if prog is None:
            return error_response(404, f"unknown program {request.match_info['program_id']!r}", "not_found")
        return web.Response(body=orjson.dumps(prog.summary()), content_type=_JSON)

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
        return web.Response(body=orjson.dumps({"released": True, "program_id": str(pid)}), content_type=_JSON)

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
        return web.Response(status=200 if healthy else 503, body=orjson.dumps(body), content_type=_JSON)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )


async def start_gateway(config: GatewayConfig) -> tuple[web.AppRunner, int, Gateway]:
    """Start serving; returns the runner (call `cleanup()` to stop), the bound port and the gateway."""
    gateway = Gateway(config)
    runner, port = await start_site(gateway.build_app(), config.host, config.port)
    return runner, port, gateway


def serve(config: GatewayConfig, *, ready: Any = None) -> None:
    """Run the gateway until interrupted; `ready(port)` is called once it listens."""
    serve_forever(lambda: start_gateway(config), ready=ready)


class GatewayThread(ServerThread):
    """A gateway served from a background thread (tests, embedding): `with GatewayThread(cfg) as g: g.url`."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        super().__init__(lambda: start_gateway(config))

    @property
    def gateway(self) -> Gateway | None:
        return self.served
