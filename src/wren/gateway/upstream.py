"""A lean HTTP/1.1 client for talking to inference backends.

The gateway's added latency is dominated by per-request client overhead, so instead of a general
client this keeps a pool of keep-alive connections per backend and parses responses with a small
state machine (Content-Length, chunked, or read-until-close bodies). Errors are split by whether
the request can have reached the backend: `ConnectFailed` means it did not, so it is safe to retry
elsewhere.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

# Pause reading from a backend while this much body is buffered and unread (slow client).
_HIGH_WATER = 1 << 20


class UpstreamError(Exception):
    """A backend request failed."""


class ConnectFailed(UpstreamError):
    """The request never reached the backend (connection refused, unreachable, connect timeout)."""


class UpstreamDisconnected(UpstreamError):
    """The backend closed the connection before the response was complete."""


class UpstreamTimeout(UpstreamError):
    """The backend sent nothing for longer than the read timeout."""


class _Response:
    """A response being received; body bytes arrive through `_feed` from the protocol."""

    __slots__ = ("status", "headers", "_chunks", "_buffered", "_waiter", "_done", "_error", "_conn")

    def __init__(self, conn: _Connection) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._waiter: asyncio.Future | None = None
        self._done = False
        self._error: BaseException | None = None
        self._conn = conn

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER:
            self._conn.pause()
        self._wake()

    def _finish(self, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        self._wake()

    async def _wait(self) -> None:
        conn = self._conn
        loop = conn.loop
        self._waiter = loop.create_future()
        timer = loop.call_later(conn.pool.read_timeout, self._timeout)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _timeout(self) -> None:
        self._conn.abort()
        self._finish(
            UpstreamTimeout(f"no data from {self._conn.pool.label} for {self._conn.pool.read_timeout:g}s")
        )

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive (all that is buffered at once); raises UpstreamError if cut short."""
        while True:
            if self._chunks:
                chunks = self._chunks
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                self._conn.resume()
                yield data
                continue
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            await self._wait()

    async def read(self) -> bytes:
        """The whole body."""
        if not self._done:
            while not self._done:
                await self._wait()
        if self._error is not None:
            raise self._error
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return data

    def release(self) -> None:
        """Give the connection back to the pool if the response was read to its end, else close it."""
        conn = self._conn
        if self._done and self._error is None and not self._chunks and conn.reusable:
            conn.pool._put_idle(conn)
        else:
            conn.abort()


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time."""

    def __init__(self, pool: ConnectionPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.response: _Response | None = None
        self.head_future: asyncio.Future | None = None
        self.got_bytes = False
        self._buf = bytearray()
        self._state = 0  # 0 head, 1 length body, 2 chunked, 3 until-close, 4 done
        self._remaining = 0
        self._chunk_phase = 0  # 0 size line, 1 data, 2 CRLF after data, 3 trailers
        self._paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        if self.head_future is not None and not self.head_future.done():
            self.head_future.set_exception(UpstreamDisconnected(f"{self.pool.label} closed the connection"))
        resp = self.response
        if resp is not None:
            if self._state == 3 and exc is None:
                resp._finish()  # a body delimited by the connection's close
            elif self._state == 3:
                resp._finish(
                    UpstreamDisconnected(f"{self.pool.label} reset the connection mid-response: {exc}")
                )
            elif self._state != 4:
                resp._finish(UpstreamDisconnected(f"{self.pool.label} closed the connection mid-response"))

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self._state == 1 and not self._buf:
            # Fast path: a plain body chunk.
            n = len(data)
            if n < self._remaining:
                self._remaining -= n
                self.response._feed(data)  # type: ignore[union-attr]
                return
        self._buf += data
        try:
            self._parse()
        except UpstreamError as e:
            self.abort()
            if self.head_future is not None and not self.head_future.done():
                self.head_future.set_exception(e)
            if self.response is not None:
                self.response._finish(e)

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self.closed = True

    # parsing
    def _parse(self) -> None:
        buf = self._buf
        while buf:
            state = self._state
            if state == 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > 65536:
                        raise UpstreamError(f"{self.pool.label} sent an oversized response head")
                    return
                head = bytes(buf[:end]).decode("latin-1")
                del buf[: end + 4]
                self._on_head(head)
            elif state == 1:
                if self._feed_counted(buf):
                    self._complete()
            elif state == 2:
                if not self._parse_chunked(buf):
                    return
            elif state == 3:
                self.response._feed(bytes(buf))  # type: ignore[union-attr]
                buf.clear()
            else:
                # Bytes after a complete response: the connection is out of step; drop it.
                self.reusable = False
                buf.clear()

    def _on_head(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise UpstreamError(f"{self.pool.label} sent a malformed status line: {lines[0][:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200:
            return  # interim response (100 Continue): the real head follows
        resp = self.response
        assert resp is not None
        resp.status = status
        resp.headers = headers
        if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self.reusable = False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = 2
            self._chunk_phase = 0
        elif "content-length" in headers:
            self._remaining = int(headers["content-length"])
            self._state = 1
        elif status in (204, 304):
            self._remaining = 0
            self._state = 1
        else:
            self._state = 3
            self.reusable = False
        if self.head_future is not None and not self.head_future.done():
            self.head_future.set_result(resp)
        if self._state == 1 and self._remaining == 0:
            self._complete()

    def _feed_counted(self, buf: bytearray) -> bool:
        """Pass on what `buf` holds of the `_remaining` bytes still due; True once none are due."""
        n = min(self._remaining, len(buf))
        self.response._feed(bytes(buf[:n]))  # type: ignore[union-attr]
        del buf[:n]
        self._remaining -= n
        return self._remaining == 0

    def _parse_chunked(self, buf: bytearray) -> bool:
        """Consume what it can of a chunked body; False when more bytes are needed."""
        while buf:
            if self._chunk_phase == 0:
                end = buf.find(b"\r\n")
                if end < 0:
                    return False
                size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
                del buf[: end + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise UpstreamError(
                        f"{self.pool.label} sent a bad chunk size {size_text[:20]!r}"
                    ) from None
                if size == 0:
                    self._chunk_phase = 3
                else:
                    self._remaining = size
                    self._chunk_phase = 1
            elif self._chunk_phase == 1:
                if self._feed_counted(buf):
                    self._chunk_phase = 2
            elif self._chunk_phase == 2:
                if len(buf) < 2:
                    return False
                del buf[:2]
                self._chunk_phase = 0
            else:
                end = buf.find(b"\r\n")
                if end < 0:
                    return False
                line = bytes(buf[:end])
                del buf[: end + 2]
                if not line:
                    self._complete()
                    return True
        return False

    def _complete(self) -> None:
        self._state = 4
        resp = self.response
        if resp is not None:
            resp._finish()

    def start(self, resp: _Response) -> None:
        self.response = resp
        self.head_future = self.loop.create_future()
        self.got_bytes = False
        self._state = 0
        self._buf.clear()


class ConnectionPool:
    """Keep-alive connections to one backend (`http://host:port`)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 600.0,
        max_idle: int = 512,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"backend URL must be http://host[:port][/prefix], got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.label = f"{self.host}:{self.port}"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self._host_header = f"Host: {self.host}:{self.port}\r\n".encode()

    def _put_idle(self, conn: _Connection) -> None:
        if conn.closed or len(self._idle) >= self.max_idle:
            conn.abort()
            return
        conn.response = None
        conn.head_future = None
        self._idle.append(conn)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(self, loop), self.host, self.port),
                self.connect_timeout,
            )
        except (TimeoutError, OSError) as e:
            raise ConnectFailed(f"cannot connect to backend {self.label}: {e or type(e).__name__}") from None
        return conn  # type: ignore[return-value]

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: bytes = b"",
        content_type: bytes = b"application/json",
    ) -> _Response:
        """Send a request and return once the response head has arrived.

        `headers` is pre-encoded `Name: value\\r\\n` lines. The caller must call `release()` on the
        response when done with it.
        """
        head = (
            f"{method} {self.prefix}{path} HTTP/1.1\r\n".encode()
            + self._host_header
            + (
                b"Content-Type: " + content_type + b"\r\nContent-Length: %d\r\n" % len(body)
                if body or method == "POST"
                else b""
            )
            + headers
            + b"\r\n"
        )
        payload = head + body if len(body) < 65536 else None
        for attempt in (0, 1):
            reused = False
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if (
                    not candidate.closed
                    and candidate.transport is not None
                    and not candidate.transport.is_closing()
                ):
                    conn, reused = candidate, True
                    break
            if conn is None:
                conn = await self._connect()
            resp = _Response(conn)
            conn.start(resp)
            assert conn.transport is not None
            if payload is not None:
                conn.transport.write(payload)
            else:
                conn.transport.writelines((head, body))
            try:
                await self._wait_head(conn, resp)
            except UpstreamDisconnected:
                # A kept-alive connection the backend had already closed: nothing was processed,
                # so one fresh attempt is safe.
                if reused and not conn.got_bytes and attempt == 0:
                    continue
                raise
            return resp
        raise AssertionError("unreachable")

    async def _wait_head(self, conn: _Connection, resp: _Response) -> None:
        fut = conn.head_future
        assert fut is not None
        timer = conn.loop.call_later(self.read_timeout, self._head_timeout, conn)
        try:
            await fut
        except BaseException:
            conn.abort()
            raise
        finally:
            timer.cancel()

    def _head_timeout(self, conn: _Connection) -> None:
        fut = conn.head_future
        if fut is not None and not fut.done():
            fut.set_exception(UpstreamTimeout(f"{self.label} sent no response for {self.read_timeout:g}s"))

    def close(self) -> None:
        for conn in self._idle:
            conn.abort()
        self._idle.clear()
