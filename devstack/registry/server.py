"""The HTTP side of the local registry: a threading standard-library server, auth, TLS and the CLI.

Each request is parsed (content type, JSON body), checked against the optional basic-auth credentials or
bearer token, handed to `RegistryApi`, and answered in ``application/vnd.schemaregistry.v1+json``. Nothing
a client sends can stop the server: every failure becomes a JSON error answer. One access-log line per
request goes to stderr (method, path, status), never a header or a body, so credentials stay out of logs.

On start it prints one JSON line to stdout, ``{"host": ..., "port": ..., "url": ...}``, which is how
`RegistryProcess` learns the port when it asked for port 0.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hmac
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.registry.api import RawText, RegistryApi
from devstack.registry.errors import ApiError
from devstack.registry.store import RegistryStore
from devstack.registry.warmup import WarmUp

__all__ = ["AuthPolicy", "RegistryServer", "main"]

log = logging.getLogger("devstack.registry")

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_ACCEPTED_TYPES = frozenset(
    {"application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json", "application/json"}
)
_MAX_BODY = 16 * 1024 * 1024
_DATA_FILE = "registry.json"


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Credentials every request must carry; with neither set, the registry is open."""

    basic_auth: tuple[str, str] | None = None
    bearer_token: str | None = None

    def __repr__(self) -> str:
        basic = "***" if self.basic_auth else None
        token = "***" if self.bearer_token else None
        return f"AuthPolicy(basic_auth={basic}, bearer_token={token})"

    @property
    def enabled(self) -> bool:
        """Whether requests must authenticate."""
        return self.basic_auth is not None or self.bearer_token is not None

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries acceptable credentials."""
        if not self.enabled:
            return True
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.bearer_token is not None:
            return hmac.compare_digest(value.encode(), self.bearer_token.encode())
        if scheme.lower() == "basic" and self.basic_auth is not None:
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            expected = ":".join(self.basic_auth).encode()
            return hmac.compare_digest(decoded, expected)
        return False

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of a 401."""
        if self.basic_auth is not None:
            return 'Basic realm="devstack-registry"'
        return 'Bearer realm="devstack-registry"'


class RegistryServer(ThreadingHTTPServer):
    """A threading HTTP(S) server bound to one `RegistryApi`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        api: RegistryApi,
        auth: AuthPolicy,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.api = api
        self.auth = auth
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # Handshake in the handler thread: a client that never speaks TLS must not block accept().
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        log.info("connection from %s ended: %s: %s", client_address[0], type(exc).__name__, exc)


class _Handler(BaseHTTPRequestHandler):
    server: RegistryServer
    protocol_version = "HTTP/1.1"
    server_version = "devstack-registry/1"
    timeout = 30  # an idle keep-alive connection frees its thread after this many seconds
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus delayed ACKs add ~40 ms each.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def _serve(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        try:
            raw = self._read_body()
            self._authenticate()
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
            status, payload = self.server.api.handle(method, url.path, query, self._decode(raw))
        except ApiError as exc:
            status, payload = exc.status, exc.body()
        except Exception:  # a bug in one request must not take the server down
            log.exception("internal error on %s %s", method, url.path)
            status, payload = 500, {"error_code": 50001, "message": "Internal server error"}
        self._answer(method, status, payload)
        log.info("%s %s %d", method, url.path, status)

    def _authenticate(self) -> None:
        if not self.server.auth.allows(self.headers.get("Authorization")):
            raise ApiError(401, 401, "Unauthorized")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise ApiError(411, 411, "chunked request bodies are not supported; send Content-Length")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            self.close_connection = True
            raise ApiError(400, 400, "invalid Content-Length") from exc
        if length < 0:
            self.close_connection = True
            raise ApiError(400, 400, "invalid Content-Length")
        if length > _MAX_BODY:
            self.close_connection = True
            raise ApiError(413, 413, f"request body larger than {_MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _decode(self, raw: bytes) -> Any:
        if not raw.strip():
            return None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type and content_type not in _ACCEPTED_TYPES:
            raise ApiError(415, 415, f"HTTP 415 Unsupported Media Type: {content_type}")
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(422, 422, f"Unrecognized request body (not JSON): {exc}") from exc

    def _answer(self, method: str, status: int, payload: Any) -> None:
        text = payload if isinstance(payload, RawText) else json.dumps(payload)
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", self.server.auth.challenge())
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Requests too broken to route (bad request line, bad headers) still get a JSON error."""
        self.close_connection = True
        # Garbage parses as HTTP/0.9, which would get a bare body; always answer with a status line.
        self.request_version = "HTTP/1.1"
        self._answer("GET", code, {"error_code": code, "message": message or HTTPStatus(code).phrase})
        log.info("- (unparsable request) %d", code)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Access lines are written by `_serve`, which knows the path without its query."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- the base class's name
        log.debug("%s: %s", self.address_string(), format % args)


def build_server(args: argparse.Namespace, environ: dict[str, str]) -> RegistryServer:
    """Create the store, API and (optionally TLS) server the command line asks for."""
    data_file = None
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        data_file = args.data_dir / _DATA_FILE
    basic = args.basic_auth or environ.get("DEVSTACK_REGISTRY_BASIC_AUTH")
    user, sep, password = (basic or "").partition(":")
    if basic and not sep:
        raise SystemExit("--basic-auth must be user:password")
    auth = AuthPolicy(
        basic_auth=(user, password) if basic else None,
        bearer_token=args.bearer_token or environ.get("DEVSTACK_REGISTRY_BEARER_TOKEN") or None,
    )
    tls = None
    if args.certfile or args.keyfile:
        if not (args.certfile and args.keyfile):
            raise SystemExit("--certfile and --keyfile go together")
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.certfile, args.keyfile)
    api = RegistryApi(
        RegistryStore(data_file), WarmUp(args.warmup_seconds) if args.warmup_seconds > 0 else None
    )
    return RegistryServer((args.host, args.port), api, auth, tls)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.registry",
        description="A Confluent-compatible schema registry for tests and local runs (not for production).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--data-dir", type=Path, help="persist state here (default: in memory)")
    parser.add_argument(
        "--basic-auth", help="user:password required on every request (or env DEVSTACK_REGISTRY_BASIC_AUTH)"
    )
    parser.add_argument(
        "--bearer-token", help="accepted bearer token (or env DEVSTACK_REGISTRY_BEARER_TOKEN)"
    )
    parser.add_argument("--certfile", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--keyfile", help="PEM private key of --certfile")
    parser.add_argument("--log-level", default="WARNING", help="INFO logs one line per request")
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=0.0,
        help="for this long after start, answer as a registry still reloading its store: ids and subjects "
        "that exist are 'not found' (40403, 40401)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the registry until SIGTERM or SIGINT."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        server = build_server(args, dict(os.environ))
    except (OSError, RuntimeError, ssl.SSLError) as exc:
        print(f"devstack.registry: cannot start: {exc}", file=sys.stderr)
        return 1
    host, port = args.host, server.server_port
    scheme = "https" if server.tls is not None else "http"
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(json.dumps({"host": host, "port": port, "url": f"{scheme}://{netloc}"}), flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, which runs in this (main) thread: call it from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0
