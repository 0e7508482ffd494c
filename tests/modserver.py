"""A module publisher made in the test: an HTTP or HTTPS server (stdlib,
in a thread) serving files from memory, with ETag/Last-Modified and 304s,
and the misbehaviours a fetch must survive.

    >>> with publisher(tls=pki) as pub:            # or tls=None for http
    ...     pub.put("/app.wasm", data)              # ETag = sha256 of the bytes
    ...     pub.behave("/slow.wasm", "hang")        # never answers (until the test ends)
    ...     url = pub.url("/app.wasm")
    ...     pub.requests                            # [(path, headers), ...] as received

Behaviours: ``"hang"`` (reads the request, never answers), ``"truncate"``
(Content-Length, then half the body and a close), ``"huge"`` (declares 2 GiB
and streams zeros while the client reads), ``"endless"`` (no length, zeros
until the client leaves), ``"gzip"`` (Content-Encoding: gzip), an int
(that status), ``("redirect", "/other")`` (302 to it), ``("slow", seconds)``
(the body a byte at a time with that pause).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.server
import socket
import ssl
import threading
import time
from typing import Any, Iterator, Optional

from .tlscerts import Pki


class Publisher:
    def __init__(self, base: str) -> None:
        self.base = base
        self.files: dict[str, tuple[bytes, str, str]] = {}
        self.behaviours: dict[str, Any] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sent: dict[str, int] = {}  # body bytes written per path (the misbehaviours)
        self.lock = threading.Lock()
        self.closing = threading.Event()

    def url(self, path: str) -> str:
        return self.base + path

    def put(self, path: str, data: bytes) -> None:
        modified = email.utils.formatdate(time.time(), usegmt=True)
        with self.lock:
            self.files[path] = (data, '"' + hashlib.sha256(data).hexdigest()[:16] + '"', modified)
            self.behaviours.pop(path, None)

    def remove(self, path: str) -> None:
        with self.lock:
            self.files.pop(path, None)

    def behave(self, path: str, behaviour: Any) -> None:
        with self.lock:
            self.behaviours[path] = behaviour

    def count(self, path: str) -> int:
        with self.lock:
            return sum(1 for p, _ in self.requests if p == path)


def _handler(pub: Publisher) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path
            with pub.lock:
                pub.requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
                behaviour = pub.behaviours.get(path)
                entry = pub.files.get(path)
            try:
                self._answer(path, behaviour, entry)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                pass
            self.close_connection = True

        def _stream(self, path: str, total: Optional[int]) -> None:
            chunk = bytes(65536)
            sent = 0
            while total is None or sent < total:
                if pub.closing.is_set():
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
                with pub.lock:
                    pub.sent[path] = sent

        def _answer(self, path: str, behaviour: Any, entry: Optional[tuple[bytes, str, str]]) -> None:
            if behaviour == "hang":
                pub.closing.wait(60)
                return
            if isinstance(behaviour, int):
                self.send_response(behaviour)
                body = f"status {behaviour}\n".encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if isinstance(behaviour, tuple) and behaviour[0] == "redirect":
                self.send_response(302)
                self.send_header("Location", behaviour[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if behaviour == "huge":
                self.send_response(200)
                self.send_header("Content-Length", str(2 << 30))
                self.end_headers()
                self._stream(path, 2 << 30)
                return
            if behaviour == "endless":
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self._stream(path, None)
                return
            if entry is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data, etag, modified = entry
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            if behaviour == "gzip":
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if behaviour == "truncate":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if isinstance(behaviour, tuple) and behaviour[0] == "slow":
                for i in range(len(data)):
                    if pub.closing.wait(behaviour[1]):
                        return
                    self.wfile.write(data[i:i + 1])
                    self.wfile.flush()
                return
            self.wfile.write(data)

    return Handler


@contextlib.contextmanager
def publisher(tls: Optional[Pki] = None, host: str = "127.0.0.1") -> Iterator[Publisher]:
    """A publisher on ``host`` (a loopback address, or ``localhost`` for
    127.0.0.1 named by a DNS name), on a free port, stopped at the end."""
    bind = "127.0.0.1" if host == "localhost" else host
    server = http.server.ThreadingHTTPServer((bind, 0), http.server.BaseHTTPRequestHandler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.cert), str(tls.key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls is not None else "http"
    pub = Publisher(f"{scheme}://{host}:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(pub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield pub
    finally:
        pub.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
