"""Handoff: one host accept loop feeding many guest instances.

    >>> handoff = Handoff.bind(["127.0.0.1:8080"])
    >>> config = WasiConfig(listeners=[handoff])     # every instance gets it as fd 3
    >>> async with trio.open_nursery() as nursery:
    ...     nursery.start_soon(handoff.accept_loop)
    ...     ...run N instances of the server...
    ...     handoff.stop_accepting()                 # graceful shutdown begins

Why: N instances blocked in ``sock_accept`` on one shared listening fd would
each wait on that fd (trio lets only one task wait per fd, and the kernel
would wake them all for one connection). Here only :meth:`accept_loop`
touches the listening sockets. Each instance's listener fd is a
:class:`~asyncwasm.wasi.sockets.HandedListenerEntry`: its ``sock_accept``
takes an already accepted connection, or parks the guest until one is
handed over.

Rule: the loop accepts only while more guests wait than connections are
pending, so a connection always goes to an idle instance and the rest wait
in the kernel's backlog (back-pressure), never in a queue of ours.
Several listening sockets (``--listen`` given twice) feed the same guests.

Exception: a guest that never parks, because it polls many connections with
non-blocking sockets and always has one ready (netmods' http_server_poll),
would leave new connections in the backlog for as long as it is busy. Its
listener fd therefore also reports readable when the first listening
socket's backlog holds a connection, and a non-blocking ``sock_accept``
takes one from the backlogs itself (``take(backlog=True)``).
"""

from __future__ import annotations

import collections
import errno
import socket
from typing import Iterable, Optional, Sequence

import trio

from ..hostnet import open_listener, parse_address

__all__ = ["Handoff"]

# accept(2) errors that concern one connection or a passing shortage, not the listener.
_TRANSIENT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED, errno.EPROTO,
              errno.EPERM}


class Handoff:
    """Connections accepted by the host, handed to guests that wait for one
    (implements :class:`asyncwasm.wasi.sockets.ConnectionSource`).

    ``listeners`` are listening sockets this object owns (closed by
    :meth:`close`); the first is what guests see as their listener's
    address."""

    def __init__(self, listeners: Sequence[socket.socket]) -> None:
        if not listeners:
            raise ValueError("Handoff needs at least one listening socket")
        for sock in listeners:
            sock.setblocking(False)
        self.listeners = list(listeners)
        self.listener = self.listeners[0]
        self._pending: collections.deque[socket.socket] = collections.deque()
        self.waiting = 0  #: guests waiting for a connection now (idle instances)
        self.accepted = 0  #: connections accepted so far
        self._arrived = trio.lowlevel.ParkingLot()  # guests wait here
        self._demand = trio.lowlevel.ParkingLot()  # the accept loop waits here
        self._stop: Optional[trio.CancelScope] = None
        self._stopped = False
        self.closed = False

    @classmethod
    def bind(cls, addresses: Iterable[str], backlog: int = 1024) -> "Handoff":
        """A handoff over new listeners bound to each ``"HOST:PORT"``
        (``"[V6]:PORT"``; port 0 picks a free one). ValueError for a bad
        address, OSError when one cannot be bound."""
        socks: list[socket.socket] = []
        try:
            for text in addresses:
                socks.append(open_listener(*parse_address(text), backlog=backlog))
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        return cls(socks)

    def addresses(self) -> list[tuple]:
        """The bound addresses (``getsockname()``) of every listener."""
        return [sock.getsockname() for sock in self.listeners]

    # -- the guest side (ConnectionSource) ------------------------------------
    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self, backlog: bool = False) -> Optional[socket.socket]:
        """A pending connection, or None. With ``backlog`` (a guest that
        cannot park: non-blocking ``sock_accept``), when none is pending,
        one straight from a listening socket's accept queue, if any."""
        if self._pending:
            return self._pending.popleft()
        if backlog and not self._stopped:
            for sock in self.listeners:
                try:
                    conn, _ = sock.accept()
                except OSError:  # BlockingIOError, ECONNABORTED...: try the next one
                    continue
                return self._accepted(conn)
        return None

    def _accepted(self, conn: socket.socket) -> socket.socket:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.accepted += 1
        return conn

    async def wait(self) -> None:
        self.waiting += 1
        if self.waiting > len(self._pending):
            self._demand.unpark_all()  # every listener's loop: any of them may have the connection
        try:
            await self._arrived.park()
        except BaseException:
            # Cancelled, perhaps just after being picked for a connection:
            # pass it on, or it would wait for the next arrival.
            if self._pending:
                self._arrived.unpark()
            raise
        finally:
            self.waiting -= 1

    # -- the host side -------------------------------------------------------
    async def accept_loop(self) -> None:
        """Accept while guests wait, until :meth:`stop_accepting`; one task
        per listening socket (they share the guests)."""
        with trio.CancelScope() as self._stop:
            if self._stopped:
                return
            async with trio.open_nursery() as nursery:
                for sock in self.listeners:
                    nursery.start_soon(self._accept_from, sock)

    async def _accept_from(self, sock: socket.socket) -> None:
        while True:
            while self.waiting <= len(self._pending):
                await self._demand.park()
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            except OSError as exc:  # EMFILE, ECONNABORTED...: wait a little, do not spin
                if exc.errno not in _TRANSIENT:
                    raise
                await trio.sleep(0.05)
                continue
            self._pending.append(self._accepted(conn))
            self._arrived.unpark()
            if self.waiting > len(self._pending):
                await trio.lowlevel.checkpoint()  # let the woken guest run before the next accept

    def stop_accepting(self) -> None:
        """Stop the accept loop and close the listening sockets (new
        connections are refused); connections already handed over go on."""
        self._stopped = True
        if self._stop is not None:
            self._stop.cancel()
        for sock in self.listeners:
            if sock.fileno() < 0:
                continue
            try:
                trio.lowlevel.notify_closing(sock)
            except RuntimeError:
                pass
            # close, not shutdown: with --workers the listening socket is
            # shared with the other workers, and shutdown(2) would stop it
            # listening in every process (guests' entries only borrow it).
            sock.close()

    @property
    def idle(self) -> bool:
        """No connection waits to be taken."""
        return not self._pending

    def close(self) -> None:
        """Stop accepting and close connections nobody took."""
        if self.closed:
            return
        self.closed = True
        self.stop_accepting()
        while self._pending:
            self._pending.popleft().close()

    def __repr__(self) -> str:
        return f"<Handoff {self.addresses() if not self._stopped else 'stopped'}: {self.waiting} waiting>"

