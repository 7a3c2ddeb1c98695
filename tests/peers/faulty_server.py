"""An HTTP backend that misbehaves on purpose, written on raw sockets so it can end a reply any way.

GETs (health checks, metrics) get an empty JSON object. Each POST is answered by `mode`:
  "sse-close"  a streamed reply with no Content-Length or chunking, closed before `[DONE]`
  "sse-reset"  the same, but the connection is reset (RST) instead of closed
  "json-reset" half a JSON body delimited by the connection, then a reset
Each POST's request line is recorded in `posts`.
"""

from __future__ import annotations

import socket
import struct
import threading

EVENTS = (
    b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"par"}}]}\n\n'
    b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tial"}}]}\n\n'
)


class FaultyServer:
    """Serves on 127.0.0.1 from a background thread: `with FaultyServer("sse-close") as s: s.url`."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.posts: list[str] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FaultyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(v)
                        for k, _, v in (x.partition(":") for x in lines[1:])
                        if k.lower() == "content-length"
                    ),
                    0,
                )
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[length:]
                if lines[0].startswith("GET"):
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                    )
                    continue
                self.posts.append(lines[0])
                self._misbehave(conn)
                return

    def _misbehave(self, conn: socket.socket) -> None:
        if self.mode == "json-reset":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"id":"x","choices":[{"ind'
            )
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + EVENTS)
        if self.mode.endswith("reset"):
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
