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

With TLS (``tls=TlsConfig(...)``) each accepted socket first completes its
handshake in a task of the accept loop, within the configured timeout; only
a finished handshake becomes a pending connection (a
:class:`~asyncwasm.serve.tls_connection.TlsEntry`), so a client that sends
garbage or plain HTTP, or never finishes, is counted, logged once and closed
without reaching an instance. Handshakes do not wait for demand beyond one
waiting guest: at most ``max_handshakes`` run at once, so a slow client
cannot stall the others.

Connections are handed over as fd entries the host made (plain
:class:`~asyncwasm.wasi.sockets.SocketEntry` or ``TlsEntry``), tracked until
the guest closes them: :meth:`Handoff.statistics` counts connections
accepted and open, handshakes, and bytes each way.

Generations (hot reload): the guests' side is a :class:`Gate`, one per
generation of a server (one compiled module version and its instances);
each generation's guests get their own gate as their listener. The accept
loop serves the *current* gate only: it accepts while that gate's guests
wait (:meth:`Handoff._wanted`) and gives it each connection
(:meth:`Handoff._deliver`). :meth:`Handoff.switch` makes another gate
current, moving the connections accepted but not yet taken, so none is
lost; an older gate's guests keep what they hold and never get another
connection (their listener stops looking ready). A gate counts the
connections its guests hold (:attr:`Gate.open`, for draining) and the
tasks that have waited in it (:attr:`Gate.arrived`, for readiness). The
handoff itself is a :class:`ConnectionSource` for its current gate, so a
single generation needs no gate of its own.

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
from typing import Any, Callable, Iterable, Optional, Sequence

import trio

from ..hostnet import open_listener, parse_address
from ..wasi.abi import RIGHTS_SOCKET
from ..wasi.sockets import SocketEntry, close_socket
from .tls import TlsConfig
from .tls_connection import HANDSHAKE_FAILURES, Handshakes, TlsEntry

__all__ = ["Handoff", "Gate", "HANDSHAKE_FAILURES"]

# accept(2) errors that concern one connection or a passing shortage, not the listener.
_TRANSIENT = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED, errno.EPROTO,
              errno.EPERM}
# accept(2) on a listener shut down (EINVAL) or closed (EBADF) meanwhile.
_LISTENER_GONE = {errno.EINVAL, errno.EBADF}


class Gate:
    """One generation's guests' side of a :class:`Handoff` (implements
    :class:`asyncwasm.wasi.sockets.ConnectionSource`): the connections
    handed to them, and how many of them wait for one.

    ``open``: connections its guests took and have not closed yet;
    ``arrived``: the tasks that have waited for a connection here at least
    once (a guest that got that far is ready to serve)."""

    def __init__(self, handoff: "Handoff") -> None:
        self.handoff = handoff
        self.listener = handoff.listener
        self._pending: collections.deque[SocketEntry] = collections.deque()
        self.waiting = 0  #: guests waiting for a connection now (idle instances)
        self.open = 0
        self.arrived: set[trio.lowlevel.Task] = set()
        self._arrived = trio.lowlevel.ParkingLot()  # guests wait here
        self._changed = trio.lowlevel.ParkingLot()  # wait_until waits here
        self._watchers: list[Callable[[], None]] = []  # guests polling their listener (watch)

    @property
    def accepting(self) -> bool:
        """Whether connections may still come: this is the handoff's current gate, and it accepts."""
        return self.handoff.gate is self and not self.handoff.stopped

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self, backlog: bool = False) -> Optional[SocketEntry]:
        """A pending connection, or None. With ``backlog`` (a guest that
        cannot park: non-blocking ``sock_accept``), when none is pending,
        one straight from a listening socket's accept queue, if any, while
        this gate is current (with TLS its handshake starts, and the
        connection is pending once done)."""
        if self._pending:
            entry: Optional[SocketEntry] = self._pending.popleft()
        elif backlog and self.accepting:
            entry = self.handoff._from_backlog()
        else:
            return None
        if entry is not None:
            self.open += 1
            entry.add_close_hook(self._released)
        return entry

    def _released(self) -> None:
        self.open -= 1
        self._changed.unpark_all()

    def _arrive(self) -> None:
        """A guest waits for a connection: count it, and wake the accept loops if it needs one."""
        self.waiting += 1
        self.arrived.add(trio.lowlevel.current_task())
        self._changed.unpark_all()
        if self.accepting and self.waiting > len(self._pending):
            self.handoff._demand.unpark_all()  # every listener's loop: any of them may have the connection

    async def wait(self) -> None:
        self._arrive()
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

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """:meth:`wait` for a guest that waits for more than a connection
        (``poll_oneoff`` over its listener and its connections) without
        blocking: it counts as waiting, and ``wake()`` is called whenever a
        connection is handed over, until the returned function is called."""
        self._arrive()
        self._watchers.append(wake)

        def stop() -> None:
            self.waiting -= 1
            self._watchers.remove(wake)

        return stop

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; it is looked at again whenever
        a guest waits or a connection closes."""
        while not condition():
            await self._changed.park()

    def _deliver(self, entry: SocketEntry) -> None:
        self._pending.append(entry)
        self._arrived.unpark()
        for wake in self._watchers:
            wake()

    def _release_pending(self) -> None:
        while self._pending:
            self._pending.popleft().release()

    def __repr__(self) -> str:
        state = "current" if self.handoff.gate is self else "retired"
        return f"<Gate {state}: {self.waiting} waiting, {len(self._pending)} pending, {self.open} open>"


class Handoff:
    """Connections accepted by the host, handed to guests that wait for one
    (implements :class:`asyncwasm.wasi.sockets.ConnectionSource`, for its
    current :class:`Gate`).

    ``listeners`` are listening sockets this object owns (closed by
    :meth:`close`); the first is what guests see as their listener's
    address. ``tls``: terminate TLS on every listener. ``log``: one line
    per event (handshake failures, at most ten per ten seconds)."""

    def __init__(self, listeners: Sequence[socket.socket], *, tls: Optional[TlsConfig] = None,
                 max_handshakes: int = 512, log: Callable[[str], None] = lambda line: None) -> None:
        if not listeners:
            raise ValueError("Handoff needs at least one listening socket")
        for sock in listeners:
            sock.setblocking(False)
        self.listeners = list(listeners)
        self.listener = self.listeners[0]
        self.tls = tls
        self.max_handshakes = max_handshakes
        self.log = log
        self.gate = Gate(self)  #: where new connections go
        self.accepted = 0  #: connections accepted so far
        self.handshaking = 0  #: TLS handshakes under way
        self.handshakes = Handshakes(tls, log)  # counted and logged the same way in handler mode
        self._live: set[SocketEntry] = set()  # handed over or pending, until the guest closes them
        self._closed_bytes = [0, 0]  # received, sent by connections already closed
        self._demand = trio.lowlevel.ParkingLot()  # the accept loop waits here
        self._stop: Optional[trio.CancelScope] = None
        self._nursery: Optional[trio.Nursery] = None
        self.stopped = False  #: stop_accepting() was called
        self.closed = False

    @classmethod
    def bind(cls, addresses: Iterable[str], backlog: int = 1024, **options: Any) -> "Handoff":
        """A handoff over new listeners bound to each ``"HOST:PORT"``
        (``"[V6]:PORT"``; port 0 picks a free one); ``options`` as for the
        constructor. ValueError for a bad address, OSError when one cannot
        be bound."""
        socks: list[socket.socket] = []
        try:
            for text in addresses:
                socks.append(open_listener(*parse_address(text), backlog=backlog))
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        return cls(socks, **options)

    @property
    def handshakes_ok(self) -> int:
        return self.handshakes.ok

    @property
    def handshakes_failed(self) -> dict[str, int]:
        return self.handshakes.failed

    @property
    def scheme(self) -> str:
        """``https`` with TLS, else ``http`` (for the log)."""
        return "https" if self.tls is not None else "http"

    def addresses(self) -> list[tuple[Any, ...]]:
        """The bound addresses (``getsockname()``) of every listener."""
        return [sock.getsockname() for sock in self.listeners]

    # -- the guest side (ConnectionSource), for the current gate ----------------
    @property
    def waiting(self) -> int:
        """Guests of the current gate waiting for a connection now."""
        return self.gate.waiting

    @property
    def pending(self) -> int:
        return self.gate.pending

    @property
    def accepting(self) -> bool:
        return not self.stopped

    def take(self, backlog: bool = False) -> Optional[SocketEntry]:
        return self.gate.take(backlog)

    async def wait(self) -> None:
        await self.gate.wait()

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        return self.gate.watch(wake)

    def switch(self, gate: Gate) -> Gate:
        """Make ``gate`` the current one (new connections go to its guests)
        and return the previous one. The connections accepted but not yet
        taken move with the switch; the previous gate's guests keep the
        connections they hold."""
        previous, self.gate = self.gate, gate
        while previous._pending:
            gate._deliver(previous._pending.popleft())
        previous._changed.unpark_all()
        self._demand.unpark_all()
        return previous

    def _from_backlog(self) -> Optional[SocketEntry]:
        """A connection straight from a listening socket's accept queue, or None."""
        if self.stopped:
            return None
        for sock in self.listeners:
            try:
                conn, peer = sock.accept()
            except OSError:  # BlockingIOError, ECONNABORTED...: try the next one
                continue
            return self._accepted(conn, peer)
        return None

    def _accepted(self, conn: socket.socket, peer: Any) -> Optional[SocketEntry]:
        """The entry for a new connection; None when it goes to a TLS handshake first."""
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.accepted += 1
        if self.tls is not None:
            if self._nursery is None:  # no accept loop to run the handshake in
                conn.close()
                return None
            self.handshaking += 1
            self._nursery.start_soon(self._handshake, conn, peer)
            return None
        try:
            return self._track(SocketEntry(conn, rights_base=RIGHTS_SOCKET))
        except BaseException:
            conn.close()
            raise

    def _track(self, entry: SocketEntry) -> SocketEntry:
        self._live.add(entry)
        entry.add_close_hook(lambda: self._forget(entry))
        return entry

    def _forget(self, entry: SocketEntry) -> None:
        self._live.discard(entry)
        self._closed_bytes[0] += entry.received
        self._closed_bytes[1] += entry.sent

    async def _handshake(self, conn: socket.socket, peer: Any) -> None:
        try:
            connection = await self.handshakes.complete(conn, peer)
        finally:
            self.handshaking -= 1
            self._demand.unpark_all()
        if connection is None:
            return
        if self.stopped:
            connection.close()
            return
        self._deliver(self._track(TlsEntry(connection)))

    def statistics(self) -> dict[str, Any]:
        """Counters for metrics: ``accepted``, ``active`` (connections
        pending or held by guests), ``handshakes_ok``, ``handshakes_failed``
        (by reason), ``received``/``sent`` bytes (on the wire; TLS records
        included)."""
        received, sent = self._closed_bytes
        for entry in self._live:
            received += entry.received
            sent += entry.sent
        return {"accepted": self.accepted, "active": len(self._live), "handshakes_ok": self.handshakes_ok,
                "handshakes_failed": dict(self.handshakes_failed), "received": received, "sent": sent}

    # -- the host side -------------------------------------------------------
    async def accept_loop(self) -> None:
        """Accept while guests wait, until :meth:`stop_accepting`; one task
        per listening socket (they share the guests), and one per TLS
        handshake under way."""
        with trio.CancelScope() as self._stop:
            if self.stopped:
                return
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    for sock in self.listeners:
                        nursery.start_soon(self._accept_from, sock)
            finally:
                self._nursery = None

    def _wanted(self) -> bool:
        """Whether the loop should accept now: a guest of the current gate
        waits for a connection that is not there yet (and handshakes have room)."""
        gate = self.gate
        return gate.waiting > len(gate._pending) and self.handshaking < self.max_handshakes

    def _deliver(self, entry: SocketEntry) -> None:
        """Give a new connection to the current gate's waiting guests."""
        self.gate._deliver(entry)

    async def _accept_from(self, sock: socket.socket) -> None:
        while True:
            while not self._wanted():
                await self._demand.park()
            try:
                conn, peer = sock.accept()
            except BlockingIOError:
                try:
                    await trio.lowlevel.wait_readable(sock)
                except trio.ClosedResourceError:
                    return
                continue
            except OSError as exc:  # EMFILE, ECONNABORTED...: wait a little, do not spin
                if exc.errno in _LISTENER_GONE:
                    return  # shut down by another process sharing it (the workers' supervisor)
                if exc.errno not in _TRANSIENT:
                    raise
                await trio.sleep(0.05)
                continue
            entry = self._accepted(conn, peer)
            if entry is not None:
                self._deliver(entry)
            if self._wanted():
                await trio.lowlevel.checkpoint()  # let the woken guest run before the next accept

    def stop_accepting(self) -> None:
        """Stop the accept loop and close the listening sockets (new
        connections are refused); connections already handed over go on."""
        self.stopped = True
        if self._stop is not None:
            self._stop.cancel()
        for sock in self.listeners:
            # close, not shutdown: with --workers the listening socket is
            # shared with the other workers, and shutdown(2) would stop it
            # listening in every process (guests' entries only borrow it).
            close_socket(sock)

    @property
    def idle(self) -> bool:
        """No connection waits to be taken."""
        return not self.gate.pending

    def close(self) -> None:
        """Stop accepting and close connections nobody took."""
        if self.closed:
            return
        self.closed = True
        self.stop_accepting()
        self.gate._release_pending()

    def __repr__(self) -> str:
        return f"<Handoff {self.addresses() if not self.stopped else 'stopped'}: {self.waiting} waiting>"

