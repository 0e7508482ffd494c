"""poll_oneoff over many sockets (what http_server_poll does with every
connection): from 4 subscriptions on it asks one per-context level-triggered
epoll set instead of one poll() and one trio task per fd. Readiness, hang-ups,
errors per subscription, and a guest fd closed and its host fd number reused
must all come out as with few subscriptions."""

from __future__ import annotations

import socket

import pytest
import trio

from asyncwasm.serve.handoff import Handoff

from .guests.harness import FakeGuest, load_wasi
from .test_wasi_poll import _events, _poll, clock_sub, fd_sub

wasi = load_wasi()
abi = wasi.abi
Errno = wasi.Errno
ET = abi.Eventtype
TIMEOUT = 10


def _accept(guest: FakeGuest, listener_fd: int) -> int:
    ro_fd = guest.alloc(4)
    assert guest.call("sock_accept", listener_fd, 0, ro_fd) == Errno.SUCCESS
    return guest.u32(ro_fd)


def _connections(guest: FakeGuest, port: int, count: int) -> tuple[list[socket.socket], list[int]]:
    clients, fds = [], []
    for _ in range(count):
        clients.append(socket.create_connection(("127.0.0.1", port)))
        fds.append(_accept(guest, 3))
    return clients, fds


async def test_many_sockets_one_ready_then_hangup_then_reused_fd():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with FakeGuest(wasi.WasiConfig(listeners=[listener])) as guest:
        clients, fds = _connections(guest, port, 6)
        subs = b"".join(fd_sub(100 + i, fd) for i, fd in enumerate(fds)) + fd_sub(99, 77)  # 77: not open
        with trio.fail_after(TIMEOUT):
            # Nothing readable: only the bad fd's error comes back, at once.
            result, out, nevents = _poll(guest, subs)
            assert result == Errno.SUCCESS
            assert [(e[0], e[1]) for e in _events(guest, out, nevents)] == [(99, Errno.BADF)]

            # Without the bad fd it waits, and wakes for the one that gets data.
            subs = subs[:-48]
            result, out, nevents = _poll(guest, subs)
            assert not isinstance(result, int)

            async def send_later() -> None:
                await trio.sleep(0.05)
                clients[4].sendall(b"hello")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_later)
                assert await result == Errno.SUCCESS
            assert [(e[0], e[1], e[2], e[3]) for e in _events(guest, out, nevents)] == [(104, 0, ET.FD_READ, 5)]

            # Level-triggered: still reported while unread; writes are ready; a closed peer hangs up.
            clients[1].close()
            result, out, nevents = _poll(guest, subs + fd_sub(200, fds[0], ET.FD_WRITE))
            got = {e[0]: e for e in _events(guest, out, nevents)}
            assert set(got) == {101, 104, 200}
            assert got[104][3] == 5 and got[200][2] == ET.FD_WRITE

            # Close guest fd of connection 2; the next accepted connection may
            # reuse its host fd number: its readiness must still be seen.
            assert guest.call("fd_close", fds[2]) == Errno.SUCCESS
            clients[2].close()
            newcomer = socket.create_connection(("127.0.0.1", port))
            new_fd = _accept(guest, 3)
            newcomer.sendall(b"x")
            watch = [fds[0], fds[3], fds[5], new_fd]
            result, out, nevents = _poll(guest, b"".join(fd_sub(300 + i, fd) for i, fd in enumerate(watch))
                                         + clock_sub(1, 5_000_000_000))
            if not isinstance(result, int):
                result = await result
            assert result == Errno.SUCCESS
            assert [(e[0], e[3]) for e in _events(guest, out, nevents)] == [(303, 1)]
        for client in clients + [newcomer]:
            client.close()
    listener.close()


async def test_many_sockets_clock_fires_when_nothing_is_ready(autojump_clock):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with FakeGuest(wasi.WasiConfig(listeners=[listener])) as guest:
        clients, fds = _connections(guest, port, 5)
        result, out, nevents = _poll(guest, b"".join(fd_sub(i, fd) for i, fd in enumerate(fds))
                                     + clock_sub(42, 2_000_000_000))
        start = trio.current_time()
        assert await result == Errno.SUCCESS
        assert trio.current_time() - start >= 1.9
        assert [(e[0], e[2]) for e in _events(guest, out, nevents)] == [(42, ET.CLOCK)]
        for client in clients:
            client.close()
    listener.close()


@pytest.mark.parametrize("busy", [1, 4], ids=["few-subscriptions", "many-subscriptions"])
async def test_busy_poller_sees_and_accepts_new_connections_on_a_handoff_listener(busy):
    # A guest serving many connections from one poll loop: other fds are
    # always ready, so poll_oneoff never parks and the guest never waits in
    # the handoff, which accepts only for waiting guests. Its listener must
    # still be ready while the kernel's backlog holds a connection, and a
    # non-blocking sock_accept must take it at once (it used to sit in the
    # backlog until the guest next had nothing to do: up to a second).
    handoff = Handoff.bind(["127.0.0.1:0"])
    port = handoff.addresses()[0][1]
    busy_listener = socket.create_server(("127.0.0.1", 0))
    with FakeGuest(wasi.WasiConfig(listeners=[handoff, busy_listener])) as guest:
        assert guest.call("fd_fdstat_set_flags", 3, abi.Fdflags.NONBLOCK) == Errno.SUCCESS
        ro_fd = guest.alloc(4)
        assert guest.call("sock_accept", 3, 0, ro_fd) == Errno.AGAIN  # nothing yet
        # fd 4 stays readable: a connection waits in its backlog, never accepted
        busy_client = socket.create_connection(busy_listener.getsockname())
        subs = fd_sub(3, 3) + b"".join(fd_sub(40 + i, 4) for i in range(busy)) + clock_sub(1, 5_000_000_000)
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(handoff.accept_loop)
                await trio.sleep(0)  # the accept loop parks: no guest waits
                result, out, nevents = _poll(guest, subs)
                assert result == Errno.SUCCESS
                assert [e[0] for e in _events(guest, out, nevents)] == [40 + i for i in range(busy)]

                client = socket.create_connection(("127.0.0.1", port))  # in the backlog once this returns
                result, out, nevents = _poll(guest, subs)
                assert result == Errno.SUCCESS
                assert [e[0] for e in _events(guest, out, nevents)] == [3] + [40 + i for i in range(busy)]
                assert guest.call("sock_accept", 3, 0, ro_fd) == Errno.SUCCESS
                conn_fd = guest.u32(ro_fd)
                assert guest.call("sock_accept", 3, 0, ro_fd) == Errno.AGAIN  # only one was there
                assert guest.call("fd_close", conn_fd) == Errno.SUCCESS
                assert client.recv(10) == b""  # it was the guest's connection that closed

                # Once the source stops accepting, a connection left in the
                # backlog does not make the listener ready (no busy loop).
                late = socket.create_connection(("127.0.0.1", port))
                handoff.stop_accepting()
                result, out, nevents = _poll(guest, fd_sub(3, 3) + clock_sub(1, 0))
                assert result == Errno.SUCCESS
                assert [e[0] for e in _events(guest, out, nevents)] == [1]
                assert guest.call("sock_accept", 3, 0, ro_fd) == Errno.AGAIN
                late.close()
                nursery.cancel_scope.cancel()
        client.close()
        busy_client.close()
    busy_listener.close()
    handoff.close()
