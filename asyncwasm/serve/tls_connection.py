"""A TLS connection over a host socket: a trio stream for host code, one fd
entry for a guest.

    >>> conn = TlsConnection(sock, tls_config.session())
    >>> await conn.handshake()                       # in the host, before any guest
    >>> entry = TlsEntry(conn)                       # the guest's fd: plaintext
    >>> data = await conn.receive_some()             # or: host code as a trio Stream

Strategy: :class:`TlsConnection` moves ciphertext between a non-blocking
socket and a sans-IO :class:`~asyncwasm.serve.tls.TlsSession`, and keeps two
buffers: plaintext decrypted but not yet read (``buffered``), and
ciphertext not yet taken by the kernel. Its non-blocking core
(:meth:`~TlsConnection.read_into`, :meth:`~TlsConnection.write`,
:meth:`~TlsConnection.flush`) never waits; the guest's entry and the
``trio.abc.Stream`` methods are both built on it, so the HTTP handler mode
can serve TLS connections with the same object.

Rules:

- Readiness to read is "plaintext buffered, or the socket readable": the
  entry answers ``poll_oneoff`` by decrypting what the socket holds now,
  and is ready when that gave plaintext or the stream ended. An incomplete
  record is not ready (no spurious wake-ups).
- Buffers are bounded: nothing more is read from the socket while
  :data:`PLAINTEXT_LIMIT` bytes wait for the reader, and a writer is held
  (AGAIN, or waits) while :data:`CIPHERTEXT_LIMIT` bytes wait for the
  kernel. A blocking guest ``send`` returns once its bytes are in the
  kernel, as on a plain socket.
- A broken session (a bad record, a reset) reads as a reset connection
  (``ECONNRESET``); the peer's close_notify or the end of the transport
  reads as end of stream.
- Closing sends close_notify; what the kernel cannot take at once is sent
  by a system task for up to :data:`LINGER` seconds, as the kernel would
  for a plain socket's unsent data.
"""

from __future__ import annotations

import errno
import math
import socket
from typing import Any, Callable, Optional, Union

import trio

from ..hostnet import format_address
from ..wasi.abi import RIGHTS_SOCKET, Errno, Eventrwflags, SockOpt, WasiError
from ..wasi.fdtable import Readiness
from ..wasi.later import Later
from ..wasi.sockets import RecvResult, SocketEntry, close_socket
from .tls import TlsError, TlsSession

__all__ = ["TlsConnection", "TlsEntry", "HandshakeFailed", "Handshakes", "HANDSHAKE_FAILURES", "PLAIN_HTTP_REPLY"]

PLAINTEXT_LIMIT = 65536
CIPHERTEXT_LIMIT = 131072
LINGER = 5.0
_READ_SIZE = 65536
_MSG_NOSIGNAL = int(socket.MSG_NOSIGNAL)
_HANGUP = int(Eventrwflags.FD_READWRITE_HANGUP)
_PEEK = int(socket.MSG_PEEK)

#: The answer to a client that speaks plain HTTP to the TLS port (as nginx's 497).
PLAIN_HTTP_REPLY = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                    b"Content-Length: 47\r\n\r\nThis port speaks HTTPS: use an https:// URL.\r\n\r\n")


#: Why a TLS handshake failed (:attr:`HandshakeFailed.reason`, the keys of ``Handshakes.failed``).
HANDSHAKE_FAILURES = ("timeout", "plain_http", "aborted", "protocol")
# At most this many handshake failures are logged per window; the rest are counted.
_FAILURE_LOG_LINES = 10
_FAILURE_LOG_WINDOW = 10.0


class HandshakeFailed(Exception):
    """The handshake did not complete; ``reason`` is one of ``timeout``,
    ``plain_http``, ``aborted``, ``protocol``; the message one line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Handshakes:
    """The server side of every TLS handshake of one server (socket mode's
    handoff, handler mode's connections): each completes within the
    configuration's timeout, is counted (``ok``, ``failed`` by reason), and
    a failure is logged, at most ten lines per ten seconds (a scan or a
    flood of plain-HTTP clients cannot fill the log), then closed: a plain
    400 for a plain-HTTP client, the TLS alert for the rest.

        >>> handshakes = Handshakes(tls_config, log)
        >>> connection = await handshakes.complete(sock, peer)   # None: failed, counted, closed
    """

    def __init__(self, tls: Any, log: Callable[[str], None] = lambda line: None) -> None:
        self.tls = tls
        self.log = log
        self.ok = 0
        self.failed = dict.fromkeys(HANDSHAKE_FAILURES, 0)
        self._window = (-_FAILURE_LOG_WINDOW, 0, 0)  # start, logged, not logged

    async def complete(self, sock: socket.socket, peer: Any) -> Optional["TlsConnection"]:
        """The connection once its handshake is done (``sock`` is now its);
        None when it failed. Cancelled: the connection is closed, and the
        cancellation goes on."""
        connection = TlsConnection(sock, self.tls.session())
        try:
            await connection.handshake(self.tls.handshake_timeout)
        except HandshakeFailed as exc:
            self.failed[exc.reason] += 1
            self._log_failure(peer, exc)
            connection.fail(exc)
            return None
        except BaseException:  # cancelled: the server stops
            connection.fail(HandshakeFailed("aborted", "the server is shutting down"))
            raise
        self.ok += 1
        return connection

    def _log_failure(self, peer: Any, exc: HandshakeFailed) -> None:
        start, logged, hidden = self._window
        now = trio.current_time()
        if now - start >= _FAILURE_LOG_WINDOW:
            if hidden:
                self.log(f"TLS: {hidden} more handshake failure(s) not logged in {_FAILURE_LOG_WINDOW:g} s")
            start, logged, hidden = now, 0, 0
        if logged < _FAILURE_LOG_LINES:
            self.log(f"TLS handshake from {format_address(peer)} failed: {exc}")
            logged += 1
        else:
            hidden += 1
        self._window = (start, logged, hidden)


class TlsConnection(trio.abc.Stream):
    """One TLS connection, server side, over a connected socket it owns."""

    def __init__(self, sock: socket.socket, session: TlsSession) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.session = session
        self._plain = bytearray()   # decrypted, not yet read
        self._out = bytearray()     # ciphertext the kernel has not taken yet
        self.ended = False          # no more plaintext will come
        self.broken: Optional[str] = None
        self.received = 0           # ciphertext bytes, both ways
        self.sent = 0
        self._transport_ended = False
        self._closed = False

    # -- the non-blocking core --------------------------------------------------
    def _read_socket(self) -> None:
        """Feed the session what the socket holds now (never waits)."""
        if self._transport_ended:
            return
        try:
            data = self.sock.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:  # reset by the peer
            self.broken = self.broken or (exc.strerror or str(exc))
            self._transport_ended = True
            self.session.receive_eof()
            return
        if not data:
            self._transport_ended = True
            self.session.receive_eof()
            return
        self.received += len(data)
        self.session.receive(data)

    def pull(self) -> None:
        """Decrypt what has arrived into the plaintext buffer, up to its limit."""
        if self.ended or self.broken is not None or len(self._plain) >= PLAINTEXT_LIMIT:
            return
        self._read_socket()
        session = self.session
        try:
            while len(self._plain) < PLAINTEXT_LIMIT:
                chunk = session.recv(_READ_SIZE)
                if chunk is None:
                    break
                if not chunk:
                    self.ended = True
                    break
                self._plain += chunk
        except TlsError as exc:
            self.broken = str(exc)
            self._queue_outgoing()  # the alert

    @property
    def buffered(self) -> int:
        """Plaintext bytes decrypted and waiting for the reader."""
        return len(self._plain)

    def readable_now(self) -> bool:
        """Plaintext is there, or the stream ended or broke (a read would not wait)."""
        if not self._plain:
            self.pull()
        return bool(self._plain) or self.ended or self.broken is not None

    def read_into(self, buffers: list[memoryview], peek: bool = False) -> Optional[int]:
        """Copy buffered plaintext into ``buffers``: the count, 0 at the end
        of the stream, None when none is there yet. ConnectionResetError
        once the session broke."""
        if not self._plain:
            self.pull()
        plain = self._plain
        if not plain:
            if self.broken is not None:
                raise ConnectionResetError(errno.ECONNRESET, f"TLS: {self.broken}")
            return 0 if self.ended else None
        done = 0
        for buf in buffers:
            part = plain[done:done + len(buf)]
            buf[:len(part)] = part
            done += len(part)
            if done >= len(plain):
                break
        if not peek:
            del plain[:done]
        return done

    def _queue_outgoing(self) -> None:
        out = self.session.take_outgoing()
        if out:
            self._out += out

    def flush(self) -> bool:
        """Give the kernel what ciphertext it takes now; True once none is left.
        OSError (EPIPE, ECONNRESET) when the peer is gone."""
        out = self._out
        while out:
            try:
                n = self.sock.send(out, _MSG_NOSIGNAL)
            except BlockingIOError:
                return False
            self.sent += n
            del out[:n]
        return True

    def write(self, data: Union[bytes, memoryview]) -> Optional[int]:
        """Encrypt as much of ``data`` as the ciphertext buffer has room for
        and flush; the plaintext count taken, or None when there is no room
        now. OSError when the connection is gone."""
        if self.broken is not None:
            raise ConnectionResetError(errno.ECONNRESET, f"TLS: {self.broken}")
        self.flush()
        room = CIPHERTEXT_LIMIT - len(self._out)
        if room <= 0:
            return None
        n = min(len(data), room)
        try:
            self._out += self.session.encrypt(data[:n])
        except TlsError as exc:
            self.broken = str(exc)
            raise ConnectionResetError(errno.ECONNRESET, f"TLS: {exc}") from None
        self.flush()
        return n

    @property
    def unsent(self) -> int:
        """Ciphertext bytes waiting for the kernel."""
        return len(self._out)

    # -- waiting -------------------------------------------------------------------
    async def wait_readable(self) -> None:
        """Until a read may not wait (checkpoints even when it is at once)."""
        if self._plain or self.ended or self.broken is not None:
            await trio.lowlevel.checkpoint()
            return
        try:
            await trio.lowlevel.wait_readable(self.sock)
        except trio.ClosedResourceError:
            await trio.lowlevel.checkpoint()

    async def wait_writable(self) -> None:
        try:
            await trio.lowlevel.wait_writable(self.sock)
        except trio.ClosedResourceError:
            await trio.lowlevel.checkpoint()

    async def drain(self) -> None:
        """Until every ciphertext byte is in the kernel."""
        while not self.flush():
            await self.wait_writable()

    # -- the handshake ---------------------------------------------------------------
    async def handshake(self, timeout: float = 10.0) -> None:
        """Complete the server handshake within ``timeout`` seconds, or raise
        :class:`HandshakeFailed` (the socket stays open: :meth:`fail` or
        :meth:`aclose` it)."""
        with trio.move_on_after(timeout) as scope:
            await self._handshake()
            return
        assert scope.cancelled_caught
        raise HandshakeFailed("timeout", f"no TLS handshake within {timeout:g} s")

    async def _handshake(self) -> None:
        session = self.session
        while True:
            self._read_socket()
            try:
                done = session.do_handshake()
            except TlsError as exc:
                self._queue_outgoing()  # the alert
                reason = "plain_http" if session.looks_like_plain_http() else \
                    "aborted" if self._transport_ended else "protocol"
                raise HandshakeFailed(reason, str(exc)) from None
            self._queue_outgoing()
            try:
                await self.drain()
            except OSError as exc:
                raise HandshakeFailed("aborted", f"the client went away: {exc.strerror or exc}") from None
            if done:
                return
            if self._transport_ended:
                raise HandshakeFailed("aborted", "the client closed the connection during the handshake")
            await trio.lowlevel.wait_readable(self.sock)

    def fail(self, error: HandshakeFailed) -> None:
        """Close after a failed handshake: the alert, or for a plain-HTTP
        client a plain 400 saying to use https (never waits)."""
        if error.reason == "plain_http":
            self._out[:] = PLAIN_HTTP_REPLY
        try:
            self.flush()
        except OSError:
            pass
        self._close_socket()

    # -- trio.abc.Stream -------------------------------------------------------------
    async def receive_some(self, max_bytes: Optional[int] = None) -> bytes:
        """Plaintext, at least one byte; b"" at the end of the stream.
        trio.BrokenResourceError once the connection broke."""
        buffer = bytearray(max_bytes or _READ_SIZE)
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the TLS connection is closed")
            try:
                n = self.read_into([memoryview(buffer)])
            except ConnectionResetError as exc:
                raise trio.BrokenResourceError(str(exc)) from None
            if n is not None:
                await trio.lowlevel.checkpoint()
                return bytes(buffer[:n])
            await self.wait_readable()

    async def send_all(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Send all of ``data``; returns once it is in the kernel."""
        view = memoryview(data)
        done = 0
        try:
            while done < len(view):
                if self._closed:
                    raise trio.ClosedResourceError("the TLS connection is closed")
                n = self.write(view[done:])
                if n is None:
                    await self.wait_writable()
                else:
                    done += n
            await self.drain()
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from None
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        try:
            await self.drain()
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from None

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    # -- closing ------------------------------------------------------------------------
    def close_notify(self) -> bool:
        """Tell the peer no more data comes (TLS close_notify) and flush;
        True when the kernel took it all."""
        if self.broken is None:
            self.session.close()
            self._queue_outgoing()
        try:
            return self.flush()
        except OSError:
            return True

    def close(self) -> None:
        """Send close_notify and close; unsent ciphertext is finished by a
        system task for up to :data:`LINGER` seconds. Idempotent."""
        if self._closed:
            return
        if self.close_notify():
            self._close_socket()
            return
        self._closed = True
        try:
            trio.lowlevel.spawn_system_task(self._linger)
        except RuntimeError:  # outside trio: nothing can wait
            self._close_socket()

    async def _linger(self) -> None:
        with trio.move_on_after(LINGER):
            try:
                await self.drain()
            except OSError:
                pass
        self._close_socket()

    def _close_socket(self) -> None:
        self._closed = True
        close_socket(self.sock)

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.session.version if self.session.handshake_done else "handshake"
        return f"<TlsConnection {state}, {self.buffered} B buffered>"


class TlsEntry(SocketEntry):
    """The guest's fd for a :class:`TlsConnection`: a connected stream socket
    that reads and writes plaintext (``sock_recv``/``sock_send``,
    ``fd_read``/``fd_write``, ``poll_oneoff``). Addresses and socket options
    are the underlying socket's."""

    def __init__(self, connection: TlsConnection, fdflags: int = 0) -> None:
        super().__init__(connection.sock, rights_base=RIGHTS_SOCKET, fdflags=fdflags)
        self.connection = connection

    # byte counts are the connection's (ciphertext on the wire)
    @property
    def received(self) -> int:  # type: ignore[override]
        return self.connection.received

    @property
    def sent(self) -> int:  # type: ignore[override]
        return self.connection.sent

    @property
    def buffered(self) -> int:  # type: ignore[override]
        """Nonzero when a read would not wait although the socket may not
        poll readable: plaintext decrypted already, or the stream over."""
        connection = self.connection
        return connection.buffered or int(connection.ended or connection.broken is not None)

    def try_recv(self, buffers: list[memoryview], flags: int) -> Optional[RecvResult]:
        self.host_socket()  # BADF once closed
        n = self.connection.read_into(buffers, peek=bool(flags & _PEEK))
        return None if n is None else (n, 0, None)

    def recv(self, buffers: list[memoryview], flags: int = 0, *, waitall: bool = False) -> Any:
        if not buffers:
            return 0, 0, None
        return self._recv_general(buffers, flags, waitall)

    async def _wait(self, writable: bool) -> None:
        self.host_socket()
        if writable:
            await self.connection.wait_writable()
        else:
            await self.connection.wait_readable()

    def _try_send(self, buffers: list[memoryview], address: Any) -> Optional[int]:
        self.host_socket()
        data = buffers[0] if len(buffers) == 1 else memoryview(b"".join(buffers))
        return self.connection.write(data)

    def send(self, buffers: list[memoryview], address: Any = None) -> Any:
        if address is not None:
            raise WasiError(Errno.ISCONN)
        total = len(buffers[0]) if len(buffers) == 1 else sum(map(len, buffers))
        if total == 0:
            return 0
        n = self._try_send(buffers, None)
        if self.nonblocking:
            if n is None:
                raise WasiError(Errno.AGAIN)
            return n
        if n == total and not self.connection.unsent:
            return n
        return Later(self._send_rest, buffers, n or 0, total)

    async def _send_rest(self, buffers: list[memoryview], done: int, total: int) -> int:
        """A blocking send's rest: returns once every byte is in the kernel,
        or what was taken when the guest's SO_SNDTIMEO passed (AGAIN if nothing)."""
        data = memoryview(b"".join(buffers)) if len(buffers) > 1 else buffers[0]
        connection = self.connection
        with trio.move_on_after(self._timeout(SockOpt.SNDTIMEO) or math.inf):
            while done < total:
                await connection.wait_writable()
                self.host_socket()
                n = connection.write(data[done:])
                done += n or 0
            while not connection.flush():
                await connection.wait_writable()
                self.host_socket()
            return total
        if done:
            return done
        raise WasiError(Errno.AGAIN)

    def shutdown(self, how: int) -> None:
        sock = self.host_socket()
        if how != socket.SHUT_RD and not self.connection.close_notify():
            # close_notify is still queued: shutting the socket's write side
            # now would lose it; it goes out with the next flush or the close.
            if how == socket.SHUT_WR:
                return
            how = socket.SHUT_RD
        sock.shutdown(how)

    def poll_read(self) -> Readiness:
        self.host_socket()
        connection = self.connection
        if not connection.readable_now():
            return None
        hangup = _HANGUP if (connection.ended or connection.broken is not None) and not connection.buffered else 0
        return (connection.buffered, hangup)

    def poll_write(self) -> Readiness:
        self.host_socket()
        try:
            self.connection.flush()
        except OSError:
            return (0, _HANGUP)
        if self.connection.unsent >= CIPHERTEXT_LIMIT:
            return None
        return super().poll_write()

    async def wait_readable(self) -> None:
        if self.sock is None:
            await trio.lowlevel.checkpoint()
            return
        await self.connection.wait_readable()

    def close(self) -> None:
        if self.sock is None:
            return
        self.sock = None
        self.connection.close()

    def __del__(self) -> None:
        pass  # the connection owns the socket

    def __repr__(self) -> str:
        return f"<TlsEntry {self.connection!r}>"
