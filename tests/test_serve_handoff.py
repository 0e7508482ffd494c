"""The handoff listener: one host accept loop, connections handed to the
guests waiting in ``sock_accept`` (asyncwasm.serve.handoff and
HandedListenerEntry in asyncwasm.wasi.sockets). Loopback only; every test
is bounded by trio.fail_after."""

from __future__ import annotations

import socket

import pytest
import trio

from asyncwasm.serve.handoff import Handoff
from asyncwasm.wasi import WasiConfig, WasiContext
from asyncwasm.wasi.abi import Errno, Fdflags, Filetype, WasiError
from asyncwasm.wasi.sockets import HandedListenerEntry, SocketEntry

TIMEOUT = 10


async def _connect(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def _accept_in_entry(entry: HandedListenerEntry) -> socket.socket:
    """The host socket of the connection the guest's listener hands over
    (an entry the handoff made, so it can count the connection)."""
    got = entry.accept()
    if not isinstance(got, SocketEntry):
        got = await got
    assert isinstance(got, SocketEntry)
    return got.sock


async def test_connections_go_to_waiting_guests_only():
    handoff = Handoff.bind(["127.0.0.1:0"])
    port = handoff.addresses()[0][1]
    entries = [HandedListenerEntry(handoff) for _ in range(3)]
    got: list[socket.socket] = []
    clients = []
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handoff.accept_loop)
            # No guest waits: connections stay in the kernel's backlog.
            for _ in range(3):
                clients.append(await _connect(port))
            await trio.sleep(0.05)
            assert handoff.accepted == 0 and handoff.pending == 0

            async def guest(entry: HandedListenerEntry) -> None:
                got.append(await _accept_in_entry(entry))

            for entry in entries:
                nursery.start_soon(guest, entry)
            while len(got) < 3:
                await trio.sleep(0.01)
            assert handoff.accepted == 3 and handoff.waiting == 0
            # Each guest has its own connection, and it works.
            assert len({conn.fileno() for conn in got}) == 3
            for client in clients:
                await client.send_all(b"ping")
            for conn in got:
                conn.setblocking(True)
                assert conn.recv(10) == b"ping"
            nursery.cancel_scope.cancel()
    for conn in got:
        conn.close()
    for client in clients:
        await client.aclose()
    for entry in entries:
        entry.close()
    handoff.close()


async def test_entry_looks_like_a_listener_to_the_guest():
    handoff = Handoff.bind(["127.0.0.1:0"])
    port = handoff.addresses()[0][1]
    ctx = WasiContext(WasiConfig(listeners=[handoff]))
    try:
        entry = ctx.fds.get(3)
        assert isinstance(entry, HandedListenerEntry)
        assert entry.filetype == Filetype.SOCKET_STREAM and entry.preopened
        assert ctx.listener_addresses() == {3: ("127.0.0.1", port)}
        assert entry.local_address()[1] == port
        assert entry.host_fd is None  # readiness comes from the handoff, not an fd
        assert entry.poll_read() is None and entry.poll_write() is None
        with pytest.raises(WasiError) as info:
            entry.recv([memoryview(bytearray(4))])
        assert info.value.errno == Errno.NOTCONN
        entry.set_fdflags(int(Fdflags.NONBLOCK))
        with pytest.raises(WasiError) as info:
            entry.accept()
        assert info.value.errno == Errno.AGAIN
        # A pending connection makes it readable and is taken without waiting.
        entry.set_fdflags(0)
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(handoff.accept_loop)
                client = await _connect(port)
                await entry.wait_readable()  # registers as an idle guest: the loop accepts
                assert entry.poll_read() == (1, 0)
                conn = entry.accept()
                assert isinstance(conn, SocketEntry) and conn.sock.getpeername()
                conn.release()
                assert handoff.statistics()["active"] == 0
                await client.aclose()
                nursery.cancel_scope.cancel()
    finally:
        ctx.close()
        handoff.close()
    with pytest.raises(WasiError) as info:
        entry.accept()
    assert info.value.errno == Errno.BADF


async def test_cancelled_waiter_leaves_no_demand_and_stop_refuses():
    handoff = Handoff.bind(["127.0.0.1:0"])
    port = handoff.addresses()[0][1]
    entry = HandedListenerEntry(handoff)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handoff.accept_loop)
            with trio.move_on_after(0.05):
                await _accept_in_entry(entry)
            assert handoff.waiting == 0
            client = await _connect(port)  # in the backlog: nobody waits
            await trio.sleep(0.05)
            assert handoff.accepted == 0
            handoff.stop_accepting()
            await client.aclose()
            with pytest.raises(OSError):
                await _connect(port)
    entry.close()
    handoff.close()


async def test_several_listeners_feed_the_same_guests():
    handoff = Handoff.bind(["127.0.0.1:0", "127.0.0.1:0"])
    ports = [address[1] for address in handoff.addresses()]
    assert ports[0] != ports[1]
    entry = HandedListenerEntry(handoff)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handoff.accept_loop)
            for port in ports:
                client = await _connect(port)
                conn = await _accept_in_entry(entry)
                assert conn.getsockname()[1] == port
                conn.close()
                await client.aclose()
            nursery.cancel_scope.cancel()
    entry.close()
    handoff.close()


async def test_close_closes_connections_nobody_took():
    handoff = Handoff.bind(["127.0.0.1:0"])
    port = handoff.addresses()[0][1]
    entry = HandedListenerEntry(handoff)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handoff.accept_loop)
            client = await _connect(port)
            with trio.move_on_after(TIMEOUT) as scope:
                while not handoff.pending:
                    # a guest that registers demand, then leaves before taking
                    with trio.move_on_after(0.01):
                        await entry.wait_readable()
            assert not scope.cancelled_caught
            handoff.close()
            assert await client.receive_some(10) == b""  # closed by the host
            await client.aclose()
            nursery.cancel_scope.cancel()
    entry.close()


def test_listener_spec_accepts_a_handoff():
    handoff = Handoff.bind(["127.0.0.1:0"])
    try:
        WasiConfig(listeners=[handoff]).check()
    finally:
        handoff.close()
