"""The C path of the hot socket calls (_engine/wasi_sock.c, asyncwasm/wasi/fastpath.py).

A module whose exports call the WASI imports straight through runs them in
the engine, on a real instance memory; the same calls made from Python run
the Python functions. Each test checks that the C path gives what the
Python path gives (errno, bytes, events), that it really ran (no Python
frame), and that every rule stays: rights, NONBLOCK, bounds, counters,
closing, waiting and cancellation. Loopback only, every wait bounded.
"""

from __future__ import annotations

import gc
import socket
import sys
import time
import weakref

import pytest
import trio
import trio.testing

import asyncwasm
from asyncwasm._pacer import FixedPacer
from asyncwasm.serve.handoff import Handoff
from asyncwasm.wasi import fastpath
from asyncwasm.wasi.alarms import Alarms

from .test_wasi_sock import (
    BIG, ET, HANGUP, LOOPBACK, NONBLOCK, TIMEOUT, Errno, Rights, _clock_sub, _connect, _fd_sub, _SockGuest, abi,
)
from .wat import wat

pytestmark = pytest.mark.skipif(not fastpath.AVAILABLE, reason="the C socket path is Linux-only")

_CALLS = {"sock_recv": 6, "sock_send": 5, "fd_read": 4, "fd_write": 4, "poll_oneoff": 4, "sock_accept": 3}
_PAGES = (BIG * 2 + (1 << 20)) // 65536 + 1

_MODULE = wat(
    "(module\n"
    + "".join(f'  (import "wasi_snapshot_preview1" "{name}" (func ${name} (param {"i32 " * n}) (result i32)))\n'
              for name, n in _CALLS.items())
    + f'  (memory (export "memory") {_PAGES})\n'
    + "".join(f'  (func (export "{name}") (param {"i32 " * n}) (result i32) '
              + " ".join(f"local.get {i}" for i in range(n)) + f" call ${name})\n"
              for name, n in _CALLS.items())
    + ")"
)


class _Memory:
    """The instance's memory with FakeMemory's ``data`` (what the helpers read)."""

    def __init__(self, memory: asyncwasm.Memory) -> None:
        self.data = memory.view()


class _EngineGuest(_SockGuest):
    """``call`` goes through the module (the engine: C first), ``python`` straight to the Python function."""

    def __init__(self, **config) -> None:  # noqa: D107 - no FakeGuest.__init__: the memory is the instance's
        config.setdefault("listeners", [LOOPBACK])
        linker = asyncwasm.Linker()
        linker.define_wasi(asyncwasm.WasiConfig(**config))
        self.instance = linker.instantiate(asyncwasm.Module(_MODULE))
        self.ctx = self.instance.wasi
        self.memory = _Memory(self.instance.exports["memory"])
        self.functions = {name: func for name, (_, func) in self.ctx.imports().items()}
        self._next = 1024

    def call(self, name: str, *args: int):
        if name in _CALLS:
            return self.instance.exports[name](*args)
        return self.functions[name](*args)

    async def call_async(self, name: str, *args: int) -> int:
        with trio.fail_after(TIMEOUT):
            return await self.instance.exports[name].call_async(*args)

    def python(self, name: str, *args: int):
        return self.functions[name](*args)

    def close(self) -> None:
        self.instance.close()

    def fdstat_rights(self, fd: int, base: int) -> int:
        return self.call("fd_fdstat_set_rights", fd, base, 0)


async def _pair(guest: _EngineGuest, flags: int = NONBLOCK) -> tuple[trio.SocketStream, int]:
    client = await _connect(guest.ctx.listener_addresses()[3][1])
    out = guest.alloc(4)
    with trio.fail_after(TIMEOUT):
        assert await guest.call_async("sock_accept", 3, flags, out) == Errno.SUCCESS
    return client, guest.u32(out)


def _recv_args(guest: _EngineGuest, n: int, flags: int = 0):
    buf = guest.alloc(n)
    iovs, count = guest.iovecs([(buf, n)])
    nread, oflags = guest.alloc(4), guest.alloc(4)
    return (iovs, count, flags, nread, oflags), (buf, nread, oflags)


async def _arrived(client: trio.SocketStream, data: bytes) -> None:
    await client.send_all(data)
    await trio.sleep(0.02)  # on loopback the bytes are in the peer's queue by then


def test_the_wasi_functions_are_engine_calls_with_the_python_function_behind():
    with _EngineGuest() as guest:
        for name in fastpath.KINDS:
            func = guest.ctx.imports()[name][1]
            assert isinstance(func, asyncwasm._engine.SockCall) and func.__name__ == name
            assert func.fallback.__qualname__ == f"wasi_snapshot_preview1.{name}"
    traced = asyncwasm.wasi.WasiContext(asyncwasm.WasiConfig(trace=lambda *a: None))
    assert not isinstance(traced.imports()["sock_recv"][1], asyncwasm._engine.SockCall)  # a trace sees every call
    traced.close()


async def test_recv_and_send_run_in_c_and_count_their_bytes():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        entry = guest.ctx.fds.get(fd)
        assert entry.native is not None
        await _arrived(client, b"hello")
        args, where = _recv_args(guest, 16)
        recv, frames = guest.instance.exports["sock_recv"], []
        sys.setprofile(lambda frame, event, arg: frames.append(frame.f_code.co_name) if event == "call" else None)
        try:
            errno = recv(fd, *args)
        finally:
            sys.setprofile(None)
        assert errno == Errno.SUCCESS and frames == []  # no Python ran: the C path did the call
        assert guest.received(where) == (b"hello", 0)
        ptr, length = guest.put(b"world!")
        iovs, count = guest.iovecs([(ptr, 3), (ptr + 3, 3)])
        out = guest.alloc(4)
        assert guest.call("sock_send", fd, iovs, count, 0, out) == Errno.SUCCESS and guest.u32(out) == 6
        with trio.fail_after(TIMEOUT):
            assert await client.receive_some(16) == b"world!"
        assert (entry.received, entry.sent) == (5, 6)
        await _arrived(client, b"xy")
        assert guest.python("sock_recv", fd, *args) == Errno.SUCCESS  # the Python path counts on the same entry
        assert (entry.received, entry.sent) == (7, 6)
        guest.call("fd_close", fd)  # the C counts move to the entry when the fd goes
        assert entry.native is None and (entry.received, entry.sent) == (7, 6)


async def test_answer_times_run_from_a_requests_arrival_to_the_answer():
    fastpath.answer_times(False)  # empty, off
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        args, where = _recv_args(guest, 16)
        ptr, length = guest.put(b"ok")
        iovs, count = guest.iovecs([(ptr, length)])
        out = guest.alloc(4)
        await _arrived(client, b"off")  # not counted while off
        assert guest.call("sock_recv", fd, *args) == Errno.SUCCESS
        assert guest.call("sock_send", fd, iovs, count, 0, out) == Errno.SUCCESS
        with trio.fail_after(TIMEOUT):
            assert await client.receive_some(64) == b"ok"
        assert fastpath.answer_times(True) == []
        try:
            # The kernel starts time-stamping a socket's packets a little
            # after it is asked (the first recv turns it on): warm up.
            for _ in range(20):
                await _arrived(client, b"warm")
                assert guest.call("sock_recv", fd, *args) == Errno.SUCCESS
                assert guest.call("sock_send", fd, iovs, count, 0, out) == Errno.SUCCESS
                with trio.fail_after(TIMEOUT):
                    assert await client.receive_some(64) == b"ok"
                if fastpath.answer_times(True):
                    break
            else:
                pytest.fail("the kernel never time-stamped the connection's packets")
            for _ in range(3):
                await _arrived(client, b"ping")  # arrives, then sits 20 ms in the queue
                assert guest.call("sock_recv", fd, *args) == Errno.SUCCESS
                assert guest.received(where) == (b"ping", 0)
                assert guest.call("sock_send", fd, iovs, count, 0, out) == Errno.SUCCESS
                assert guest.call("sock_send", fd, iovs, count, 0, out) == Errno.SUCCESS  # a second send: no answer
            assert guest.call("sock_recv", fd, *args) == Errno.AGAIN
            got = b""
            with trio.fail_after(TIMEOUT):
                while len(got) < 12:
                    got += await client.receive_some(64)
            assert got == b"ok" * 6
            histogram = fastpath.answer_times(True)
        finally:
            fastpath.answer_times(False)
        assert sum(n for _, _, n in histogram) == 3
        assert all(low < high for low, high, _ in histogram)
        assert histogram[0][1] >= 0.016 and histogram[-1][0] < 1.0  # the 20 ms in the kernel's queue count
        median = fastpath.answer_percentile(histogram, 0.5)
        assert 0.016 <= median <= 1.25 and median in {high for _, high, _ in histogram}
        assert fastpath.answer_percentile([], 0.5) != fastpath.answer_percentile([], 0.5)  # nan
        assert fastpath.answer_times(False) == []  # read and emptied


async def test_nonblocking_empty_recv_is_again_and_a_blocking_one_waits():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        args, where = _recv_args(guest, 8)
        assert guest.call("sock_recv", fd, *args) == Errno.AGAIN == guest.python("sock_recv", fd, *args)
        guest.call("fd_fdstat_set_flags", fd, 0)  # blocking now: the mirror hears of it
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_arrived, client, b"late")
            assert await guest.call_async("sock_recv", fd, *args) == Errno.SUCCESS
        assert guest.received(where) == (b"late", 0)


async def test_peek_leaves_the_data_and_is_not_counted():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        await _arrived(client, b"abc")
        args, where = _recv_args(guest, 8, flags=int(abi.Riflags.RECV_PEEK))
        assert guest.call("sock_recv", fd, *args) == Errno.SUCCESS and guest.received(where) == (b"abc", 0)
        assert guest.ctx.fds.get(fd).received == 0
        args, where = _recv_args(guest, 2, flags=int(abi.Riflags.RECV_WAITALL))  # WAITALL: the Python path
        assert guest.call("sock_recv", fd, *args) == Errno.SUCCESS and guest.received(where) == (b"ab", 0)


async def test_rules_are_the_python_functions():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        await _arrived(client, b"data")
        args, _ = _recv_args(guest, 8)
        size = len(guest.memory.data)
        cases = [
            ("sock_recv", (99, *args), Errno.BADF),
            ("sock_recv", (1, *args), Errno.NOTSOCK),
            ("sock_recv", (fd, args[0], args[1], 0xFF, args[3], args[4]), Errno.INVAL),
            ("sock_recv", (fd, size - 4, 1, 0, args[3], args[4]), Errno.FAULT),
            ("sock_recv", (fd, args[0], args[1], 0, size - 2, args[4]), Errno.FAULT),
            ("sock_send", (fd, size - 4, 1, 0, args[3]), Errno.FAULT),
            ("fd_read", (fd, args[0], 2000, args[3]), Errno.INVAL),
        ]
        for name, call_args, errno in cases:
            assert guest.call(name, *call_args) == errno == guest.python(name, *call_args), (name, call_args)
        assert guest.fdstat_rights(fd, int(Rights.FD_WRITE)) == Errno.SUCCESS  # dropping FD_READ reaches C
        assert guest.call("sock_recv", fd, *args) == Errno.NOTCAPABLE
        assert guest.call("fd_read", fd, args[0], args[1], args[3]) == Errno.NOTCAPABLE
        assert guest.fdstat_rights(fd, int(Rights.FD_READ)) == Errno.NOTCAPABLE  # rights only shrink
        await client.aclose()


async def test_a_socket_python_closed_is_never_used_by_c():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        entry = guest.ctx.fds.get(fd)
        entry.sock.close()  # behind the table's back: its fd number may be reused at once
        with socket.socket() as other:  # likely the same host fd number
            args, _ = _recv_args(guest, 8)
            assert guest.call("sock_recv", fd, *args) == Errno.BADF
            ptr, length = guest.put(b"x")
            iovs, count = guest.iovecs([(ptr, length)])
            assert guest.call("sock_send", fd, iovs, count, 0, guest.alloc(4)) == Errno.BADF
            assert other.fileno() >= 0


async def test_fd_read_and_fd_write_on_a_socket():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        await _arrived(client, b"ping")
        buf = guest.alloc(8)
        iovs, count = guest.iovecs([(buf, 2), (buf + 2, 6)])
        out = guest.alloc(4)
        assert guest.call("fd_read", fd, iovs, count, out) == Errno.SUCCESS
        assert guest.read(buf, guest.u32(out)) == b"ping"
        ptr, length = guest.put(b"pong")
        iovs, count = guest.iovecs([(ptr, length)])
        assert guest.call("fd_write", fd, iovs, count, out) == Errno.SUCCESS and guest.u32(out) == 4
        with trio.fail_after(TIMEOUT):
            assert await client.receive_some(8) == b"pong"
        # fd_write to stdout (not a socket) is the Python function's
        ptr, length = guest.put(b"")
        iovs, count = guest.iovecs([(ptr, 0)])
        assert guest.call("fd_write", 1, iovs, count, out) == Errno.SUCCESS and guest.u32(out) == 0


async def test_nonblocking_send_to_a_full_buffer_is_partial_then_again():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        ptr = guest.alloc(BIG)
        iovs, count = guest.iovecs([(ptr, BIG)])
        out = guest.alloc(4)
        assert guest.call("sock_send", fd, iovs, count, 0, out) == Errno.SUCCESS
        assert 0 < guest.u32(out) < BIG
        for _ in range(100):  # the kernel may move some to the peer meanwhile: fill up again
            errno = guest.call("sock_send", fd, iovs, count, 0, out)
            if errno != Errno.SUCCESS:
                break
        assert errno == Errno.AGAIN
        await client.aclose()


async def test_a_blocking_send_c_started_finishes_in_python():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest, flags=0)
        data = bytes(range(256)) * (BIG // 256)
        ptr, length = guest.put(data)
        iovs, count = guest.iovecs([(ptr, length)])
        out = guest.alloc(4)
        got = bytearray()

        async def drain() -> None:
            while len(got) < length:
                got.extend(await client.receive_some(1 << 20))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            assert await guest.call_async("sock_send", fd, iovs, count, 0, out) == Errno.SUCCESS
        assert guest.u32(out) == length and got == data
        assert guest.ctx.fds.get(fd).sent == length


def _poll_args(guest: _EngineGuest, subs: list[bytes]):
    data = b"".join(subs)
    ptr, _ = guest.put(data)
    events, nevents = guest.alloc(32 * len(subs)), guest.alloc(4)
    return (ptr, events, len(subs), nevents), (events, nevents)


def _events(guest: _EngineGuest, where) -> list[tuple]:
    events, nevents = where
    return [abi.EVENT.unpack(guest.read(events + 32 * i, 32)) for i in range(guest.u32(nevents))]


async def test_poll_reports_every_ready_socket_as_python_does():
    with _EngineGuest() as guest:
        pairs = [await _pair(guest) for _ in range(6)]
        for client, _ in pairs[::2]:
            await _arrived(client, b"12345")
        subs = [_fd_sub(100 + i, fd) for i, (_, fd) in enumerate(pairs)] + [_clock_sub(7, 10**9)]
        args, where = _poll_args(guest, subs)
        assert guest.call("poll_oneoff", *args) == Errno.SUCCESS
        native = _events(guest, where)
        assert [(e[0], e[1], e[2], e[3]) for e in native] == [(100 + i, 0, int(ET.FD_READ), 5) for i in (0, 2, 4)]
        assert guest.python("poll_oneoff", *args) == Errno.SUCCESS and _events(guest, where) == native
        write = [_fd_sub(1, pairs[1][1], ET.FD_WRITE)]
        args, where = _poll_args(guest, write)
        assert guest.call("poll_oneoff", *args) == Errno.SUCCESS
        (event,) = _events(guest, where)
        assert event[:3] == (1, 0, int(ET.FD_WRITE)) and event[3] > 0
        await pairs[3][0].aclose()  # end of stream: readable (0 bytes)
        await trio.sleep(0.02)
        args, where = _poll_args(guest, [_fd_sub(3, pairs[3][1])])
        assert guest.call("poll_oneoff", *args) == Errno.SUCCESS
        assert _events(guest, where)[0][:4] == (3, 0, int(ET.FD_READ), 0)


async def test_poll_waits_in_trio_and_wakes_once_for_many():
    with _EngineGuest() as guest:
        pairs = [await _pair(guest) for _ in range(5)]
        subs = [_fd_sub(i, fd) for i, (_, fd) in enumerate(pairs)] + [_clock_sub(9, 5 * 10**9)]
        args, where = _poll_args(guest, subs)

        async def later() -> None:
            await trio.sleep(0.05)
            for client, _ in pairs[1:4]:
                await client.send_all(b"x")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            assert await guest.call_async("poll_oneoff", *args) == Errno.SUCCESS
        assert {e[0] for e in _events(guest, where)} <= {1, 2, 3}
        stats = guest.instance.statistics()
        assert stats.suspensions >= 1
        args, where = _poll_args(guest, [_clock_sub(4, 20_000_000)])
        start = trio.current_time()
        assert await guest.call_async("poll_oneoff", *args) == Errno.SUCCESS
        assert _events(guest, where) == [(4, 0, int(ET.CLOCK), 0, 0)] and trio.current_time() - start >= 0.015


async def test_a_guest_waiting_in_poll_is_cancelled_and_the_epoll_set_goes_with_its_fds():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        args, _ = _poll_args(guest, [_fd_sub(1, fd)])
        with trio.move_on_after(0.05) as scope:
            await guest.instance.exports["poll_oneoff"].call_async(*args)
        assert scope.cancelled_caught and guest.instance.interrupted
        mirror = guest.ctx._mirror
        assert mirror.table.epoll_fd >= 0
        guest.call("fd_close", fd)  # nothing registered any more: an idle instance holds no fd
        assert mirror.table.epoll_fd == -1


async def test_hangup_flag_and_bad_subscriptions_go_to_python():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        client.socket.shutdown(socket.SHUT_RDWR)
        guest.ctx.fds.get(fd).sock.shutdown(socket.SHUT_WR)
        await trio.sleep(0.02)
        args, where = _poll_args(guest, [_fd_sub(1, fd), _fd_sub(2, 99), _fd_sub(3, fd, ET.FD_WRITE)])
        assert guest.call("poll_oneoff", *args) == Errno.SUCCESS  # fd 99: Python reports BADF in its event
        events = _events(guest, where)
        assert events[0][:3] == (1, 0, int(ET.FD_READ)) and events[0][4] == HANGUP
        assert events[1][:2] == (2, Errno.BADF)
        assert guest.python("poll_oneoff", *args) == Errno.SUCCESS and _events(guest, where) == events



async def _poll_as_data_comes(guest: _EngineGuest, client: trio.SocketStream, args: tuple, after: float) -> None:
    """``poll_oneoff(*args)`` while ``client`` sends a byte ``after`` seconds in: the data ends the wait."""

    async def later() -> None:
        await trio.sleep(after)
        await client.send_all(b"x")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        assert await guest.call_async("poll_oneoff", *args) == Errno.SUCCESS


async def test_a_poll_with_a_deadline_waits_on_an_alarm_not_a_cancel_scope():
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)
        alarms = Alarms.current()
        args, where = _poll_args(guest, [_fd_sub(1, fd), _clock_sub(2, 50_000_000)])
        start = trio.current_time()
        assert await guest.call_async("poll_oneoff", *args) == Errno.SUCCESS  # nothing comes: the clock
        assert _events(guest, where) == [(2, 0, int(ET.CLOCK), 0, 0)] and trio.current_time() - start >= 0.045
        assert len(alarms) == 0  # gone off
        args, where = _poll_args(guest, [_fd_sub(1, fd), _clock_sub(2, 5 * 10**9)])

        await _poll_as_data_comes(guest, client, args, after=0.02)
        assert _events(guest, where) == [(1, 0, int(ET.FD_READ), 1, 0)]
        # The data came first: the mirror keeps its one alarm for the next
        # wait, whose deadline is later (set again only when it goes off).
        assert len(alarms) == 1
        for _ in range(3):
            await client.send_all(b"y")
            await trio.sleep(0.01)
            assert await guest.call_async("poll_oneoff", *args) == Errno.SUCCESS
            assert guest.call("sock_recv", fd, *_recv_args(guest, 8)[0]) == Errno.SUCCESS
        assert len(alarms) == 1
    assert len(alarms) == 0  # the context closed: its alarm is cleared


def test_an_alarm_kept_from_an_earlier_wait_does_not_end_a_later_one():
    """The mirror's alarm, set for a first wait's deadline, goes off during
    a second wait with a later deadline: that wait goes on to its own."""

    async def main() -> None:
        with _EngineGuest() as guest:
            client, fd = await _pair(guest)
            short, _ = _poll_args(guest, [_fd_sub(1, fd), _clock_sub(2, 10 * 10**9)])
            long, where = _poll_args(guest, [_fd_sub(1, fd), _clock_sub(2, 100 * 10**9)])

            await _poll_as_data_comes(guest, client, short, after=1)  # the data, at 1 s
            assert guest.call("sock_recv", fd, *_recv_args(guest, 8)[0]) == Errno.SUCCESS
            start = trio.current_time()
            assert await guest.instance.exports["poll_oneoff"].call_async(*long) == Errno.SUCCESS
            assert _events(guest, where) == [(2, 0, int(ET.CLOCK), 0, 0)]
            assert trio.current_time() - start >= 99.9  # not the 9 s left of the first wait's alarm

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.01))


def test_a_kept_alarm_does_not_outlive_its_trio_run():
    """A mirror's alarm belongs to one trio run (its clock, its timer task):
    a wait in the next run sets one in that run's alarms."""
    guest = _EngineGuest()
    kept: dict = {}

    async def first() -> None:
        client, fd = await _pair(guest)
        kept.update(client=client, fd=fd)
        args, _ = _poll_args(guest, [_fd_sub(1, fd), _clock_sub(2, 3600 * 10**9)])

        await _poll_as_data_comes(guest, client, args, after=0.01)
        assert guest.call("sock_recv", fd, *_recv_args(guest, 8)[0]) == Errno.SUCCESS
        assert len(Alarms.current()) == 1  # kept, for an hour

    async def second() -> None:
        args, where = _poll_args(guest, [_fd_sub(1, kept["fd"]), _clock_sub(2, 30_000_000)])
        start = trio.current_time()
        assert await guest.call_async("poll_oneoff", *args) == Errno.SUCCESS
        assert _events(guest, where) == [(2, 0, int(ET.CLOCK), 0, 0)] and trio.current_time() - start >= 0.025

    try:
        trio.run(first)
        trio.run(second)
    finally:
        guest.close()


async def test_a_cancelled_poll_leaves_no_alarm_holding_the_guest():
    alarms = Alarms.current()
    with _EngineGuest() as guest:
        client, fd = await _pair(guest)  # kept open: the fd stays silent
        args, _ = _poll_args(guest, [_fd_sub(1, fd), _clock_sub(2, 5 * 10**9)])
        with trio.move_on_after(0.05) as scope:
            await guest.instance.exports["poll_oneoff"].call_async(*args)
        assert scope.cancelled_caught and guest.instance.interrupted
        mirror = weakref.ref(guest.ctx._mirror)
    assert len(alarms) == 0  # closing the context cleared it
    # Even unclosed, a pending alarm holds its mirror weakly (regression:
    # MemoryBudget pages held by finished guests until their timeouts).
    guest = _EngineGuest()
    client, fd = await _pair(guest)
    args, _ = _poll_args(guest, [_fd_sub(1, fd), _clock_sub(2, 5 * 10**9)])

    await _poll_as_data_comes(guest, client, args, after=0.01)
    assert len(alarms) == 1
    mirror = weakref.ref(guest.ctx._mirror)
    del guest
    gc.collect()
    assert mirror() is None


def test_a_poll_deadline_follows_trios_clock():
    """With a virtual clock the deadline passes when trio's clock says so (no real waiting)."""

    async def main() -> None:
        with _EngineGuest() as guest:
            client, fd = await _pair(guest)  # kept open: the fd stays silent
            args, where = _poll_args(guest, [_fd_sub(1, fd), _clock_sub(2, 3600 * 10**9)])
            start = trio.current_time()
            assert await guest.instance.exports["poll_oneoff"].call_async(*args) == Errno.SUCCESS
            assert _events(guest, where) == [(2, 0, int(ET.CLOCK), 0, 0)]
            assert trio.current_time() - start >= 3599.9

    started = time.monotonic()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.05))
    assert time.monotonic() - started < TIMEOUT


_SERVE_LOOP = wat("""
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 0: a subscription (written by the test), 64: its event, 96: nevents,
  ;; 100: an iovec of 1 byte at 128, 108: bytes moved, 112: flags, 116: the accepted fd
  (func (export "accept") (result i32)
    (drop (call $accept (i32.const 3) (i32.const 4) (i32.const 116)))
    (i32.load (i32.const 116)))
  (func $burn (export "burn") (param $n i32) (local $acc i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $acc (i32.add (local.get $acc) (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next))))
  ;; rounds of: wait (poll), take the byte, work, answer
  (func (export "serve") (param $fd i32) (param $rounds i32) (param $work i32)
    (i32.store (i32.const 100) (i32.const 128))
    (i32.store (i32.const 104) (i32.const 1))
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $rounds)))
      (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 96)))
      (drop (call $recv (local.get $fd) (i32.const 100) (i32.const 1) (i32.const 0) (i32.const 108) (i32.const 112)))
      (call $burn (local.get $work))
      (drop (call $send (local.get $fd) (i32.const 100) (i32.const 1) (i32.const 0) (i32.const 108)))
      (local.set $rounds (i32.sub (local.get $rounds) (i32.const 1)))
      (br $next))))
)
""")


@pytest.mark.parametrize("work_per_slice", [0.4, 2.5])
async def test_a_guest_that_waits_for_io_starts_a_new_slice_after_each_wait(work_per_slice):
    """Fuel slices bound the work between two yields to the event loop; a
    wait in poll_oneoff is one, so a guest doing less than a slice of work
    per request never ends a slice on fuel, and one doing more still does."""
    linker = asyncwasm.Linker()
    linker.define_wasi(asyncwasm.WasiConfig(listeners=[LOOPBACK]))
    instance = linker.instantiate(asyncwasm.Module(_SERVE_LOOP))
    exports = instance.exports
    try:
        client = await _connect(instance.wasi.listener_addresses()[3][1])
        with trio.fail_after(TIMEOUT):
            fd = await exports["accept"].call_async()
        exports["memory"].write(0, _fd_sub(1, fd))
        work = 20_000
        before = instance.statistics().fuel_used
        exports["burn"](work)
        slice_fuel = int((instance.statistics().fuel_used - before) / work_per_slice)
        instance._gate.pacer = FixedPacer(slice_fuel)
        rounds = 20

        async def requests() -> None:
            for _ in range(rounds):
                await client.send_all(b"x")
                assert await client.receive_some(1) == b"x"

        before = instance.statistics()
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(requests)
                await exports["serve"].call_async(fd, rounds, work)
        after = instance.statistics()
        suspensions = after.suspensions - before.suspensions
        out_of_fuel = after.slices - before.slices - suspensions - 1  # each run() ends in one way
        assert suspensions >= rounds - 1  # the answer comes only after the guest waits again
        if work_per_slice < 1:
            assert out_of_fuel == 0
        else:
            assert out_of_fuel >= 2 * rounds
    finally:
        instance.close()


def _task_names() -> list[str]:
    """The names of every task of the run."""
    names, todo = [], [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        names.append(task.name)
        todo.extend(child for nursery in task.child_nurseries for child in nursery.child_tasks)
    return names


async def test_a_poll_over_a_handed_listener_waits_without_helper_tasks_and_wakes_for_a_connection():
    """The poll server's wait: its listener (a handoff's gate) and its
    connections, in one wait. It counts as a guest waiting for a connection
    (the accept loop accepts for it), the gate wakes it when it hands one
    over, and nothing of the wait is left afterwards."""
    handoff = Handoff.bind(["127.0.0.1:0"])
    port = handoff.addresses()[0][1]
    guest = _EngineGuest(listeners=[handoff])
    clients: list[trio.SocketStream] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handoff.accept_loop)
            for connections in (0, 1):  # parked (no epoll set yet), then on the epoll set of a connection
                fds = []
                for _ in range(connections):
                    clients.append(await _connect(port))
                    out = guest.alloc(4)
                    with trio.fail_after(TIMEOUT):
                        assert await guest.call_async("sock_accept", 3, NONBLOCK, out) == Errno.SUCCESS
                    fds.append(guest.u32(out))
                subs = [_fd_sub(3, 3)] + [_fd_sub(10 + fd, fd) for fd in fds] + [_clock_sub(9, 10 * 10**9)]
                args, where = _poll_args(guest, subs)

                async def connect_later() -> None:
                    await trio.testing.wait_all_tasks_blocked()
                    assert handoff.waiting == 1  # the polling guest counts as waiting: the loop accepts for it
                    assert not [name for name in _task_names() if "SockMirror" in name]  # no helper tasks
                    clients.append(await _connect(port))

                nursery.start_soon(connect_later)
                with trio.fail_after(TIMEOUT):
                    assert await guest.call_async("poll_oneoff", *args) == Errno.SUCCESS
                assert _events(guest, where) == [(3, 0, int(ET.FD_READ), 1, 0)]
                assert handoff.waiting == 0 and not handoff.gate._watchers
                assert len(Alarms.current()) == 1  # the mirror's one alarm, kept for its next wait
                out = guest.alloc(4)
                assert guest.call("sock_accept", 3, NONBLOCK, out) == Errno.SUCCESS  # handed over: pending
            args, where = _poll_args(guest, [_fd_sub(3, 3), _clock_sub(9, 30_000_000)])
            assert await guest.call_async("poll_oneoff", *args) == Errno.SUCCESS  # nothing comes: the clock
            assert _events(guest, where) == [(9, 0, int(ET.CLOCK), 0, 0)] and handoff.waiting == 0
            nursery.cancel_scope.cancel()
    finally:
        for client in clients:
            await client.aclose()
        guest.close()
        handoff.close()


async def test_a_guest_polling_its_handed_listener_is_cancelled_cleanly():
    handoff = Handoff.bind(["127.0.0.1:0"])
    guest = _EngineGuest(listeners=[handoff])
    try:
        args, _ = _poll_args(guest, [_fd_sub(3, 3)])  # no deadline: parked until a connection
        with trio.move_on_after(0.05) as scope:
            await guest.instance.exports["poll_oneoff"].call_async(*args)
        assert scope.cancelled_caught and handoff.waiting == 0 and not handoff.gate._watchers
        assert guest.ctx._mirror._parked is None
    finally:
        guest.close()
        handoff.close()
