"""HandlerServer: handler mode's listeners, connections and shutdown.

    >>> server = HandlerServer(Router([Route("/...", "app.wasm")]), log=print)
    >>> async with trio.open_nursery() as nursery:
    ...     listeners = await nursery.start(server.serve_tcp, 8080, "127.0.0.1")
    ...     ...                                    # listeners[0].socket.getsockname()
    ...     server.shutdown()                      # graceful: see below

It runs inside any trio program: :meth:`serve_tcp` binds and serves,
:meth:`serve` takes ``trio.abc.Listener`` objects, and :meth:`serve_stream`
answers one already-open ``trio.abc.Stream`` (a TLS stream too).
:meth:`statistics` reads the counters at any time.

TLS (``tls=TlsConfig(...)``): every accepted connection first completes
its handshake within the configuration's timeout, as socket mode's do
(:class:`~.tls_connection.Handshakes`: counted by outcome, failures logged
at most ten lines per ten seconds, a plain-HTTP client answered with a
plain 400); only then does its first request reach a handler, which sees
``HTTPS=on``. :meth:`TlsConfig.reload` (SIGHUP) applies to new connections.

Graceful shutdown (:meth:`shutdown`): the listeners close, connections
waiting for their next request close at once, requests in flight get
``grace`` seconds to finish (their responses say ``Connection: close``),
then everything left is cancelled.
"""

from __future__ import annotations

import errno
import itertools
import math
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import trio

from .access_log import AccessLog
from .cgi import ConnInfo
from .handler import Gateway
from .http_conn import HttpCounters, HttpLimits, serve_connection
from .router import Router
from .tls import TlsConfig
from .tls_connection import Handshakes

# accept(2) on a listener shut down (EINVAL: the workers' supervisor did it) or closed (EBADF).
_LISTENER_GONE = {errno.EINVAL, errno.EBADF}

__all__ = ["HandlerServer", "HandlerStatistics", "conn_info"]


@dataclass(frozen=True)
class HandlerStatistics:
    """A snapshot of the counters (see :class:`~.http_conn.HttpCounters`),
    plus instances running and requests waiting for one, over all routes."""

    connections: int
    connections_active: int
    requests: int
    requests_active: int
    responses: dict[int, int]
    bytes_sent: int
    bad_requests: int
    timeouts: int
    instances_running: int
    requests_waiting: int
    accepted: int = 0  # TCP connections accepted (TLS handshakes that failed included)
    tls_handshakes: int = 0
    tls_handshake_failures: dict[str, int] = field(default_factory=dict)  # by reason


def conn_info(stream: trio.abc.Stream, https: Optional[bool] = None) -> ConnInfo:
    """The peer and local addresses under ``stream`` (through TLS layers:
    their ``transport_stream``); ``https`` defaults to whether there was such
    a layer (a stream may also say so with an ``https`` attribute)."""
    layers = 0
    inner = stream
    while not isinstance(inner, trio.SocketStream) and hasattr(inner, "transport_stream"):
        inner = inner.transport_stream
        layers += 1
    if https is None:
        https = bool(getattr(stream, "https", layers > 0))
    if isinstance(inner, trio.SocketStream):
        try:
            remote = inner.socket.getpeername()
            local = inner.socket.getsockname()
            if inner.socket.family in (socket.AF_INET, socket.AF_INET6):
                return ConnInfo((remote[0], remote[1]), (local[0], local[1]), https)
        except OSError:
            pass
    return ConnInfo(("0.0.0.0", 0), ("0.0.0.0", 0), https)


class HandlerServer:
    """Serves ``router``'s handlers over HTTP/1.1 (see the module docstring).

    ``limits``: header/body sizes and timeouts; ``access_log``: an
    :class:`~.access_log.AccessLog` or None; ``log``: one line per event
    (handler stderr, failures); ``grace``: seconds in-flight requests get at
    shutdown; ``yield_interval``: as :class:`~asyncwasm.Limits`'; ``tls``:
    terminate TLS on every connection :meth:`serve` accepts."""

    def __init__(self, router: Router, *, limits: HttpLimits = HttpLimits(),
                 access_log: Optional[AccessLog] = None, log: Callable[[str], None] = lambda line: None,
                 grace: float = 5.0, yield_interval: Optional[float] = None,
                 tls: Optional[TlsConfig] = None) -> None:
        if math.isnan(grace) or grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, not {grace!r}")
        self.router = router
        self.limits = limits
        self.access_log = access_log
        self.log = log
        self.grace = grace
        self.gateway = Gateway(router, log=log, yield_interval=yield_interval,
                               max_head_bytes=limits.max_header_bytes)
        self.counters = HttpCounters()
        self.tls = tls
        self.handshakes = Handshakes(tls, log) if tls is not None else None
        self.accepted = 0  # TCP connections accepted
        self._ids = itertools.count(1).__next__
        self._closing = False
        self._shutdown = trio.Event()
        self._connections: set[trio.CancelScope] = set()
        self._idle: set[trio.CancelScope] = set()
        self.stopped = trio.Event()

    async def check(self) -> None:
        """Instantiate each route's module once: raises what every request
        of that route would fail with (see :meth:`.handler.RouteRunner.check`)."""
        await self.gateway.check()

    @property
    def closing(self) -> bool:
        """True once :meth:`shutdown` was called."""
        return self._closing

    def statistics(self) -> HandlerStatistics:
        c = self.counters
        handshakes = self.handshakes
        return HandlerStatistics(c.connections, c.connections_active, c.requests, c.requests_active,
                                 dict(c.responses), c.bytes_sent, c.bad_requests, c.timeouts,
                                 self.gateway.instances_running, self.gateway.requests_waiting, self.accepted,
                                 handshakes.ok if handshakes else 0, dict(handshakes.failed) if handshakes else {})

    def shutdown(self) -> None:
        """Begin the graceful shutdown (idempotent)."""
        self._closing = True
        self._shutdown.set()
        for scope in list(self._idle):  # connections between requests close now
            scope.cancel()

    async def serve_stream(self, stream: trio.abc.Stream, info: Optional[ConnInfo] = None) -> None:
        """Answer requests on one open stream until it closes; closes it."""
        with trio.CancelScope() as scope:
            self._connections.add(scope)
            try:
                await serve_connection(stream, info or conn_info(stream), self.gateway.handle, self.limits,
                                       self.counters, access_log=self.access_log, next_id=self._ids,
                                       closing=lambda: self._closing, idle=self._idle, log=self.log)
            finally:
                self._connections.discard(scope)

    async def serve(self, listeners: Sequence[trio.abc.Listener[Any]],
                    *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept on ``listeners`` until :meth:`shutdown`, then shut down
        gracefully; returns when every connection is closed."""
        try:
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as acceptors:
                    for listener in listeners:
                        acceptors.start_soon(self._accept_loop, listener, connections)
                    task_status.started()
                    await self._shutdown.wait()
                    acceptors.cancel_scope.cancel()
                for listener in listeners:
                    await trio.aclose_forcefully(listener)
                busy = self.counters.requests_active
                self.log(f"shutting down: stopped accepting; {busy} request(s) in flight, grace period {self.grace:g} s")
                with trio.move_on_after(self.grace) as grace:
                    while self.counters.requests_active:
                        await trio.sleep(0.02)
                if grace.cancelled_caught:
                    self.log(f"grace period over: cancelling {self.counters.requests_active} request(s)")
                connections.cancel_scope.cancel()
        finally:
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            self.stopped.set()

    async def serve_tcp(self, port: int, host: Optional[str] = None, *, backlog: Optional[int] = None,
                        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind ``host:port`` (port 0: a free one) and :meth:`serve`; started
        with ``nursery.start``, returns the listeners to the starter."""
        listeners = await trio.open_tcp_listeners(port, host=host, backlog=backlog)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.serve, listeners)
            task_status.started(listeners)

    async def _accept_loop(self, listener: trio.abc.Listener[Any], connections: trio.Nursery) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return
            except OSError as exc:  # EMFILE and friends: wait, do not spin
                if exc.errno in _LISTENER_GONE:
                    return
                self.log(f"accept failed: {exc}; retrying in 0.1 s")
                await trio.sleep(0.1)
                continue
            self.accepted += 1
            if self.handshakes is None:
                connections.start_soon(self.serve_stream, stream)
            else:
                connections.start_soon(self._serve_tls, stream)

    async def _serve_tls(self, stream: trio.abc.Stream) -> None:
        """Complete the handshake on an accepted TCP stream, then serve it."""
        assert self.handshakes is not None and isinstance(stream, trio.SocketStream)
        sock = socket.socket(fileno=stream.socket.detach())  # the TLS connection works on the socket itself
        try:
            peer, local = sock.getpeername(), sock.getsockname()
        except OSError:  # the client is gone already
            sock.close()
            return
        connection = await self.handshakes.complete(sock, peer)
        if connection is not None:
            await self.serve_stream(connection, ConnInfo((peer[0], peer[1]), (local[0], local[1]), https=True))

