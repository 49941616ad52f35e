"""A scripted HTTP server on loopback, for registry answers the real local registry never gives.

Karapace's plain-text 404s, 50003, 429 with Retry-After, a server that sleeps past the client's read
timeout, one that fails N times then recovers: each route gets a list of `Reply`s served in order (the
last one repeats). It is a real `http.server` in a thread, so the client under test goes through its
whole HTTP stack; every request it receives is recorded for the test to count and inspect.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """One scripted answer. A dict/list body is sent as JSON, a str as plain text."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (interrupted when the server closes)


Responder = Callable[[Received], Reply]


class ScriptedRegistry:
    """HTTP server whose routes answer from scripts. Unscripted routes answer a plain-text 404."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.received: list[Received] = []
        self._routes: dict[tuple[str, str], list[Reply | Responder]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "http" if tls is None else "https"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self._scheme}://127.0.0.1:{self._server.server_address[1]}"

    def on(self, method: str, path: str, *replies: Reply | Responder) -> None:
        """Script `method path`: answer with `replies` in order, repeating the last one."""
        with self._lock:
            self._routes[(method, path)] = list(replies)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests matched `method` and `path` (None matches any)."""
        with self._lock:
            return sum(
                1
                for r in self.received
                if (method is None or r.method == method) and (path is None or r.path == path)
            )

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedRegistry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _next_reply(self, request: Received) -> Reply:
        with self._lock:
            self.received.append(request)
            script = self._routes.get((request.method, request.path))
            if not script:
                return Reply(404, "404 Not Found")
            step = script.pop(0) if len(script) > 1 else script[0]
        return step(request) if callable(step) else step

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # header and body go out as two writes: no 40 ms stall

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Received(self.command, parts.path, parts.query, dict(self.headers.items()), body)
                reply = owner._next_reply(request)
                if reply.delay and owner._closing.wait(reply.delay):
                    return
                if isinstance(reply.body, str):
                    payload, ctype = reply.body.encode(), "text/plain"
                else:
                    payload = json.dumps(reply.body).encode()
                    ctype = "application/vnd.schemaregistry.v1+json"
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (read timeout) and closed the socket

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # base signature
                pass

        return Handler


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
