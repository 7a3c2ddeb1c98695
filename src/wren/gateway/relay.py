"""Relaying a backend's answer to the client: a whole JSON body, or an SSE stream event by event.

Usage is read from the tail of a plain response or from the usage event of a stream without parsing
the rest. A stream must end with a finish (`data: [DONE]` or a choice with a `finish_reason`): one
that stops without it (the connection closed or was reset mid-reply) ends the client's stream with
an error event, never as if the reply were complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from wren.gateway.upstream import UpstreamError

if TYPE_CHECKING:
    from wren.gateway.programs import StepOutcome
    from wren.gateway.upstream import _Response

JSON_TYPE = "application/json"
_DECODER = json.JSONDecoder()
_FINISH = re.compile(rb'"finish_reason"\s*:\s*"|data:\s*\[DONE\]')


class StreamCutShort(UpstreamError):
    """The backend's stream ended without a finish (no `[DONE]`, no finish_reason)."""


def error_response(
    status: int, message: str, kind: str = "invalid_request_error", retry_after: float | None = None
) -> web.Response:
    """An OpenAI-style error; `retry_after` seconds become a Retry-After header (whole, at least 1)."""
    body = orjson.dumps({"error": {"message": message, "type": kind, "code": status}})
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    return web.Response(status=status, body=body, content_type=JSON_TYPE, headers=headers)


def error_event(message: str, status: int = 502, kind: str = "upstream_error") -> bytes:
    """An SSE event carrying an OpenAI-style error object."""
    return b"data: " + orjson.dumps({"error": {"message": message, "type": kind, "code": status}}) + b"\n\n"


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


def event_cut(buf: bytes) -> int:
    """Index just past the last complete SSE event in `buf`, or -1."""
    a = buf.rfind(b"\n\n")
    b = buf.rfind(b"\r\n\r\n")
    if a < 0 and b < 0:
        return -1
    return max(a + 2 if a >= 0 else -1, b + 4 if b >= 0 else -1)


class StreamScan:
    """What the relayed events of one stream showed: usage, how many events, whether it finished."""

    __slots__ = ("usage", "events", "finished", "client_wants_usage")

    def __init__(self, client_wants_usage: bool) -> None:
        self.usage: tuple[int, int] | None = None
        self.events = 0
        self.finished = False
        self.client_wants_usage = client_wants_usage

    def scan(self, data: bytes) -> bytes:
        """Look at complete events; returns what to pass on (usage-only events the client did not ask
        for are dropped)."""
        self.events += data.count(b"data:")
        if not self.finished and _FINISH.search(data):
            self.finished = True
        if b'"usage"' in data:
            data = self._take_usage(data)
        return data

    def _take_usage(self, data: bytes) -> bytes:
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
                        self.usage = (
                            int(usage.get("prompt_tokens") or 0),
                            int(usage.get("completion_tokens") or 0),
                        )
                    if not self.client_wants_usage and not obj.get("choices"):
                        dropped = True
                        continue
            kept.append(event)
        if not dropped:
            return data
        return b"".join(e + b"\n\n" for e in kept)


async def relay_json(resp: _Response, step: StepOutcome) -> web.Response:
    """The backend's whole answer as the client's response; usage goes into `step`."""
    try:
        data = await resp.read()
    finally:
        resp.release()
    if resp.status == 200:
        step.usage = usage_from_body(data)
        step.completed = True
    return web.Response(
        status=resp.status, body=data, headers={"Content-Type": resp.headers.get("content-type", JSON_TYPE)}
    )


async def relay_stream(
    request: web.Request,
    resp: _Response,
    step: StepOutcome,
    wants_usage: bool,
    tap: list[bytes] | None = None,
) -> tuple[web.StreamResponse, int, UpstreamError | None]:
    """Pass each complete SSE event through as it arrives: (response, status, backend error).

    The status is 200, 499 when the client went away, or 502 when the backend failed mid-stream
    (its error, StreamCutShort when the stream just stopped, is returned after an error event went
    to the client). `step` gets the usage, events and whether the stream finished, whatever happens.
    `tap`, when given, receives every complete chunk of events as the backend sent it (the recorder's).
    """
    scan = StreamScan(wants_usage)
    ctype = resp.headers.get("content-type", "text/event-stream")
    out = web.StreamResponse(status=200, headers={"Content-Type": ctype, "Cache-Control": "no-cache"})
    buf = b""
    try:
        await out.prepare(request)
        async for chunk in resp.iter_chunks():
            buf = buf + chunk if buf else chunk
            cut = event_cut(buf)
            if cut < 0:
                continue
            data, buf = buf[:cut], buf[cut:]
            if tap is not None:
                tap.append(data)
            await out.write(scan.scan(data))
        if buf:
            if tap is not None:
                tap.append(buf)
            await out.write(scan.scan(buf))
        if not scan.finished:
            raise StreamCutShort("the stream ended without [DONE] or a finish_reason")
    except ConnectionError:
        return out, 499, None
    except UpstreamError as e:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await out.write(error_event(f"backend failed mid-stream: {e}"))
            await out.write_eof()
        return out, 502, e
    finally:
        resp.release()
        step.usage = scan.usage
        step.events = scan.events
        step.completed = scan.finished
    with contextlib.suppress(ConnectionError, RuntimeError):
        await out.write_eof()
    return out, 200, None
