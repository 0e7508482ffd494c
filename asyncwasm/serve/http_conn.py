"""One HTTP/1.1 connection, parsed by h11, over any trio Stream.

    >>> counters = HttpCounters()
    >>> await serve_connection(stream, ConnInfo(peer, local), gateway.handle, HttpLimits(), counters)

The connection reads requests one after another (keep-alive; pipelined
requests wait in h11's buffer and are answered in order) and hands each to
``handle(exchange)``, which reads the body and writes the response through
the :class:`Exchange`. Any ``trio.abc.Stream`` works: a TCP stream, or a TLS
stream on top of one (``ConnInfo.https`` says which; the caller knows).

Rule (time): the idle wait for the next request is bounded by
``idle_timeout`` (the first request's by ``read_timeout``); the connection
then closes without a word. Once a request's first byte arrived, its whole
head must arrive within ``read_timeout`` seconds, else 408 and close: a
client sending one byte a second never reaches a handler. While the body
streams, each wait for more of it is bounded by ``read_timeout`` too.

Rule (size): a head over ``max_header_bytes`` is answered 431, a body over
``max_body_bytes`` 413 (up front when Content-Length says so, else as soon
as the chunks pass it); malformed HTTP gets 400. All three close the
connection.

Rule (framing): ``Content-Length`` when the response head has one, else
chunked (close-delimited for HTTP/1.0 clients); no body for ``HEAD``, 204
and 304. ``Connection: close`` goes out, and the connection closes after
the response, when the client asked for it, spoke HTTP/1.0, still waits for
a ``100 Continue``, or the server is shutting down. If a response cannot be
completed (the handler failed after its head was sent, or wrote more or less
than its ``Content-Length``: :class:`h11.LocalProtocolError`), the
connection is closed, so the client sees a truncated body, never a wrong
one.

Strategy (speed): h11 parses requests (and writes the error pages sent
outside any request), but responses are serialized here, directly: h11's
per-event machinery (header normalisation and validation, its state
machine) costs more per request than a whole handler run. The framing rules
above are h11's own (``h11._connection._clean_up_response_headers_for_sending``);
one regular expression checks the header block. After each response the
connection starts a fresh ``h11.Connection`` with the bytes already
received (pipelined requests), since h11 never saw the response.
"""

from __future__ import annotations

import bisect
import http
import os
import re
import signal
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Union

import h11
import trio

from .access_log import AccessLog, AccessRecord
from .cgi import ConnInfo

__all__ = ["HttpLimits", "HttpCounters", "Exchange", "serve_connection", "BodyTooLarge",
           "BodyTimeout", "ClientGone", "reason_phrase", "DURATION_BUCKETS"]

_RECEIVE_SIZE = 65536
# After an error response: how long, and how much, we read what the client
# still sends before closing, so the kernel does not answer with a reset
# that would destroy the response in flight ("lingering close").
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 256 * 1024
# Longest a connection runs requests without letting other tasks run (seconds).
_FAIR_SHARE = 0.001
_perf_counter = time.perf_counter
# Plain sockets are written without waiting when the kernel takes the bytes
# (os.write, which would raise SIGPIPE where the signal is not ignored, as
# Python ignores it unless embedded otherwise).
_SIGPIPE_IGNORED = signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN


@dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits (see the module docstring)."""

    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 10 * 1024 * 1024
    read_timeout: float = 10.0
    idle_timeout: float = 15.0


#: Upper bounds (seconds) of the request duration histogram's buckets; a last one is unbounded.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class HttpCounters:
    """Totals a metrics exporter can read at any time (plain ints).

    ``responses`` counts by status code; ``requests_active`` and
    ``connections_active`` are gauges. ``durations[i]`` counts requests
    that took at most ``DURATION_BUCKETS[i]`` seconds and more than the
    bound before (the last, more than every bound), from the request head
    to the end of the response; ``duration_sum`` adds them up."""

    connections: int = 0
    connections_active: int = 0
    requests: int = 0
    requests_active: int = 0
    responses: dict[int, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    bad_requests: int = 0
    timeouts: int = 0
    durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    duration_sum: float = 0.0

    def count_response(self, status: int) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1

    def count_duration(self, seconds: float) -> None:
        self.durations[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.duration_sum += seconds


class BodyTooLarge(Exception):
    """The request body passed ``max_body_bytes`` (413)."""


class BodyTimeout(Exception):
    """The client stopped sending the body for ``read_timeout`` seconds (408)."""


class ClientGone(Exception):
    """The client closed or broke the connection."""


_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}


def reason_phrase(status: int) -> bytes:
    return _REASONS.get(status, b"")


_date_cache: dict[int, bytes] = {}


def http_date() -> bytes:
    """The ``Date`` header value, made once per second."""
    now = int(time.time())
    value = _date_cache.get(now)
    if value is None:
        _date_cache.clear()
        value = _date_cache[now] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode()
    return value


# A response's header lines as the writer makes them: names are tokens,
# values hold no control byte but tab; with one LF per field, no value can
# smuggle in a line of its own (response splitting).
_HEADER_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [\t\x20-\x7e\x80-\xff]*\r\n)*")
_REASON = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# Body framings of a response.
_NO_BODY, _LENGTH, _CHUNKED, _UNTIL_CLOSE = range(4)


class Exchange:
    """One request, as a handler sees it: read the body with
    :meth:`receive_body`, answer with :meth:`send_head` then
    :meth:`send_body` and :meth:`end`, or all at once with :meth:`respond`.

    Attributes: ``request`` (the h11.Request), ``headers`` (its fields as a
    list of lower-case name, value pairs), ``info`` (the connection),
    ``id`` (a request id for logs), ``head_sent``, ``status``,
    ``keep_alive`` (whether the connection may carry another request after
    this one; settled when the head goes out), ``conn_cache`` (a dict the
    handler may keep data in for the connection's later requests)."""

    def __init__(self, conn: "_Connection", request: h11.Request, number: int) -> None:
        self._conn = conn
        self._h11 = conn.h11
        self.request = request
        self.info = conn.info
        self.conn_cache = conn.cache
        self.id = number
        self.head_sent = False
        self.status = 0
        self.body_bytes = 0     # response body bytes sent
        self.received = 0       # request body bytes received
        self.finished = False
        self._pending = b""
        self._body_done = False
        self._framing = _NO_BODY
        self._left = 0          # body bytes the response's Content-Length still owes
        # h11's Headers is a Sequence read item by item: list it once
        self.headers: list[tuple[bytes, bytes]] = list(request.headers)
        self.chunked = False
        self.declared_length = 0  # Content-Length, 0 when none
        self.keep_alive = request.http_version >= b"1.1"  # HTTP/1.0: one request (as h11 does it)
        self.head_size = len(request.method) + len(request.target) + 12  # about the head's bytes as it came
        for name, value in self.headers:
            self.head_size += len(name) + len(value) + 4
            if name == b"content-length":
                self.declared_length = int(value)
            elif name == b"transfer-encoding":
                self.chunked = True
            elif name == b"connection" and b"close" in value.lower() and any(
                    token.strip() == b"close" for token in value.lower().split(b",")):
                self.keep_alive = False
        self.close_after = False
        if not self.chunked and not self.declared_length:  # no body: its end is here already
            self._h11.next_event()  # EndOfMessage
            self._body_done = True

    # -- the request body --------------------------------------------------

    def receive_body(self, max_bytes: int) -> Union[bytes, Awaitable[bytes]]:
        """Up to ``max_bytes`` of the body (``b""`` at its end): bytes when
        they are there, else an awaitable of them. Raises
        :class:`BodyTooLarge`; the awaitable also :class:`BodyTimeout` and
        :class:`ClientGone`."""
        chunk = self._body_now(max_bytes)
        if chunk is not None:
            return chunk
        return self._body_later(max_bytes)

    def _body_now(self, max_bytes: int) -> Optional[bytes]:
        if not self._pending:
            if self._body_done:
                return b""
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                return None
            if type(event) is h11.Data:
                self.received += len(event.data)
                if self.received > self._conn.limits.max_body_bytes:
                    self.close_after = True
                    raise BodyTooLarge(f"the request body is over {self._conn.limits.max_body_bytes} bytes")
                self._pending = bytes(event.data)
            else:  # EndOfMessage
                self._body_done = True
                return b""
        chunk, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return chunk

    def send_continue(self) -> Optional[Awaitable[None]]:
        """Tell a client that sent ``Expect: 100-continue`` to send its body:
        an awaitable that does, or None when there is nothing to tell (reading
        the body does it too)."""
        if not self._body_done and not self.head_sent and self._h11.they_are_waiting_for_100_continue:
            return self._conn.send(h11.InformationalResponse(status_code=100, reason=b"Continue", headers=[]))
        return None

    async def _body_later(self, max_bytes: int) -> bytes:
        go_on = self.send_continue()
        if go_on is not None:
            await go_on
        while True:
            with trio.move_on_after(self._conn.limits.read_timeout):
                await self._conn.receive()
                chunk = self._body_now(max_bytes)
                if chunk is not None:
                    return chunk
                continue
            self.close_after = True
            raise BodyTimeout(f"no request body for {self._conn.limits.read_timeout:g} s")

    # -- the response ------------------------------------------------------

    def _response(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The head's bytes; settles the framing and ``keep_alive``.
        :class:`h11.LocalProtocolError` for a head that is no valid HTTP."""
        if self.head_sent:
            raise h11.LocalProtocolError("the response head was sent already")
        length = None
        for name, value in headers:
            if len(name) == 14 and name.lower() == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise h11.LocalProtocolError(f"bad Content-Length {value[:40]!r}")
                length = int(value)
        lines = b"".join([b"%s: %s\r\n" % field for field in headers])
        if (not 100 <= status <= 999 or not _HEADER_LINES.fullmatch(lines) or lines.count(b"\n") != len(headers)
                or not _REASON.fullmatch(reason)):
            raise h11.LocalProtocolError("the response head is not valid HTTP")
        if self._h11.they_are_waiting_for_100_continue:
            self.close_after = True  # the client may send the body still, or never: do not wait to find out
        keep_alive = self.keep_alive and not self.close_after and not self._conn.closing()
        if self.request.method == b"HEAD" or status in (204, 304):
            framing = _NO_BODY
            if length is None and status not in (204, 304) and self.request.http_version >= b"1.1":
                lines += b"Transfer-Encoding: chunked\r\n"  # what a GET would have had
        elif length is not None:
            framing = _LENGTH
            self._left = length
        elif self.request.http_version >= b"1.1":
            framing = _CHUNKED
            lines += b"Transfer-Encoding: chunked\r\n"
        else:  # an HTTP/1.0 client knows no chunks: the end of the body is the end of the connection
            framing = _UNTIL_CLOSE
            keep_alive = False
        if not keep_alive:
            lines += b"Connection: close\r\n"
        self.keep_alive = keep_alive
        self._framing = framing
        self.status = status
        self.head_sent = True
        return b"HTTP/1.1 %d %s\r\nDate: %s\r\n%s\r\n" % (
            status, reason or reason_phrase(status), http_date(), lines)

    def _data(self, data: bytes) -> bytes:
        framing = self._framing
        if framing == _NO_BODY or not data:
            return b""
        self.body_bytes += len(data)
        if framing == _CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data)
        if framing == _LENGTH:
            self._left -= len(data)
            if self._left < 0:
                raise h11.LocalProtocolError("Too much data for declared Content-Length")
        return data

    def _end(self) -> bytes:
        self.finished = True
        if self._framing == _CHUNKED:
            return b"0\r\n\r\n"
        if self._framing == _LENGTH and self._left:
            raise h11.LocalProtocolError("Too little data for declared Content-Length")
        return b""

    async def send_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                        body: bytes = b"") -> None:
        """Send the response head (and the first body bytes). ``headers``
        leave out ``Date``, ``Transfer-Encoding`` and ``Connection``: the
        connection sets them."""
        await self._conn.send_bytes(self._response(status, reason, headers) + self._data(body))

    def send_head_now(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]],
                      body: bytes = b"") -> Optional[Awaitable[None]]:
        """:meth:`send_head` without waiting when the transport takes it all
        at once: None then, else an awaitable that sends the rest (await it
        before sending more)."""
        return self._conn.send_bytes_now(self._response(status, reason, headers) + self._data(body))

    async def send_body(self, data: bytes) -> None:
        """Send more body bytes (waits while the client is slow to read)."""
        out = self._data(data)
        if out:
            await self._conn.send_bytes(out)

    def send_body_now(self, data: bytes) -> Optional[Awaitable[None]]:
        """:meth:`send_body` as :meth:`send_head_now` does it."""
        out = self._data(data)
        return self._conn.send_bytes_now(out) if out else None

    async def end(self) -> None:
        """Complete the response."""
        rest = self.end_now()
        if rest is not None:
            await rest

    def end_now(self) -> Optional[Awaitable[None]]:
        """:meth:`end` as :meth:`send_head_now` does it."""
        out = self._end()
        return self._conn.send_bytes_now(out) if out else None

    async def respond(self, status: int, body: bytes = b"", headers: Optional[list[tuple[bytes, bytes]]] = None,
                      *, close: bool = False) -> None:
        """A whole response at once (error pages): ``body`` with its
        Content-Length, ``Content-Type: text/plain``."""
        if close:
            self.close_after = True
        extra = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", b"%d" % len(body)),
                 *(headers or [])]
        out = self._response(status, b"", extra) + self._data(body)
        await self._conn.send_bytes(out + self._end())

    async def respond_error(self, status: int, message: str = "", *,
                            headers: Optional[list[tuple[bytes, bytes]]] = None, close: bool = False) -> None:
        """``status`` with a one-line text body (its reason, and ``message``)."""
        text = f"{status} {reason_phrase(status).decode()}" + (f": {message}" if message else "") + "\n"
        await self.respond(status, text.encode(), headers, close=close)


Handler = Callable[[Exchange], Awaitable[None]]


class _Connection:
    """The connection task's state; see :func:`serve_connection`."""

    def __init__(self, stream: trio.abc.Stream, info: ConnInfo, limits: HttpLimits,
                 counters: HttpCounters, access_log: Optional[AccessLog],
                 next_id: Callable[[], int], closing: Callable[[], bool],
                 idle: Optional[set[trio.CancelScope]], log: Callable[[str], None]) -> None:
        self.stream = stream
        self.info = info
        self.limits = limits
        self.counters = counters
        self.access_log = access_log
        self.next_id = next_id
        self.closing = closing  # () -> whether the server is shutting down
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.idle = idle if idle is not None else set()
        self.log = log
        self.cache: dict[Any, Any] = {}  # Exchange.conn_cache
        self._send_now = _sender_now(stream)
        self.yielded_at = _perf_counter()  # when the task last let others run (see serve_connection)

    async def receive(self) -> None:
        try:
            data = await self.stream.receive_some(_RECEIVE_SIZE)  # a checkpoint
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone(str(exc) or "the connection broke") from None
        self.yielded_at = _perf_counter()
        self.counters.bytes_received += len(data)
        self.h11.receive_data(bytes(data))

    async def send(self, event: Any) -> None:
        await self.send_bytes(self.h11.send(event))

    async def send_bytes(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone(str(exc) or "the connection broke") from None
        self.counters.bytes_sent += len(data)

    def send_bytes_now(self, data: bytes) -> Optional[Awaitable[None]]:
        """Send what the kernel takes now; None when that was all of ``data``,
        else an awaitable sending the rest (``send_all``)."""
        if self._send_now is not None and data:
            try:
                sent = self._send_now(data)
            except OSError as exc:
                raise ClientGone(exc.strerror or str(exc)) from None
            self.counters.bytes_sent += sent
            if sent == len(data):
                return None
            data = data[sent:]
        return self.send_bytes(data)

    def next_cycle(self) -> None:
        """Ready for the next request: h11 never saw the response (see the
        module docstring), so a fresh parser takes over what was received."""
        data, closed = self.h11.trailing_data
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        if data:
            self.h11.receive_data(data)
        if closed:
            self.h11.receive_data(b"")

    async def next_request(self, first: bool) -> Optional[h11.Request]:
        """The next request head, or None when the connection should close."""
        h11conn = self.h11
        event = h11conn.next_event()  # a pipelined request may be here already: no timer needed
        if event is h11.NEED_DATA and not h11conn.trailing_data[0]:  # nothing buffered: the idle wait
            with trio.move_on_after(self.limits.read_timeout if first else self.limits.idle_timeout) as scope:
                if self.closing():
                    return None
                self.idle.add(scope)
                try:
                    await self.receive()
                finally:
                    self.idle.discard(scope)
            if scope.cancelled_caught:
                return None
            event = h11conn.next_event()  # often the whole head came in one piece
        if event is h11.NEED_DATA:
            with trio.move_on_after(self.limits.read_timeout) as scope:
                while event is h11.NEED_DATA:
                    await self.receive()
                    event = h11conn.next_event()
            if scope.cancelled_caught:
                self.counters.timeouts += 1
                await self.error_response(408, "the request head did not arrive in time")
                return None
        if type(event) is not h11.Request:
            return None  # ConnectionClosed
        return event

    async def error_response(self, status: int, message: str) -> None:
        """An error page outside any request (400, 408, 431): then close."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        self.counters.count_response(status)
        body = f"{status} {reason_phrase(status).decode()}: {message}\n".encode()
        head = h11.Response(status_code=status, reason=reason_phrase(status), headers=[
            (b"Date", http_date()), (b"Content-Type", b"text/plain; charset=utf-8"),
            (b"Content-Length", b"%d" % len(body)), (b"Connection", b"close")])
        try:
            out = self.h11.send(head) + self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
            await self.send_bytes(out)
        except (h11.LocalProtocolError, ClientGone):
            return
        if self.access_log is not None:
            self.access_log.write(AccessRecord(self.info.remote[0], b"-", status, len(body)))

    async def linger_close(self) -> None:
        """Close after letting the client's unread bytes drain (see _LINGER_*)."""
        try:
            send_eof = getattr(self.stream, "send_eof", None)
            if send_eof is not None:
                with trio.move_on_after(_LINGER_SECONDS):
                    await send_eof()
                    drained = 0
                    while drained < _LINGER_BYTES:
                        data = await self.stream.receive_some(_RECEIVE_SIZE)
                        if not data:
                            break
                        drained += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(self.stream)

    async def drain_body(self, exchange: Exchange) -> bool:
        """Read the rest of a body the handler left unread, within the
        limits; False when the connection must close instead."""
        if self.h11.their_state is not h11.SEND_BODY or exchange.close_after:
            return self.h11.their_state is h11.DONE and not exchange.close_after
        if self.h11.they_are_waiting_for_100_continue:
            return False  # the client waits for our go: it will not send the body now
        try:
            while True:
                chunk = exchange.receive_body(_RECEIVE_SIZE)
                if not isinstance(chunk, bytes):
                    chunk = await chunk
                if not chunk:
                    return True
        except (BodyTooLarge, BodyTimeout, ClientGone, h11.RemoteProtocolError):
            return False


async def serve_connection(stream: trio.abc.Stream, info: ConnInfo, handle: Handler,
                           limits: HttpLimits = HttpLimits(), counters: Optional[HttpCounters] = None,
                           *, access_log: Optional[AccessLog] = None,
                           next_id: Optional[Callable[[], int]] = None,
                           closing: Callable[[], bool] = lambda: False,
                           idle: Optional[set[trio.CancelScope]] = None,
                           log: Callable[[str], None] = lambda line: None) -> None:
    """Serve HTTP/1.1 on ``stream`` until the client closes, a timeout, an
    error that ends the connection, or ``closing()`` turns true between
    requests (the cancel scope of a wait for the next request is in
    ``idle`` meanwhile: cancelling it closes the connection); always closes
    ``stream``. ``handle(exchange)`` answers each
    request; an exception from it (a bug) is logged with its traceback to
    ``log`` and becomes a 500, or a closed connection if the response had
    begun. Blocks until done."""
    counters = counters if counters is not None else HttpCounters()
    if next_id is None:
        numbers = iter(range(1, 1 << 62))
        next_id = numbers.__next__
    conn = _Connection(stream, info, limits, counters, access_log, next_id, closing, idle, log)
    counters.connections += 1
    counters.connections_active += 1
    clean = False
    try:
        first = True
        while True:
            try:
                request = await conn.next_request(first)
            except h11.RemoteProtocolError as exc:
                counters.bad_requests += 1
                await conn.error_response(exc.error_status_hint, str(exc))
                break
            first = False
            if request is None:
                clean = conn.h11.their_state in (h11.IDLE, h11.DONE, h11.CLOSED, h11.MUST_CLOSE)
                break
            exchange = Exchange(conn, request, next_id())
            if exchange.head_size > limits.max_header_bytes:
                # h11 bounds only a head that arrives in pieces
                counters.bad_requests += 1
                await conn.error_response(431, "the request head is too large")
                break
            if not await _exchange(conn, exchange, handle) or not exchange.keep_alive:
                break
            conn.next_cycle()
            if _perf_counter() - conn.yielded_at > _FAIR_SHARE:
                # Pipelined requests answered at once never wait for I/O: let the others run.
                await trio.lowlevel.checkpoint()
                conn.yielded_at = _perf_counter()
    except ClientGone:
        pass
    finally:
        counters.connections_active -= 1
        if clean:
            await trio.aclose_forcefully(stream)
        else:
            await conn.linger_close()


async def _exchange(conn: _Connection, exchange: Exchange, handle: Handler) -> bool:
    """Run one request; whether the connection may carry another."""
    counters = conn.counters
    counters.requests += 1
    counters.requests_active += 1
    started = _perf_counter()
    try:
        too_big = exchange.declared_length > conn.limits.max_body_bytes
        if too_big:
            await exchange.respond_error(413, f"the body is over {conn.limits.max_body_bytes} bytes", close=True)
        else:
            try:
                await handle(exchange)
            except h11.RemoteProtocolError as exc:  # a malformed body (bad chunk)
                counters.bad_requests += 1
                if exchange.head_sent:
                    return False
                await exchange.respond_error(exc.error_status_hint, str(exc), close=True)
            except (ClientGone, h11.LocalProtocolError):
                raise
            except Exception as exc:  # a bug: this request fails, the server goes on
                conn.log(f"[{exchange.id}] internal error: {type(exc).__name__}: {exc}")
                for line in traceback.format_exc().rstrip().splitlines():
                    conn.log(f"[{exchange.id}]   {line}")
                if exchange.head_sent:
                    return False
                await exchange.respond_error(500, close=True)
            if not exchange.finished:
                return False
        return await conn.drain_body(exchange)
    except (ClientGone, h11.LocalProtocolError):
        return False
    finally:
        counters.requests_active -= 1
        if exchange.status:
            took = _perf_counter() - started
            counters.count_response(exchange.status)
            counters.count_duration(took)
            if conn.access_log is not None:
                conn.access_log.write(AccessRecord.of(exchange, time.time() - took))


def _sender_now(stream: trio.abc.Stream) -> Optional[Callable[[bytes], int]]:
    """``send(data) -> bytes the kernel took``, never waiting, for a plain
    TCP stream; None for other streams (they await ``send_all``)."""
    if not _SIGPIPE_IGNORED or type(stream) is not trio.SocketStream:
        return None
    fd = stream.socket.fileno()

    def send(data: bytes) -> int:
        try:
            return os.write(fd, data)
        except BlockingIOError:
            return 0

    return send
