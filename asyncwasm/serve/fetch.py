"""Fetching a module over HTTP(S): one GET, h11 over trio, TLS with pyOpenSSL.

    >>> client = HttpClient(ca_file=None, timeout=30.0, max_size=256 << 20)
    >>> got = await client.get("https://example.org/app.wasm", etag=previous.etag)
    >>> got.status                  # 200 (got.body) or 304 (not modified since ``etag``)

Rules:

- ``http://`` and ``https://`` only. TLS verifies the server's chain
  against the system's trust store, or only ``ca_file`` when given, and the
  host name against the certificate's subjectAltName
  (:func:`~asyncwasm.serve.tls.check_hostname`), before the request is sent.
- Time: connecting, the TLS handshake and every read must each make
  progress within ``timeout`` seconds, and the whole transfer (redirects
  included) must end within ``deadline`` seconds, so neither a silent
  server nor one that trickles a byte at a time holds a fetch for ever.
- Size: a ``Content-Length`` above ``max_size`` is refused before the body
  is read; a body without one is read only up to ``max_size`` bytes, then
  the connection is closed. A body shorter than its ``Content-Length``
  (the connection closed early) is refused as truncated.
- Redirects (301, 302, 303, 307, 308) are followed at most
  ``max_redirects`` times, never from https to http.
- Conditional requests: ``etag`` is sent as ``If-None-Match`` and
  ``last_modified`` as ``If-Modified-Since``; a 304 is returned as such.
  Any status other than 200, 304 and the redirects is an error.
- ``Accept-Encoding: identity``: the body must be the exact bytes (they are
  hashed and their signature checked); a server that encodes it anyway is
  refused.

Every failure is a :class:`FetchError` whose message is one line naming the
URL's host and what went wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urljoin, urlsplit

import h11
import trio
from OpenSSL import SSL

from .tls import TlsConfigError, TlsError, TlsSession, check_hostname, client_context

__all__ = ["HttpClient", "Fetched", "FetchError", "DEFAULT_TIMEOUT", "DEFAULT_DEADLINE", "MAX_REDIRECTS"]

DEFAULT_TIMEOUT = 30.0
DEFAULT_DEADLINE = 600.0
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 65536
_MAX_HEAD = 64 * 1024


class FetchError(Exception):
    """The module could not be fetched; the message is one line. ``status``:
    the HTTP status when the server answered with an unexpected one."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Fetched:
    """A GET's result: ``status`` 200 with the ``body``, or 304 (not modified).
    ``url`` is where it came from after redirects; ``etag`` and
    ``last_modified`` are the validators for the next conditional GET."""

    url: str
    status: int
    body: bytes = b""
    etag: Optional[str] = None
    last_modified: Optional[str] = None


class _TlsStream:
    """A client TLS session over a trio stream (just what one GET needs)."""

    def __init__(self, stream: trio.SocketStream, session: TlsSession) -> None:
        self.stream = stream
        self.session = session

    async def _flush(self) -> None:
        out = self.session.take_outgoing()
        if out:
            await self.stream.send_all(out)

    async def _more(self) -> None:
        chunk = await self.stream.receive_some(_CHUNK)
        if chunk:
            self.session.receive(chunk)
        else:
            self.session.receive_eof()

    async def handshake(self, host: str) -> None:
        while True:
            try:
                done = self.session.do_handshake()
            except TlsError as exc:
                raise FetchError(f"TLS handshake with {host} failed: {exc}") from None
            await self._flush()
            if done:
                break
            await self._more()
        cert = self.session.peer_certificate()
        if cert is None:
            raise FetchError(f"TLS: {host} sent no certificate")
        try:
            check_hostname(cert, host)
        except TlsError as exc:
            raise FetchError(f"TLS: {exc}") from None

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(self.session.encrypt(data))

    async def receive_some(self, limit: int) -> bytes:
        while True:
            data = self.session.recv(limit)
            if data is not None:
                return data
            await self._flush()  # what the peer's records call for (a key update's answer)
            await self._more()

    async def aclose(self) -> None:
        await self.stream.aclose()


def _header(response: h11.Response, name: bytes) -> Optional[str]:
    for key, value in response.headers:
        if key == name:
            return value.decode("latin-1")
    return None


class HttpClient:
    """GETs with the limits of the module docstring. One client is reused
    for every fetch of a source (its TLS context is made once)."""

    def __init__(self, *, ca_file: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT,
                 deadline: float = DEFAULT_DEADLINE, max_size: int = 256 << 20,
                 max_redirects: int = MAX_REDIRECTS, user_agent: str = "asyncwasm") -> None:
        if not (timeout > 0 and deadline > 0) or math.isnan(timeout) or math.isnan(deadline):
            raise ValueError("fetch timeouts must be > 0 seconds")
        self.ca_file = ca_file
        self.timeout = timeout
        self.deadline = deadline
        self.max_size = max_size
        self.max_redirects = max_redirects
        self.user_agent = user_agent
        self._context: Optional[SSL.Context] = None
        if ca_file is not None:
            self._context = client_context(ca_file)  # a bad file is an error now, not at the first fetch

    def _tls_context(self) -> SSL.Context:
        if self._context is None:
            try:
                self._context = client_context(self.ca_file)
            except TlsConfigError as exc:
                raise FetchError(str(exc)) from None
        return self._context

    async def get(self, url: str, *, etag: Optional[str] = None, last_modified: Optional[str] = None,
                  max_size: Optional[int] = None) -> Fetched:
        """GET ``url`` (following redirects); :class:`FetchError` on failure."""
        limit = self.max_size if max_size is None else max_size
        with trio.move_on_after(self.deadline) as overall:
            for _ in range(self.max_redirects + 1):
                result = await self._once(url, etag, last_modified, limit)
                if isinstance(result, Fetched):
                    return result
                url = result
            raise FetchError(f"more than {self.max_redirects} redirects (the last to {url})")
        assert overall.cancelled_caught
        raise FetchError(f"{_host(url)}: the transfer did not finish within {self.deadline:g} s")

    async def _once(self, url: str, etag: Optional[str], last_modified: Optional[str], limit: int
                    ) -> "Fetched | str":
        """One request: the result, or the URL a redirect points to."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"{url}: not an http:// or https:// URL")
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise FetchError(f"{url}: bad port") from None
        where = f"{host}:{port}"
        stream = await self._connect(parts.scheme, host, port, where)
        try:
            return await self._exchange(stream, url, where, etag, last_modified, limit)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise FetchError(f"{where}: connection lost: {getattr(exc, 'strerror', None) or exc}") from None
        except TlsError as exc:
            raise FetchError(f"{where}: TLS: {exc}") from None
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _connect(self, scheme: str, host: str, port: int, where: str) -> "trio.SocketStream | _TlsStream":
        context = self._tls_context() if scheme == "https" else None
        with trio.move_on_after(self.timeout) as scope:
            try:
                sock = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                raise FetchError(f"cannot connect to {where}: {exc.strerror or exc}") from None
        if scope.cancelled_caught:
            raise FetchError(f"cannot connect to {where}: no answer within {self.timeout:g} s")
        if context is None:
            return sock
        stream = _TlsStream(sock, TlsSession(context, server_hostname=host))
        try:
            with trio.move_on_after(self.timeout) as scope:
                await stream.handshake(host)
            if scope.cancelled_caught:
                raise FetchError(f"TLS handshake with {where}: no answer within {self.timeout:g} s")
        except (trio.BrokenResourceError, OSError) as exc:
            await sock.aclose()
            raise FetchError(f"TLS handshake with {where}: connection lost: {exc}") from None
        except BaseException:
            await sock.aclose()
            raise
        return stream

    async def _exchange(self, stream: "trio.SocketStream | _TlsStream", url: str, where: str,
                        etag: Optional[str], last_modified: Optional[str], limit: int) -> "Fetched | str":
        split = urlsplit(url)
        target = (split.path or "/") + (f"?{split.query}" if split.query else "")
        headers = [("Host", split.netloc.rpartition("@")[2]), ("User-Agent", self.user_agent),
                   ("Accept", "application/wasm, */*"), ("Accept-Encoding", "identity"), ("Connection", "close")]
        if etag:
            headers.append(("If-None-Match", etag))
        if last_modified:
            headers.append(("If-Modified-Since", last_modified))
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        await stream.send_all(conn.send(h11.Request(method="GET", target=target, headers=headers))
                              + conn.send(h11.EndOfMessage()))
        response = await self._next(stream, conn, where)
        if not isinstance(response, h11.Response):
            raise FetchError(f"{where}: bad HTTP response")
        status = response.status_code
        if status in _REDIRECTS:
            location = _header(response, b"location")
            if not location:
                raise FetchError(f"{where}: HTTP {status} without a Location")
            following = urljoin(url, location)
            if split.scheme == "https" and urlsplit(following).scheme != "https":
                raise FetchError(f"{where}: refused a redirect from https to {following}")
            return following
        if status == 304:
            return Fetched(url, 304, etag=_header(response, b"etag") or etag,
                           last_modified=_header(response, b"last-modified") or last_modified)
        if status != 200:
            reason = response.reason.decode("latin-1", "replace")
            raise FetchError(f"{where}: HTTP {status}{' ' + reason if reason else ''} for {split.path or '/'}",
                             status)
        encoding = _header(response, b"content-encoding")
        if encoding and encoding.lower() != "identity":
            raise FetchError(f"{where}: the body is {encoding}-encoded; asked for identity (exact bytes)")
        declared = _header(response, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise FetchError(f"{where}: {int(declared)} bytes, more than the {limit}-byte limit "
                             f"(--max-module-size)")
        body = bytearray()
        while True:
            event = await self._next(stream, conn, where, received=len(body), declared=declared)
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise FetchError(f"{where}: more than the {limit}-byte limit (--max-module-size); "
                                     f"stopped reading")
            elif isinstance(event, h11.EndOfMessage):
                break
        return Fetched(url, 200, bytes(body), _header(response, b"etag"), _header(response, b"last-modified"))

    async def _next(self, stream: "trio.SocketStream | _TlsStream", conn: h11.Connection, where: str, *,
                    received: int = 0, declared: Optional[str] = None) -> object:
        """The next h11 event, reading with the idle timeout."""
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if conn.their_state is h11.SEND_BODY or received:
                    of = f" of {declared}" if declared else ""
                    raise FetchError(f"{where}: truncated: the connection closed after {received}{of} "
                                     f"body bytes") from None
                raise FetchError(f"{where}: bad HTTP response: {exc}") from None
            if event is h11.NEED_DATA:
                with trio.move_on_after(self.timeout) as scope:
                    data = await stream.receive_some(_CHUNK)
                if scope.cancelled_caught:
                    raise FetchError(f"{where}: no data for {self.timeout:g} s (after {received} body bytes)")
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise FetchError(f"{where}: the connection closed without a response")
            return event


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url
