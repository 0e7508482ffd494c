"""poll_oneoff: pure subscription decoding and planning, then the trio waits."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from .guests.harness import FakeGuest, load_wasi

wasi = load_wasi()
abi = wasi.abi
poll = wasi.poll
Errno = wasi.Errno
ET = abi.Eventtype
ABSTIME = int(abi.Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME)


def clock_sub(userdata, timeout, clock=abi.Clockid.MONOTONIC, flags=0, precision=0):
    data = bytearray(48)
    abi.SUBSCRIPTION_HEAD.pack_into(data, 0, userdata, ET.CLOCK)
    abi.SUBSCRIPTION_CLOCK.pack_into(data, 16, clock, timeout, precision, flags)
    return bytes(data)


def fd_sub(userdata, fd, kind=ET.FD_READ):
    data = bytearray(48)
    abi.SUBSCRIPTION_HEAD.pack_into(data, 0, userdata, kind)
    abi.SUBSCRIPTION_FD.pack_into(data, 16, fd)
    return bytes(data)


def raw_sub(userdata, tag):
    data = bytearray(48)
    abi.SUBSCRIPTION_HEAD.pack_into(data, 0, userdata, tag)
    return bytes(data)


# -- pure -------------------------------------------------------------------------


def test_decode_subscriptions():
    subs = poll.decode_subscriptions(clock_sub(1, 500, flags=ABSTIME, precision=9) + fd_sub(2, 7, ET.FD_WRITE) + raw_sub(3, 9))
    assert subs == [
        poll.ClockSubscription(1, abi.Clockid.MONOTONIC, 500, 9, ABSTIME),
        poll.FdSubscription(2, ET.FD_WRITE, 7),
        poll.BadSubscription(3, 9, Errno.INVAL),
    ]
    with pytest.raises(ValueError):
        poll.decode_subscriptions(b"\0" * 47)


@pytest.mark.parametrize(
    "clock, flags, timeout, expected",
    [
        (abi.Clockid.MONOTONIC, 0, 50, 1_050),
        (abi.Clockid.MONOTONIC, ABSTIME, 1_500, 1_500),
        (abi.Clockid.REALTIME, 0, 50, 1_050),
        (abi.Clockid.REALTIME, ABSTIME, 10_200, 1_200),  # realtime 10_000 = monotonic 1_000
    ],
)
def test_clock_deadline(clock, flags, timeout, expected):
    sub = poll.ClockSubscription(0, clock, timeout, 0, flags)
    assert poll.clock_deadline(sub, monotonic_now=1_000, realtime_now=10_000) == expected


@pytest.mark.parametrize(
    "clock, flags, errno",
    [(abi.Clockid.PROCESS_CPUTIME_ID, 0, Errno.NOTSUP), (7, 0, Errno.INVAL), (abi.Clockid.MONOTONIC, 2, Errno.INVAL)],
)
def test_bad_clocks(clock, flags, errno):
    with pytest.raises(abi.WasiError) as info:
        poll.clock_deadline(poll.ClockSubscription(0, clock, 1, 0, flags), 0, 0)
    assert info.value.errno == errno


def test_collect_orders_ready_events_and_the_next_deadline():
    subs = poll.decode_subscriptions(
        clock_sub(1, 100) + clock_sub(2, 0) + fd_sub(3, 5) + clock_sub(4, 30) + raw_sub(5, 200)
        + clock_sub(6, 1, clock=abi.Clockid.THREAD_CPUTIME_ID)
    )
    plan = poll.make_plan(subs, monotonic_now=1_000, realtime_now=0)
    ready_fd = lambda sub: poll.Event(sub.userdata, 0, sub.eventtype, 12, 0)  # noqa: E731
    events, earliest, waiting = poll.collect(plan, 1_000, None, ready_fd)
    assert [(e.userdata, e.error) for e in events] == [(2, 0), (3, 0), (5, Errno.INVAL), (6, Errno.NOTSUP)]
    assert events[1].nbytes == 12 and earliest == 1_030 and waiting == []
    # a finished sleep counts even if the configured clock has not moved
    events, earliest, _ = poll.collect(plan, 1_000, 1_030, lambda sub: None)
    assert [e.userdata for e in events] == [2, 4, 5, 6] and earliest == 1_100


def test_event_layout():
    data = poll.Event(0x0102, 8, ET.FD_READ, 5, 1).pack()
    assert abi.EVENT.unpack(data) == (0x0102, 8, 1, 5, 1)


# -- through the host function --------------------------------------------------------


def _poll(guest, subs: bytes):
    """Place subscriptions, call poll_oneoff; returns (result, out, nevents_ptr)."""
    n = len(subs) // 48
    sub_ptr = guest.alloc(len(subs))
    guest.memory.data[sub_ptr : sub_ptr + len(subs)] = subs
    out, nevents = guest.alloc(32 * n), guest.alloc(4)
    return guest.call("poll_oneoff", sub_ptr, out, n, nevents), out, nevents


def _events(guest, out, nevents):
    n = guest.u32(nevents)
    return [abi.EVENT.unpack(guest.read(out + 32 * i, 32)) for i in range(n)]


def test_no_subscriptions_is_inval():
    with FakeGuest(wasi.WasiConfig()) as guest:
        assert guest.call("poll_oneoff", 1024, 2048, 0, 4096) == Errno.INVAL
        assert guest.call("poll_oneoff", 1024, 2048, 1 << 30, 4096) == Errno.FAULT


def test_ready_now_returns_without_suspending(tmp_path):
    (tmp_path / "f").write_bytes(b"12345")
    config = wasi.WasiConfig(stdin=b"abc", stdout=bytearray(), preopens=[(str(tmp_path), "/", False)])
    with FakeGuest(config) as guest:
        _, fd = guest.open(b"f", rights=int(wasi.Rights.FD_READ | wasi.Rights.POLL_FD_READWRITE))
        result, out, nevents = _poll(
            guest, clock_sub(1, 0) + fd_sub(2, 0) + fd_sub(3, 1, ET.FD_WRITE) + fd_sub(4, 99) + fd_sub(5, fd)
            + fd_sub(6, 1, ET.FD_READ)
        )
        assert result == Errno.SUCCESS
        assert [(e[0], e[1], e[2], e[3]) for e in _events(guest, out, nevents)] == [
            (1, 0, ET.CLOCK, 0),
            (2, 0, ET.FD_READ, 3),  # three bytes of stdin left
            (3, 0, ET.FD_WRITE, 0),
            (4, Errno.BADF, ET.FD_READ, 0),
            (5, 0, ET.FD_READ, 5),  # regular file: always ready, bytes to the end
            (6, Errno.NOTCAPABLE, ET.FD_READ, 0),  # stdout cannot be read
        ]


# One- and two-subscription tables take poll_oneoff's small path; the
# general one (make_plan + collect) is the reference for its events.
_SMALL_TABLES = [
    [clock_sub(1, 0)],
    [fd_sub(2, 0)],
    [fd_sub(3, 99)],
    [raw_sub(4, 9)],
    [clock_sub(5, 0, flags=4)],
    [clock_sub(6, 0, abi.Clockid.PROCESS_CPUTIME_ID)],
    [clock_sub(7, 0, clock=17)],
    [fd_sub(8, 1, ET.FD_READ)],
    [fd_sub(9, 1, ET.FD_WRITE)],
    [fd_sub(10, 0), clock_sub(11, 10**12)],
    [clock_sub(12, 10**12), fd_sub(13, 1, ET.FD_WRITE)],
    [clock_sub(14, 999, abi.Clockid.REALTIME, ABSTIME), clock_sub(15, 10**12)],
    [fd_sub(16, 99), fd_sub(17, 0)],
    [raw_sub(18, 77), clock_sub(19, 0, clock=17)],
    [clock_sub(20, 10**12), clock_sub(21, 0)],
]


@pytest.mark.parametrize("table", _SMALL_TABLES)
def test_small_tables_give_the_events_of_the_general_path(table):
    config = wasi.WasiConfig(stdin=b"abc", stdout=bytearray(), monotonic_ns=lambda: 5_000, realtime_ns=lambda: 1_000)
    with FakeGuest(config) as guest:
        data = b"".join(table)
        result, out, nevents = _poll(guest, data)
        assert result == Errno.SUCCESS
        plan = poll.make_plan(poll.decode_subscriptions(data), 5_000, 1_000)
        expected, _, _ = poll.collect(plan, 5_000, None, poll._fd_readiness(guest.ctx))
        assert expected  # every table here is ready at once
        assert _events(guest, out, nevents) == [abi.EVENT.unpack(event.pack()) for event in expected]


@pytest.mark.trio
async def test_small_wait_keeps_deadlines_fixed_at_call_time(autojump_clock):
    # The monotonic source moves on while the call waits: the relative
    # timeouts still count from the call, and both clocks report once due.
    now = [0]
    with FakeGuest(wasi.WasiConfig(monotonic_ns=lambda: now[0])) as guest:
        result, out, nevents = _poll(guest, clock_sub(1, 2_000_000_000) + clock_sub(2, 1_000_000_000))
        assert not isinstance(result, int)
        now[0] = 1_500_000_000  # past the second deadline, before the first
        start = trio.current_time()
        assert await result == Errno.SUCCESS
        assert trio.current_time() - start == pytest.approx(0.0)
        assert [(e[0], e[2]) for e in _events(guest, out, nevents)] == [(2, ET.CLOCK)]


@pytest.mark.trio
async def test_clock_sleep_suspends_in_trio(autojump_clock):
    # A frozen monotonic source: only the finished trio sleep can fire the clock.
    with FakeGuest(wasi.WasiConfig(monotonic_ns=lambda: 42)) as guest:
        result, out, nevents = _poll(guest, clock_sub(7, 5_000_000_000) + clock_sub(8, 9_000_000_000))
        assert not isinstance(result, int)  # would block: an awaitable for the engine
        start = trio.current_time()
        assert await result == Errno.SUCCESS
        assert trio.current_time() - start == pytest.approx(5.0)
        assert [(e[0], e[2]) for e in _events(guest, out, nevents)] == [(7, ET.CLOCK)]


@pytest.mark.trio
async def test_absolute_realtime_deadline(autojump_clock):
    config = wasi.WasiConfig(realtime_ns=lambda: 100_000_000_000)
    with FakeGuest(config) as guest:
        result, out, nevents = _poll(guest, clock_sub(1, 102_000_000_000, abi.Clockid.REALTIME, ABSTIME))
        start = trio.current_time()
        assert await result == Errno.SUCCESS
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.01)


@pytest.mark.trio
async def test_pipe_readiness_wakes_poll():
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(read_end, "rb", buffering=0, closefd=False) as reader:
            with FakeGuest(wasi.WasiConfig(stdin=reader)) as guest:
                result, out, nevents = _poll(guest, fd_sub(1, 0) + clock_sub(2, 60_000_000_000))
                assert not isinstance(result, int)
                async with trio.open_nursery() as nursery:
                    async def feed():
                        await trio.sleep(0.05)
                        os.write(write_end, b"ping")
                    nursery.start_soon(feed)
                    with trio.fail_after(5):
                        assert await result == Errno.SUCCESS
                events = _events(guest, out, nevents)
                assert [(e[0], e[1], e[2], e[3]) for e in events] == [(1, 0, ET.FD_READ, 4)]
                assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"ping")
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.trio
async def test_poll_times_out_on_a_silent_pipe(autojump_clock):
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(read_end, "rb", buffering=0, closefd=False) as reader:
            with FakeGuest(wasi.WasiConfig(stdin=reader)) as guest:
                result, out, nevents = _poll(guest, fd_sub(1, 0) + clock_sub(2, 3_000_000_000))
                assert await result == Errno.SUCCESS
                assert [(e[0], e[2]) for e in _events(guest, out, nevents)] == [(2, ET.CLOCK)]
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.trio
async def test_trio_stream_readiness_keeps_the_data():
    send, receive = trio.testing.memory_stream_one_way_pair()
    with FakeGuest(wasi.WasiConfig(stdin=receive)) as guest:
        result, out, nevents = _poll(guest, fd_sub(1, 0))
        await send.send_all(b"hello")
        with trio.fail_after(5):
            assert await result == Errno.SUCCESS
        assert _events(guest, out, nevents)[0][3] == 5
        assert guest.read_fd(0, 3) == (Errno.SUCCESS, b"hel")
        assert guest.read_fd(0, 10) == (Errno.SUCCESS, b"lo")


@pytest.mark.trio
async def test_poll_is_cancellable(autojump_clock):
    with FakeGuest(wasi.WasiConfig()) as guest:
        result, _, _ = _poll(guest, clock_sub(1, 10**12))
        with trio.move_on_after(1) as scope:
            await result
        assert scope.cancelled_caught


@pytest.mark.trio
async def test_sched_yield_is_a_checkpoint():
    with FakeGuest(wasi.WasiConfig()) as guest:
        result = guest.call("sched_yield")
        with trio.testing.assert_checkpoints():
            assert await result == Errno.SUCCESS


def test_sched_yield_outside_trio_returns_at_once():
    with FakeGuest(wasi.WasiConfig()) as guest:
        assert guest.call("sched_yield") == Errno.SUCCESS
