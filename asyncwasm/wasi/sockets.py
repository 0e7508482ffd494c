"""Socket entries of the guest fd table, driven by trio's I/O loop.

    >>> entry = listener_entry(("127.0.0.1", 0))       # a pre-opened listener
    >>> ctx.fds.put(4, entry)
    >>> conn = entry.accept()           # a socket, or an awaitable of one

Rule: a guest socket is an entry in the same :class:`~.fdtable.FdTable` as
files, so ``fd_read``/``fd_write``/``fd_close``/``fd_fdstat_*``/``poll_oneoff``
work on it unchanged; the ``sock_*`` host functions (:mod:`.sock`) ask the
table for an entry with ``is_socket`` set (``NOTSOCK`` otherwise).

Rule: the host socket is always in non-blocking mode; blocking is a
guest-level idea. Every operation first tries the system call (the fast
path: no suspension when data, a connection or buffer space is there). If
that would block, an fd with the guest's ``NONBLOCK`` flag gets ``AGAIN``;
otherwise the operation returns a :class:`~.later.Later` that waits with
``trio.lowlevel.wait_readable``/``wait_writable`` and retries, so only the
guest's task waits, never the thread, and a trio cancel scope around the
guest simply cancels that wait (DESIGN.md contracts 2 and 4).

Why stdlib sockets and not ``trio.socket`` objects: trio's socket methods
are coroutines that pass a checkpoint even when the call could complete at
once, which would suspend the guest on every ``sock_recv``. The waiting here
uses the same trio I/O primitives trio's sockets use internally (and
``notify_closing`` on close, so a pending wait ends instead of hanging).
``trio.socket`` objects are welcome as pre-opened listeners (they are
duplicated, see :func:`listener_entry`).

Blocking semantics kept from POSIX: a blocking stream ``send`` returns only
when every byte was sent (or an error after a partial send returns the
count); ``recv`` returns as soon as some data (or end of stream) is there;
``RECV_WAITALL`` waits for the full buffer on a blocking stream socket;
``SO_RCVTIMEO``/``SO_SNDTIMEO`` bound those waits (then ``AGAIN``, or the
partial count).
"""

from __future__ import annotations

import array
import errno as host_errno
import fcntl
import ipaddress
import os
import select
import socket
import struct
import termios
from typing import Any, Awaitable, Callable, Optional, Protocol, Sequence, TypeVar, Union

import trio

from .abi import (
    RIGHTS_SOCKET,
    RIGHTS_SOCKET_LISTENER,
    AddressFamily,
    Errno,
    Eventrwflags,
    Fdflags,
    Filetype,
    SockOpt,
    WasiError,
)
from .fdtable import Entry, Filestat, Readiness, filestat_of
from .later import Later
from .netpolicy import IPAddress, NetPolicy

__all__ = [
    "SocketEntry",
    "HandedListenerEntry",
    "ConnectionSource",
    "NetState",
    "RecvResult",
    "listener_entry",
    "check_listener_spec",
    "socket_entry_for_guest",
    "python_sockaddr",
    "split_sockaddr",
    "close_socket",
]

T = TypeVar("T")
Pending = Union[T, Awaitable[T]]
#: (bytes received, host ``msg_flags``, sender address or None)
RecvResult = tuple[int, int, Any]

_TIMEVAL = struct.Struct("<qq")  # wasm32 wasi-libc ``struct timeval``: i64 tv_sec, i64 tv_usec
_NO_TIMEOUT = bytes(_TIMEVAL.size)
_POLLRDHUP = getattr(select, "POLLRDHUP", 0x2000)
_NONBLOCK = int(Fdflags.NONBLOCK)
_POLL_READ = select.POLLIN | _POLLRDHUP
_HANGUP = int(Eventrwflags.FD_READWRITE_HANGUP)
_MSG_NOSIGNAL = int(socket.MSG_NOSIGNAL)  # plain int: socket.MsgFlag arithmetic is enum arithmetic


def _advance(buffers: Sequence[memoryview], n: int) -> list[memoryview]:
    """``buffers`` without their first ``n`` bytes."""
    out = []
    for buf in buffers:
        if n >= len(buf):
            n -= len(buf)
            continue
        out.append(buf[n:])
        n = 0
    return out


def _capacity(buffers: Sequence[memoryview]) -> int:
    return sum(map(len, buffers))


def _poll_now(fd: int, events: int) -> int:
    poller = select.poll()
    poller.register(fd, events)
    ready = poller.poll(0)
    return ready[0][1] if ready else 0


def _ioctl_int(fd: int, request: int) -> Optional[int]:
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, request, buf, True)
    except OSError:
        return None
    return max(0, buf[0])


class SocketEntry(Entry):
    """A guest fd backed by a host socket this entry owns (closed with it).

    ``preopened`` marks the host's listeners: the network policy does not
    apply to them. ``timeouts`` keeps the guest's ``SO_RCVTIMEO`` /
    ``SO_SNDTIMEO`` values (wasm32 ``timeval`` bytes), applied to waits here
    because the host socket itself never blocks."""

    is_socket = True
    # Bytes received and sent on the Python path (a peek is not counted);
    # class defaults, so an entry that moves no data stores nothing.
    _received = 0
    _sent = 0
    #: (mirror, guest fd) while the engine's C path has this fd
    #: (:mod:`.fastpath`), which counts its bytes and must see changes of
    #: rights and flags; None otherwise.
    native: Optional[tuple[Any, int]] = None

    def __init__(self, sock: socket.socket, *, rights_base: int, fdflags: int = 0, preopened: bool = False) -> None:
        self.sock: Optional[socket.socket] = None  # set last: a failed constructor must not own sock
        super().__init__(rights_base, 0, fdflags)
        sock.setblocking(False)
        self.filetype = Filetype.SOCKET_DGRAM if sock.type == socket.SOCK_DGRAM else Filetype.SOCKET_STREAM
        self.is_stream = sock.type == socket.SOCK_STREAM
        self.preopened = preopened
        self.timeouts: dict[int, bytes] = {SockOpt.RCVTIMEO: _NO_TIMEOUT, SockOpt.SNDTIMEO: _NO_TIMEOUT}
        self.sock = sock

    @property
    def host_fd(self) -> Optional[int]:
        return self.sock.fileno() if self.sock is not None else None

    @property
    def nonblocking(self) -> bool:
        return bool(self._fdflags & _NONBLOCK)  # a plain int: this is on every call's path

    # -- state the C path mirrors ---------------------------------------------------
    @property
    def received(self) -> int:
        """Bytes received through this entry (a peek is not counted)."""
        native = self.native
        return self._received + (native[0].counts(native[1])[0] if native is not None else 0)

    @property
    def sent(self) -> int:
        """Bytes sent through this entry."""
        native = self.native
        return self._sent + (native[0].counts(native[1])[1] if native is not None else 0)

    def count_bytes(self, received: int, sent: int) -> None:
        """Add bytes moved elsewhere (the C path's, when it forgets the fd)."""
        self._received += received
        self._sent += sent

    @property
    def fdflags(self) -> int:  # type: ignore[override]
        return self._fdflags

    @fdflags.setter
    def fdflags(self, value: int) -> None:
        self._fdflags = value
        if self.native is not None:
            self.native[0].update(self)

    @property
    def rights_base(self) -> int:  # type: ignore[override]
        return self._rights_base

    @rights_base.setter
    def rights_base(self, value: int) -> None:
        self._rights_base = value
        if self.native is not None:
            self.native[0].update(self)

    def host_socket(self) -> socket.socket:
        """The host socket (``BADF`` once closed), for calls without waiting
        (bind, listen, getsockopt, setsockopt)."""
        if self.sock is None:
            raise WasiError(Errno.BADF)
        return self.sock

    # -- waiting ---------------------------------------------------------------
    def _timeout(self, option: int) -> Optional[float]:
        seconds, micros = _TIMEVAL.unpack(self.timeouts[option])
        total = seconds + micros / 1e6
        return total if total > 0 else None

    async def _wait(self, writable: bool) -> None:
        """Wait until the socket may be ready; ``BADF`` if it is closed meanwhile."""
        sock = self.host_socket()
        try:
            if writable:
                await trio.lowlevel.wait_writable(sock)
            else:
                await trio.lowlevel.wait_readable(sock)
        except trio.ClosedResourceError:
            raise WasiError(Errno.BADF) from None

    async def _retry(self, writable: bool, attempt: Callable[[], Optional[T]], option: int) -> Optional[T]:
        """Wait and call ``attempt`` until it gives a value; None when the
        guest's ``option`` timeout passed first."""
        timeout = self._timeout(option)
        if timeout is None:  # the usual case: no cancel scope (it costs as much as the wait itself)
            while True:
                await self._wait(writable)
                result = attempt()
                if result is not None:
                    return result
        with trio.move_on_after(timeout):
            while True:
                await self._wait(writable)
                result = attempt()
                if result is not None:
                    return result
        return None

    # -- receiving -------------------------------------------------------------
    def try_recv(self, buffers: list[memoryview], flags: int) -> Optional[RecvResult]:
        """Receive what is there now, never waiting: None when nothing is
        (the caller of a NONBLOCK fd answers AGAIN without raising)."""
        sock = self.host_socket()
        try:
            if self.is_stream and len(buffers) == 1:  # the common case, without recvmsg's tuple
                n = sock.recv_into(buffers[0], 0, flags)
                if not flags:
                    self._received += n
                return n, 0, None
            n, _, msg_flags, address = sock.recvmsg_into(buffers, 0, flags)
        except BlockingIOError:
            return None
        if not flags:
            self._received += n
        return n, msg_flags, address

    def recv(self, buffers: list[memoryview], flags: int = 0, *, waitall: bool = False) -> Pending[RecvResult]:
        """Receive into ``buffers`` with host ``flags`` (``MSG_PEEK``).

        ``waitall`` (stream sockets, blocking fd): keep receiving until the
        buffers are full or the stream ends."""
        if not buffers:
            return 0, 0, None
        sock = self.sock
        if not waitall and sock is not None and self.is_stream and len(buffers) == 1:
            try:  # the common case, inline: one buffer, data there
                n = sock.recv_into(buffers[0], 0, flags)
                if not flags:
                    self._received += n
                return n, 0, None
            except BlockingIOError:
                pass
            return self.wait_or_again(lambda: self._recv_wait(buffers, flags, False, None))
        return self._recv_general(buffers, flags, waitall)

    def _recv_general(self, buffers: list[memoryview], flags: int, waitall: bool) -> Pending[RecvResult]:
        """:meth:`recv` built on :meth:`try_recv` and waits for the socket
        (what entries whose bytes are not the socket's, TLS, use)."""
        got = self.try_recv(buffers, flags)
        if got is not None and not waitall:
            return got  # the fast path: data was there
        waitall = waitall and self.is_stream and not flags & socket.MSG_PEEK and not self.nonblocking
        if got is not None:
            n = got[0]
            if not waitall or n == 0 or n == _capacity(buffers):
                return got
            return Later(self._recv_wait, buffers, flags, waitall, got)
        return self.wait_or_again(lambda: self._recv_wait(buffers, flags, waitall, None))

    async def _recv_wait(self, buffers: list[memoryview], flags: int, waitall: bool,
                         so_far: Optional[RecvResult]) -> RecvResult:
        done, msg_flags, address = so_far if so_far is not None else (0, 0, None)
        total = _capacity(buffers)
        while True:
            got = await self._retry(False, lambda: self.try_recv(_advance(buffers, done), flags), SockOpt.RCVTIMEO)
            if got is None:  # SO_RCVTIMEO passed
                if done:
                    return done, msg_flags, address
                raise WasiError(Errno.AGAIN)
            n, msg_flags, address = got
            done += n
            if not waitall or n == 0 or done >= total:
                return done, msg_flags, address

    def readv(self, buffers: list[memoryview]) -> Pending[int]:
        got = self.recv(buffers)
        if isinstance(got, tuple):
            return got[0]
        return Later(_first_of, got)

    # -- sending -----------------------------------------------------------------
    def _try_send(self, buffers: list[memoryview], address: Any) -> Optional[int]:
        sock = self.host_socket()
        try:
            if address is None:
                if len(buffers) == 1:  # the common case, without building a msghdr
                    n = sock.send(buffers[0], _MSG_NOSIGNAL)
                else:
                    n = sock.sendmsg(buffers, (), _MSG_NOSIGNAL)
            else:
                n = sock.sendmsg(buffers, (), _MSG_NOSIGNAL, address)
        except BlockingIOError:
            return None
        self._sent += n
        return n

    def send(self, buffers: list[memoryview], address: Any = None) -> Pending[int]:
        """Send ``buffers`` (to ``address`` when given). Returns the count
        sent; on a blocking stream socket that is everything (see the module
        docstring)."""
        total = len(buffers[0]) if len(buffers) == 1 else _capacity(buffers)
        if total == 0 and self.is_stream:
            return 0
        n = self._try_send(buffers, address)
        if n is None:
            return self.wait_or_again(lambda: self.send_wait(buffers, address, 0))
        if n >= total or not self.is_stream or self.nonblocking:
            return n
        return Later(self.send_wait, buffers, address, n)

    async def send_wait(self, buffers: list[memoryview], address: Any, done: int) -> int:
        total = _capacity(buffers)
        while True:
            try:
                n = await self._retry(True, lambda: self._try_send(_advance(buffers, done), address), SockOpt.SNDTIMEO)
            except OSError:
                if done:
                    return done  # POSIX: a partial send reports its count; the error comes next time
                raise
            if n is None:  # SO_SNDTIMEO passed
                if done:
                    return done
                raise WasiError(Errno.AGAIN)
            done += n
            if done >= total or not self.is_stream:
                return done

    def writev(self, buffers: list[memoryview]) -> Pending[int]:
        return self.send(buffers)

    # -- connections -------------------------------------------------------------
    def _try_accept(self) -> Optional[socket.socket]:
        try:
            conn, _ = self.host_socket().accept()
        except BlockingIOError:
            return None
        return conn

    def accept(self) -> Pending[socket.socket]:
        """A new connection (a host socket the caller must own), or an
        awaitable of one; ``AGAIN`` on a NONBLOCK listener with none pending."""
        conn = self._try_accept()
        if conn is not None:
            return conn
        return self.wait_or_again(self._accept_wait)

    async def _accept_wait(self) -> socket.socket:
        conn = await self._retry(False, self._try_accept, SockOpt.RCVTIMEO)
        if conn is None:
            raise WasiError(Errno.AGAIN)
        return conn

    def connect(self, address: Any) -> Pending[None]:
        """Connect to the Python sockaddr ``address``. A stream connect that
        is under way gives ``INPROGRESS`` on a NONBLOCK fd, else an awaitable."""
        err = self.host_socket().connect_ex(address)
        if err == 0:
            return None
        if err not in (host_errno.EINPROGRESS, host_errno.EAGAIN, host_errno.EALREADY):
            raise OSError(err, os.strerror(err))
        if self.nonblocking:
            raise WasiError(Errno.INPROGRESS)
        return Later(self._connect_wait)

    async def _connect_wait(self) -> None:
        with trio.move_on_after(self._timeout(SockOpt.SNDTIMEO) or float("inf")):
            await self._wait(True)
        if not _poll_now(self.host_socket().fileno(), select.POLLOUT):
            raise WasiError(Errno.INPROGRESS)  # SO_SNDTIMEO passed; the connect goes on (as connect(2))
        err = self.host_socket().getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, os.strerror(err))

    @property
    def listening(self) -> bool:
        return bool(self.host_socket().getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))

    def shutdown(self, how: int) -> None:
        """``shutdown(2)``; NOTCONN on a listener. (Linux would stop a listener
        on shutdown, and a pre-opened one is shared with the host and other
        instances through its file description.)"""
        if self.listening:
            raise WasiError(Errno.NOTCONN)
        self.host_socket().shutdown(how)

    # -- addresses -----------------------------------------------------------------
    def local_address(self) -> tuple[IPAddress, int]:
        return split_sockaddr(self.host_socket().family, self.host_socket().getsockname())

    def peer_address(self) -> tuple[IPAddress, int]:
        return split_sockaddr(self.host_socket().family, self.host_socket().getpeername())

    # -- metadata and readiness -------------------------------------------------------
    def filestat(self) -> Filestat:
        return filestat_of(os.fstat(self.host_socket().fileno()), self.filetype)

    # poll objects registered once (poll_oneoff asks on every call); the fd
    # they name stays this socket's while self.sock is set
    _read_poll: Any = None
    _write_poll: Any = None

    def poll_read(self) -> Readiness:
        fd = self.host_socket().fileno()
        poller = self._read_poll
        if poller is None:
            poller = self._read_poll = select.poll()
            poller.register(fd, _POLL_READ)
        ready = poller.poll(0)
        if not ready:
            return None
        return (_ioctl_int(fd, termios.FIONREAD) or 0, _HANGUP if ready[0][1] & select.POLLHUP else 0)

    def poll_write(self) -> Readiness:
        fd = self.host_socket().fileno()
        poller = self._write_poll
        if poller is None:
            poller = self._write_poll = select.poll()
            poller.register(fd, select.POLLOUT)
        ready = poller.poll(0)
        if not ready:
            return None
        return (self.send_space(), _HANGUP if ready[0][1] & select.POLLHUP else 0)

    def send_space(self) -> int:
        """Free bytes in the send buffer (SO_SNDBUF - TIOCOUTQ, as WasmEdge
        reports for fd_write events), 1 when unknown."""
        sock = self.host_socket()
        queued = _ioctl_int(sock.fileno(), termios.TIOCOUTQ)
        if queued is None:
            return 1
        return max(1, sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - queued)

    async def wait_readable(self) -> None:
        sock = self.sock  # inline _wait: this is poll_oneoff's wait, once per idle request
        if sock is not None:
            try:
                await trio.lowlevel.wait_readable(sock)
                return
            except trio.ClosedResourceError:
                pass
        await trio.lowlevel.checkpoint()  # closed (meanwhile): poll_oneoff reports BADF next

    async def wait_writable(self) -> None:
        sock = self.sock
        if sock is not None:
            try:
                await trio.lowlevel.wait_writable(sock)
                return
            except trio.ClosedResourceError:
                pass
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            close_socket(sock)

    def __del__(self) -> None:  # an unclosed context must not leak host sockets
        sock = getattr(self, "sock", None)
        if sock is not None:
            sock.close()

    def __repr__(self) -> str:
        sock = self.sock
        where = "closed"
        if sock is not None:
            try:
                where = repr(sock.getsockname())
            except OSError:
                where = "?"
        return f"<SocketEntry {self.filetype.name} {where}{' preopened' if self.preopened else ''}>"


class ConnectionSource(Protocol):
    """Connections the host accepted and hands to guests (one host accept
    loop feeding many instances; see ``asyncwasm.serve.handoff``).

    ``take()`` gives a pending connection (the caller owns it): a host
    socket, or a :class:`SocketEntry` the host built for it (a TLS
    connection is one), or None;
    ``wait(waiter)`` returns when one may be pending, counting the caller
    as an idle guest meanwhile (the source accepts only while guests wait;
    ``waiter``, the guest's listener entry, says which guest it is);
    ``watch(wake, waiter)`` is ``wait(waiter)`` without blocking, for a
    guest that waits for its connections too (``poll_oneoff``): it counts
    as waiting and ``wake()`` is called when one may be pending, until the
    returned function is called;
    ``pending`` counts connections ready to take; ``listener`` is a
    listening socket whose address the guest sees; ``accepting`` is False
    once no connection will come any more (a retired generation's
    listener: the listening socket goes on serving others)."""

    listener: socket.socket
    pending: int
    accepting: bool

    def take(self, backlog: bool = False) -> Optional[Union[socket.socket, "SocketEntry"]]: ...

    async def wait(self, waiter: object = None) -> None: ...

    def watch(self, wake: Callable[[], None], waiter: object = None) -> Callable[[], None]: ...


class HandedListenerEntry(SocketEntry):
    """A pre-opened listener whose connections come from a
    :class:`ConnectionSource` instead of the guest's own ``accept(2)``.

    Why: N instances blocked in ``sock_accept`` on one shared listening fd
    would all wait on that fd in trio (one wakes, the others wake for
    nothing, and trio refuses two tasks waiting on one fd). Here only the
    host's accept loop touches the listening socket; each guest takes a
    connection already accepted, or parks until one is handed over.

    To the guest it is an ordinary listener: ``fd_fdstat_get`` says
    SOCKET_STREAM, ``sock_getlocaladdr`` the listening address, and
    ``poll_oneoff`` FD_READ is ready while a connection is pending. The
    entry borrows the source's listening socket for such questions instead
    of duplicating it, so an idle instance holds no host fd of its own;
    closing the entry only forgets the socket, and once the source has
    closed it every call on the entry is ``BADF``.

    A guest that polls instead of parking (one instance serving many
    connections with non-blocking sockets and ``poll_oneoff``) is never
    counted as waiting while it has other work, so the source would not
    accept for it: its new connections sat in the kernel's backlog until it
    next found nothing to do (a second under load, when the peer runs on
    another CPU). So FD_READ is also ready while the kernel's accept queue
    holds a connection, and a non-blocking ``sock_accept`` (which cannot
    park) has the source take one from there (``take(backlog=True)``) when
    none is pending: without waiting, so trio's one-waiter-per-fd rule above
    does not apply. Readiness looks at the source's first listening socket
    only; the others are served by the accept loop."""

    def __init__(self, source: ConnectionSource) -> None:
        super().__init__(source.listener, rights_base=RIGHTS_SOCKET_LISTENER, preopened=True)
        self.source = source

    @property
    def host_fd(self) -> Optional[int]:
        return None  # readiness is the source's, not the fd's (epoll_oneoff polls it level-triggered)

    def host_socket(self) -> socket.socket:
        sock = self.sock
        if sock is None or sock.fileno() < 0:  # forgotten, or closed by the source
            raise WasiError(Errno.BADF)
        return sock

    def _check_open(self) -> None:
        # The entry, not the source's socket: a source that stopped accepting
        # leaves a listener that never has a connection (a draining guest
        # polls it and serves its open connections on), not a BADF.
        if self.sock is None:
            raise WasiError(Errno.BADF)

    def close(self) -> None:
        self.sock = None  # the source's socket: not ours to close

    def __del__(self) -> None:
        pass

    def accept(self) -> Pending[Union[socket.socket, SocketEntry]]:
        self._check_open()
        # a non-blocking guest cannot park: it may take from the backlog itself
        conn = self.source.take(backlog=self.nonblocking)
        if conn is not None:
            return conn
        return self.wait_or_again(self._accept_wait)

    async def _accept_wait(self) -> Union[socket.socket, SocketEntry]:
        with trio.move_on_after(self._timeout(SockOpt.RCVTIMEO) or float("inf")):
            while True:
                await self.source.wait(self)
                self._check_open()
                conn = self.source.take()
                if conn is not None:
                    return conn
        raise WasiError(Errno.AGAIN)

    def poll_read(self) -> Readiness:
        self._check_open()
        if self.source.pending:
            return (1, 0)
        if not self.source.accepting:
            return None
        fd = self.sock.fileno()  # type: ignore[union-attr]
        if fd < 0:
            return None  # the source stopped accepting
        # POLLIN alone: a shut-down listener reports POLLHUP (nothing to accept)
        return (1, 0) if _poll_now(fd, select.POLLIN) & select.POLLIN else None

    def poll_write(self) -> Readiness:
        return None  # a listener never becomes writable

    async def wait_readable(self) -> None:
        await self.source.wait(self)

    def try_recv(self, buffers: list[memoryview], flags: int) -> Optional[RecvResult]:
        raise WasiError(Errno.NOTCONN)

    def recv(self, buffers: list[memoryview], flags: int = 0, *, waitall: bool = False) -> Pending[RecvResult]:
        raise WasiError(Errno.NOTCONN)

    def send(self, buffers: list[memoryview], address: Any = None) -> Pending[int]:
        raise WasiError(Errno.NOTCONN)

    def connect(self, address: Any) -> Pending[None]:
        raise WasiError(Errno.ISCONN)


def close_socket(sock: socket.socket) -> None:
    """Close ``sock``, first waking any trio task waiting on it (so the wait
    ends instead of hanging; outside trio nobody can be waiting)."""
    if sock.fileno() < 0:
        return
    try:
        trio.lowlevel.notify_closing(sock)
    except RuntimeError:
        pass
    sock.close()


async def _first_of(awaitable: Awaitable[RecvResult]) -> int:
    return (await awaitable)[0]


# -- addresses (pure) -----------------------------------------------------------------


def split_sockaddr(family: int, address: Any) -> tuple[IPAddress, int]:
    """A Python sockaddr of ``family`` as (ip_address, port); NOSYS for
    families other than IPv4/IPv6 (WasmEdge's answer)."""
    if family == socket.AF_INET:
        host, port = address
    elif family == socket.AF_INET6:
        host, port = address[0], address[1]
    else:
        raise WasiError(Errno.NOSYS)
    return ipaddress.ip_address(host.split("%", 1)[0]), port


def python_sockaddr(family: int, ip: IPAddress, port: int) -> Any:
    """The Python sockaddr for ``ip:port`` on a socket of ``family``.

    AFNOSUPPORT when the address does not fit the socket (an IPv4 address on
    an IPv6 socket must be written in its ``::ffff:a.b.c.d`` form)."""
    if family == socket.AF_INET and ip.version == 4:
        return (str(ip), port)
    if family == socket.AF_INET6 and ip.version == 6:
        return (str(ip), port, 0, 0)
    raise WasiError(Errno.AFNOSUPPORT)


def wasi_family(ip: IPAddress) -> AddressFamily:
    return AddressFamily.INET4 if ip.version == 4 else AddressFamily.INET6


# -- creating entries -----------------------------------------------------------------


def socket_entry_for_guest(family: int, kind: int) -> SocketEntry:
    """A new unbound socket the guest opened (``sock_open``)."""
    sock = socket.socket(family, kind)
    try:
        return SocketEntry(sock, rights_base=RIGHTS_SOCKET_LISTENER)
    except BaseException:
        sock.close()
        raise


def accepted_entry(conn: Union[socket.socket, SocketEntry], fdflags: int) -> SocketEntry:
    """The entry for a connection the guest accepted (no SOCK_ACCEPT right):
    a host socket becomes a :class:`SocketEntry`; an entry the host made
    (a :class:`ConnectionSource` may hand out TLS connections, or entries
    it counts) is used as it is, with the guest's ``fdflags``."""
    if isinstance(conn, SocketEntry):
        conn.fdflags = fdflags
        return conn
    try:
        return SocketEntry(conn, rights_base=RIGHTS_SOCKET, fdflags=fdflags)
    except BaseException:
        conn.close()
        raise


def check_listener_spec(item: Any) -> None:
    """TypeError/ValueError unless ``item`` can be a pre-opened listener: an
    object with ``fileno()`` (a ``socket.socket`` or ``trio.socket`` socket),
    a ``(host, port)`` pair, or a :class:`ConnectionSource` (connections
    handed over by the host, see :class:`HandedListenerEntry`)."""
    if _is_source(item):
        return
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[0], str) or isinstance(item[1], bool) or not isinstance(item[1], int):
            raise TypeError(f"a listener address must be (host: str, port: int), not {item!r}")
        if not 0 <= item[1] <= 65535:
            raise ValueError(f"listener port out of range: {item!r}")
        return
    if not callable(getattr(item, "fileno", None)):
        raise TypeError(
            f"a listener must be a listening socket (socket.socket or trio.socket) or a (host, port) pair, "
            f"not {type(item).__name__}")


def listener_entry(item: Any, backlog: int = 128) -> SocketEntry:
    """A pre-opened listener entry for ``item`` (see :func:`check_listener_spec`).

    A socket object is duplicated (``os.dup``): the context owns and closes
    its copy, the caller keeps theirs, and one socket can serve many
    instances (each accepts from the same queue). Its file description is
    switched to non-blocking mode, which the caller's object shares (trio
    sockets already are). A ``(host, port)`` pair is bound and listened on
    here, with SO_REUSEADDR; port 0 picks a free port (see
    ``WasiContext.listener_addresses()``). ValueError if the socket is not a
    listening stream socket. A :class:`ConnectionSource` gets a
    :class:`HandedListenerEntry`."""
    check_listener_spec(item)
    if _is_source(item):
        return HandedListenerEntry(item)
    if isinstance(item, tuple):
        sock = _bind_listener(item[0], item[1], backlog)
    else:
        sock = _duplicate(item)
    try:
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ValueError(f"pre-opened listener {item!r} is not a listening stream socket")
        return SocketEntry(sock, rights_base=RIGHTS_SOCKET_LISTENER, preopened=True)
    except BaseException:
        sock.close()
        raise


def _is_source(item: Any) -> bool:
    return callable(getattr(item, "take", None)) and callable(getattr(item, "wait", None)) \
        and hasattr(item, "listener")


def _duplicate(item: Any) -> socket.socket:
    fd = os.dup(item.fileno())
    try:
        return socket.socket(fileno=fd)
    except OSError as exc:  # not a socket (ENOTSOCK): say so, and do not leak the copy
        os.close(fd)
        raise ValueError(f"pre-opened listener {item!r} is not a socket ({exc})") from None
    except BaseException:
        os.close(fd)
        raise


def _bind_listener(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host not in ("", "localhost") and ":" not in host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=backlog)


class NetState:
    """Per-context networking state: the policy, the edge-triggered poller
    ``epoll_oneoff`` creates on first use, and the level-triggered one
    ``poll_oneoff`` uses for many fds (both closed with the context)."""

    def __init__(self, policy: NetPolicy) -> None:
        self.policy = policy
        self.edge_poller: Optional[Any] = None
        self.level_poller: Optional[Any] = None

    def close(self) -> None:
        for name in ("edge_poller", "level_poller"):
            poller = getattr(self, name)
            setattr(self, name, None)
            if poller is not None:
                poller.close()
