"""WASI preview1 sockets on real loopback sockets: pre-opened listeners,
sock_accept/recv/send/shutdown, fd_* on sockets, poll_oneoff, blocking vs
NONBLOCK, cancellation and closing. Every test uses 127.0.0.1 only, bounds
its waits with trio.fail_after, and stops by itself.

Helpers here (``_SockGuest``, ``_connect``...) are shared with
test_wasi_sock_wasmedge.py.
"""

from __future__ import annotations

import os
import socket
import time

import pytest
import trio

from .guests.harness import FakeGuest, load_wasi

wasi = load_wasi()
abi = wasi.abi
Errno = wasi.Errno
Rights = wasi.Rights
ET = abi.Eventtype
FuncType = type(wasi.FUNCTIONS["fd_write"].functype)
I32 = wasi.FUNCTIONS["fd_write"].functype.params[0]
NONBLOCK = int(abi.Fdflags.NONBLOCK)
HANGUP = int(abi.Eventrwflags.FD_READWRITE_HANGUP)
LOOPBACK = ("127.0.0.1", 0)
TIMEOUT = 5  # seconds any single wait in these tests may take at most
BIG = 16 << 20  # bytes: more than loopback socket buffers hold (tcp_wmem + tcp_rmem maxima)


class _SockGuest(FakeGuest):
    """FakeGuest plus socket conveniences (raw calls, results read back)."""

    def ext(self, name: str, nparams: int):
        """The function ``import_for`` links to an import ``name`` taking ``nparams`` i32s."""
        found = self.ctx.import_for(name, FuncType([I32] * nparams, [I32]))
        assert found is not None, name
        return found[1]

    def accept(self, fd: int, flags: int = 0):
        out = self.alloc(4)
        result = self.call("sock_accept", fd, flags, out)
        return result, out

    def recv(self, fd: int, n: int, flags: int = 0):
        buf = self.alloc(n)
        iovs, count = self.iovecs([(buf, n)])
        nread, oflags = self.alloc(4), self.alloc(4)
        result = self.call("sock_recv", fd, iovs, count, flags, nread, oflags)
        return result, (buf, nread, oflags)

    def received(self, where) -> tuple[bytes, int]:
        buf, nread, oflags = where
        return self.read(buf, self.u32(nread)), int.from_bytes(self.read(oflags, 2), "little")

    def send(self, fd: int, data: bytes):
        ptr, length = self.put(data)
        iovs, count = self.iovecs([(ptr, length)])
        out = self.alloc(4)
        return self.call("sock_send", fd, iovs, count, 0, out), out


def _guest(**config) -> _SockGuest:
    config.setdefault("listeners", [LOOPBACK])
    return _SockGuest(wasi.WasiConfig(**config), memory_size=BIG * 2 + (1 << 20))


def _port(guest: _SockGuest, fd: int = 3) -> int:
    return guest.ctx.listener_addresses()[fd][1]


async def _connect(port: int, host: str = "127.0.0.1") -> trio.SocketStream:
    with trio.fail_after(TIMEOUT):
        return await trio.open_tcp_stream(host, port)


async def _accepted(guest: _SockGuest, fd: int = 3, flags: int = 0) -> int:
    """Accept one connection (waiting for it if needed); the new guest fd."""
    result, out = guest.accept(fd, flags)
    if not isinstance(result, int):
        with trio.fail_after(TIMEOUT):
            result = await result
    assert result == Errno.SUCCESS
    return guest.u32(out)


async def _pair(guest: _SockGuest) -> tuple[trio.SocketStream, int]:
    client = await _connect(_port(guest))
    return client, await _accepted(guest)


async def _finish(result):
    if isinstance(result, int):
        return result
    with trio.fail_after(TIMEOUT):
        return await result


def _poll(guest, subs: bytes):
    from .test_wasi_poll import _poll as poll_helper

    return poll_helper(guest, subs)


def _events(guest, out, nevents):
    n = guest.u32(nevents)
    return [abi.EVENT.unpack(guest.read(out + 32 * i, 32)) for i in range(n)]


def _fd_sub(userdata, fd, kind=ET.FD_READ):
    data = bytearray(48)
    abi.SUBSCRIPTION_HEAD.pack_into(data, 0, userdata, kind)
    abi.SUBSCRIPTION_FD.pack_into(data, 16, fd)
    return bytes(data)


def _clock_sub(userdata, timeout_ns):
    data = bytearray(48)
    abi.SUBSCRIPTION_HEAD.pack_into(data, 0, userdata, ET.CLOCK)
    abi.SUBSCRIPTION_CLOCK.pack_into(data, 16, abi.Clockid.MONOTONIC, timeout_ns, 0, 0)
    return bytes(data)


# -- pre-opened listeners -------------------------------------------------------------


def test_listeners_follow_the_preopened_directories(tmp_path):
    with _guest(preopens=[(str(tmp_path), "/", False)], listeners=[LOOPBACK, ("::1", 0)]) as guest:
        addresses = guest.ctx.listener_addresses()
        assert sorted(addresses) == [4, 5]
        assert addresses[4][0] == "127.0.0.1" and addresses[5][0] == "::1"
        for fd in (4, 5):
            errno, (filetype, flags, base, inheriting) = guest.fdstat(fd)
            assert errno == Errno.SUCCESS and filetype == abi.Filetype.SOCKET_STREAM and flags == 0
            assert base & Rights.SOCK_ACCEPT and base & Rights.FD_READ and base & Rights.FD_WRITE
            assert guest.call("fd_prestat_get", fd, guest.alloc(8)) == Errno.BADF  # wasi-libc's scan stops here
        assert guest.fdstat(3)[1][0] == abi.Filetype.DIRECTORY


def test_listener_objects_are_duplicated_not_taken():
    with socket.create_server(LOOPBACK) as server:
        first, second = _guest(listeners=[server]), _guest(listeners=[server])
        try:
            assert first.ctx.listener_addresses()[3] == server.getsockname()
            assert second.ctx.listener_addresses()[3] == server.getsockname()
        finally:
            first.close()
            second.close()
        assert server.fileno() >= 0 and server.getsockname()[1] > 0  # still the caller's, still open


async def test_trio_socket_listener_serves_two_instances():
    listener = trio.socket.socket()
    await listener.bind(LOOPBACK)
    listener.listen()
    with listener, _guest(listeners=[listener]) as one, _guest(listeners=[listener]) as two:
        port = listener.getsockname()[1]
        clients = [await _connect(port), await _connect(port)]
        assert await _accepted(one) == 4 and await _accepted(two) == 4  # both queue entries served
        for client in clients:
            await client.aclose()


@pytest.mark.parametrize(
    "listener, error",
    [(object(), TypeError), (("127.0.0.1", 70000), ValueError), (("127.0.0.1", "80"), TypeError), ("x:1", TypeError)],
)
def test_bad_listener_values_are_refused(listener, error):
    with pytest.raises(error):
        wasi.WasiContext(wasi.WasiConfig(listeners=[listener]))


def test_a_file_is_not_a_listener(tmp_path):
    with open(tmp_path / "f", "wb") as file:
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(ValueError, match="not a socket"):
            wasi.WasiContext(wasi.WasiConfig(listeners=[file]))
        assert set(os.listdir("/proc/self/fd")) == before


def test_a_socket_that_is_not_listening_is_refused():
    with socket.socket() as sock:
        sock.bind(LOOPBACK)
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(ValueError, match="not a listening"):
            wasi.WasiContext(wasi.WasiConfig(listeners=[sock]))
        assert set(os.listdir("/proc/self/fd")) == before  # the duplicate was closed


# -- accept ------------------------------------------------------------------------------


async def test_accept_with_a_pending_connection_does_not_suspend():
    with _guest() as guest:
        client = await _connect(_port(guest))
        await trio.sleep(0.01)  # let the handshake land in the accept queue
        result, out = guest.accept(3, NONBLOCK)
        assert result == Errno.SUCCESS  # a plain int: no suspension
        fd = guest.u32(out)
        errno, (filetype, flags, base, _) = guest.fdstat(fd)
        assert filetype == abi.Filetype.SOCKET_STREAM and flags == NONBLOCK
        assert not base & Rights.SOCK_ACCEPT and base & Rights.SOCK_SHUTDOWN
        await client.aclose()


async def test_accept_waits_in_trio_for_a_connection():
    with _guest() as guest:
        result, out = guest.accept(3)
        assert not isinstance(result, int)
        async with trio.open_nursery() as nursery:
            clients = []

            async def dial():
                await trio.sleep(0.02)
                clients.append(await _connect(_port(guest)))

            nursery.start_soon(dial)
            assert await _finish(result) == Errno.SUCCESS
        assert guest.u32(out) == 4
        await clients[0].aclose()


async def test_accept_on_a_nonblocking_listener_is_again():
    with _guest() as guest:
        assert guest.call("fd_fdstat_set_flags", 3, NONBLOCK) == Errno.SUCCESS
        assert guest.accept(3)[0] == Errno.AGAIN


async def test_accept_checks_before_acting():
    with _guest() as guest:
        client, conn = await _pair(guest)
        assert guest.accept(conn)[0] == Errno.NOTCAPABLE  # a connection has no SOCK_ACCEPT
        assert guest.accept(3, 1 << 5)[0] == Errno.INVAL  # not an fdflag
        assert guest.call("sock_accept", 3, 0, 1 << 30) == Errno.FAULT
        assert guest.accept(1)[0] == Errno.NOTSOCK
        assert guest.accept(99)[0] == Errno.BADF
        await client.aclose()


async def test_accept_refuses_when_the_fd_table_is_full():
    with _guest(max_fds=4) as guest:
        client = await _connect(_port(guest))
        await trio.sleep(0.01)
        assert guest.accept(3)[0] == Errno.MFILE
        guest.call("fd_close", 2)
        assert await _accepted(guest) == 2  # the connection waited in the queue
        await client.aclose()


# -- recv / send -------------------------------------------------------------------------


async def test_recv_with_data_there_does_not_suspend():
    with _guest() as guest:
        client, conn = await _pair(guest)
        await client.send_all(b"hello")
        await trio.sleep(0.01)
        result, where = guest.recv(conn, 64)
        assert result == Errno.SUCCESS and guest.received(where) == (b"hello", 0)
        await client.aclose()


async def test_recv_without_data_waits_then_sees_end_of_stream():
    with _guest() as guest:
        client, conn = await _pair(guest)
        result, where = guest.recv(conn, 64)
        assert not isinstance(result, int)
        async with trio.open_nursery() as nursery:
            async def talk():
                await trio.sleep(0.02)
                await client.send_all(b"late")

            nursery.start_soon(talk)
            assert await _finish(result) == Errno.SUCCESS
        assert guest.received(where) == (b"late", 0)
        await client.aclose()
        result, where = guest.recv(conn, 64)
        assert await _finish(result) == Errno.SUCCESS and guest.received(where) == (b"", 0)


async def test_recv_on_a_nonblocking_socket_is_again():
    with _guest() as guest:
        client = await _connect(_port(guest))
        conn = await _accepted(guest, flags=NONBLOCK)
        assert guest.recv(conn, 8)[0] == Errno.AGAIN
        assert guest.call("fd_fdstat_set_flags", conn, 0) == Errno.SUCCESS  # blocking again
        assert not isinstance(guest.recv(conn, 8)[0], int)
        await client.aclose()


async def test_recv_peek_and_waitall():
    with _guest() as guest:
        client, conn = await _pair(guest)
        await client.send_all(b"abc")
        await trio.sleep(0.01)
        result, where = guest.recv(conn, 2, int(abi.Riflags.RECV_PEEK))
        assert result == Errno.SUCCESS and guest.received(where)[0] == b"ab"
        result, where = guest.recv(conn, 6, int(abi.Riflags.RECV_WAITALL))
        assert not isinstance(result, int)  # three bytes there, six wanted
        await client.send_all(b"def")
        assert await _finish(result) == Errno.SUCCESS and guest.received(where)[0] == b"abcdef"
        assert guest.recv(conn, 4, 4)[0] == Errno.INVAL  # unknown riflag
        await client.aclose()


async def test_send_blocks_until_everything_is_sent():
    with _guest() as guest:
        client, conn = await _pair(guest)
        data = os.urandom(BIG)
        result, out = guest.send(conn, data)
        assert not isinstance(result, int)
        received = bytearray()
        async with trio.open_nursery() as nursery:
            async def drain():
                while len(received) < len(data):
                    received.extend(await client.receive_some(1 << 16))

            nursery.start_soon(drain)
            assert await _finish(result) == Errno.SUCCESS
        assert guest.u32(out) == len(data) and bytes(received) == data
        await client.aclose()


async def test_send_on_a_nonblocking_socket_is_short_then_again():
    with _guest() as guest:
        client = await _connect(_port(guest))
        conn = await _accepted(guest, flags=NONBLOCK)
        data = bytes(BIG)
        result, out = guest.send(conn, data)
        assert result == Errno.SUCCESS and 0 < guest.u32(out) < len(data)
        assert guest.send(conn, data)[0] == Errno.AGAIN
        await client.aclose()


async def test_send_to_a_reset_peer_is_an_error_not_a_signal():
    with _guest() as guest:
        client, conn = await _pair(guest)
        client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # close = RST
        await client.aclose()
        await trio.sleep(0.05)
        errors = set()
        for _ in range(3):
            errno, _ = guest.send(conn, b"x" * 1000)
            errors.add(await _finish(errno))
        assert errors & {Errno.CONNRESET, Errno.PIPE}


async def test_fd_read_and_fd_write_work_on_sockets():
    with _guest() as guest:
        client, conn = await _pair(guest)
        assert guest.write(conn, b"via fd_write") == (Errno.SUCCESS, 12)
        with trio.fail_after(TIMEOUT):
            assert await client.receive_some(64) == b"via fd_write"
        await client.send_all(b"via fd_read")
        await trio.sleep(0.01)
        assert guest.read_fd(conn, 64) == (Errno.SUCCESS, b"via fd_read")
        errno, stat = guest.filestat(conn)
        assert errno == Errno.SUCCESS and stat[2] == abi.Filetype.SOCKET_STREAM
        await client.aclose()


async def test_shutdown_write_gives_the_peer_end_of_stream():
    with _guest() as guest:
        client, conn = await _pair(guest)
        assert guest.call("sock_shutdown", conn, 0) == Errno.INVAL
        assert guest.call("sock_shutdown", conn, 4) == Errno.INVAL
        assert guest.call("sock_shutdown", conn, int(abi.Sdflags.WR)) == Errno.SUCCESS
        with trio.fail_after(TIMEOUT):
            assert await client.receive_some(10) == b""
        assert guest.send(conn, b"x")[0] == Errno.PIPE
        assert guest.call("sock_shutdown", 3, 3) == Errno.NOTCONN  # would stop the shared listener
        await client.aclose()
        other = await _connect(_port(guest))
        assert await _accepted(guest) >= 0  # still listening
        await other.aclose()


async def test_fd_close_closes_the_host_socket():
    with _guest() as guest:
        client, conn = await _pair(guest)
        assert guest.call("fd_close", conn) == Errno.SUCCESS
        with trio.fail_after(TIMEOUT):
            assert await client.receive_some(10) == b""
        assert guest.recv(conn, 4)[0] == Errno.BADF
        await client.aclose()


# -- poll_oneoff ------------------------------------------------------------------------


async def test_poll_reports_a_pending_connection_and_data():
    with _guest() as guest:
        result, out, nevents = _poll(guest, _fd_sub(1, 3) + _clock_sub(9, 60 * 10**9))
        assert not isinstance(result, int)
        client = await _connect(_port(guest))
        assert await _finish(result) == Errno.SUCCESS
        assert [(e[0], e[1], e[2]) for e in _events(guest, out, nevents)] == [(1, 0, ET.FD_READ)]
        conn = await _accepted(guest)
        await client.send_all(b"12345")
        await trio.sleep(0.01)
        result, out, nevents = _poll(guest, _fd_sub(2, conn) + _fd_sub(3, conn, ET.FD_WRITE))
        assert result == Errno.SUCCESS  # ready now: no suspension
        events = _events(guest, out, nevents)
        assert [(e[0], e[1], e[3], e[4]) for e in events][0] == (2, 0, 5, 0)  # nbytes = FIONREAD
        assert events[1][0] == 3 and events[1][3] > 0  # free send-buffer space
        await client.aclose()


async def test_poll_times_out_on_a_silent_socket():
    with _guest() as guest:
        client, conn = await _pair(guest)
        result, out, nevents = _poll(guest, _fd_sub(1, conn) + _clock_sub(2, 20 * 10**6))
        assert await _finish(result) == Errno.SUCCESS
        assert [(e[0], e[2]) for e in _events(guest, out, nevents)] == [(2, ET.CLOCK)]
        await client.aclose()


async def test_poll_reports_hangup_and_bad_fds_per_event():
    with _guest() as guest:
        client, conn = await _pair(guest)
        client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        await client.aclose()  # RST: the connection is gone both ways
        await trio.sleep(0.05)
        result, out, nevents = _poll(guest, _fd_sub(1, conn) + _fd_sub(2, 77))
        assert await _finish(result) == Errno.SUCCESS
        events = {e[0]: e for e in _events(guest, out, nevents)}
        assert events[1][1] == 0 and events[1][4] & HANGUP
        assert events[2][1] == Errno.BADF


async def test_peer_half_close_is_readable_without_hangup():
    with _guest() as guest:
        client, conn = await _pair(guest)
        await client.send_eof()
        await trio.sleep(0.02)
        result, out, nevents = _poll(guest, _fd_sub(1, conn))
        assert result == Errno.SUCCESS
        (event,) = _events(guest, out, nevents)
        assert event[1] == 0 and not event[4] & HANGUP  # we may still answer
        assert guest.send(conn, b"answer")[0] == Errno.SUCCESS
        with trio.fail_after(TIMEOUT):
            assert await client.receive_some(10) == b"answer"
        await client.aclose()


async def test_poll_on_two_silent_sockets_wakes_for_the_one_that_gets_data():
    # Two fds waiting: not the one-fd wait of a server's usual (fd, timeout) call.
    with _guest() as guest:
        client1, conn1 = await _pair(guest)
        client2, conn2 = await _pair(guest)
        result, out, nevents = _poll(guest, _fd_sub(1, conn1) + _fd_sub(2, conn2))
        assert not isinstance(result, int)
        await client2.send_all(b"abc")
        assert await _finish(result) == Errno.SUCCESS
        assert [(e[0], e[1], e[2], e[3]) for e in _events(guest, out, nevents)] == [(2, 0, ET.FD_READ, 3)]
        await client1.aclose()
        await client2.aclose()


async def test_poll_wakes_with_badf_when_its_socket_is_closed():
    with _guest() as guest:
        client, conn = await _pair(guest)
        result, out, nevents = _poll(guest, _fd_sub(1, conn) + _clock_sub(2, 60 * 10**9))
        assert not isinstance(result, int)
        async with trio.open_nursery() as nursery:
            async def close_it():
                await trio.sleep(0.02)
                assert guest.call("fd_close", conn) == Errno.SUCCESS
            nursery.start_soon(close_it)
            assert await _finish(result) == Errno.SUCCESS
        assert [(e[0], e[1], e[2]) for e in _events(guest, out, nevents)] == [(1, Errno.BADF, ET.FD_READ)]
        await client.aclose()


async def test_poll_waiting_socket_and_timeout_reports_data_then_the_clock():
    # The one-fd wait with a deadline, twice on one socket: data first, then silence.
    with _guest() as guest:
        client, conn = await _pair(guest)
        result, out, nevents = _poll(guest, _clock_sub(9, 60 * 10**9) + _fd_sub(1, conn))
        await client.send_all(b"xy")
        assert await _finish(result) == Errno.SUCCESS
        assert [(e[0], e[1], e[2], e[3], e[4]) for e in _events(guest, out, nevents)] == [(1, 0, ET.FD_READ, 2, 0)]
        assert guest.recv(conn, 8)[0] == Errno.SUCCESS
        result, out, nevents = _poll(guest, _clock_sub(9, 10 * 10**6) + _fd_sub(1, conn))
        assert await _finish(result) == Errno.SUCCESS
        assert [(e[0], e[1], e[2]) for e in _events(guest, out, nevents)] == [(9, 0, ET.CLOCK)]
        await client.aclose()


# -- cancellation, timeouts and closing ---------------------------------------------------------


async def test_blocked_accept_and_recv_are_cancellable():
    with _guest() as guest:
        pending, _ = guest.accept(3)
        with trio.move_on_after(0.05) as scope:
            await pending
        assert scope.cancelled_caught
        client, conn = await _pair(guest)  # the listener still works
        pending, _ = guest.recv(conn, 8)
        with trio.move_on_after(0.05) as scope:
            await pending
        assert scope.cancelled_caught
        await client.send_all(b"still fine")
        result, where = guest.recv(conn, 64)
        assert await _finish(result) == Errno.SUCCESS and guest.received(where)[0] == b"still fine"
        await client.aclose()


async def test_closing_the_context_wakes_a_blocked_guest_with_badf():
    guest = _guest()
    client, conn = await _pair(guest)
    pending, _ = guest.recv(conn, 8)
    listener_fd = guest.ctx.fds.get(3).host_fd
    async with trio.open_nursery() as nursery:
        outcome = []

        async def blocked():
            outcome.append(await _finish(pending))

        nursery.start_soon(blocked)
        await trio.sleep(0.02)
        guest.close()
    assert outcome == [Errno.BADF]
    with pytest.raises(OSError):
        os.fstat(listener_fd)  # the context's listener copy is closed
    with trio.fail_after(TIMEOUT):
        assert await client.receive_some(10) == b""
    await client.aclose()


async def test_receive_timeout_ends_a_blocking_recv_with_again(autojump_clock):
    with _guest() as guest:
        client, conn = await _pair(guest)
        timeval = (2).to_bytes(8, "little") + (500_000).to_bytes(8, "little")
        ptr, _ = guest.put(timeval)
        setsockopt = guest.ext("sock_setsockopt", 5)
        assert setsockopt(conn, 0, int(abi.SockOpt.RCVTIMEO), ptr, 16) == Errno.SUCCESS
        pending, _ = guest.recv(conn, 8)
        start = trio.current_time()
        assert await pending == Errno.AGAIN
        assert trio.current_time() - start == pytest.approx(2.5)
        await client.aclose()


def test_socket_calls_work_without_trio_when_nothing_waits():
    with _guest() as guest, socket.create_connection(("127.0.0.1", _port(guest)), timeout=TIMEOUT) as client:
        assert guest.call("fd_fdstat_set_flags", 3, NONBLOCK) == Errno.SUCCESS
        deadline = time.monotonic() + TIMEOUT
        while (accepted := guest.accept(3))[0] == Errno.AGAIN and time.monotonic() < deadline:
            time.sleep(0.01)
        result, out = accepted
        assert result == Errno.SUCCESS
        conn = guest.u32(out)
        assert guest.send(conn, b"ok")[0] == Errno.SUCCESS  # buffer space: no waiting, no trio needed
        assert client.recv(10) == b"ok"
