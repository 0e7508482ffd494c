"""WASI ``poll_oneoff``: wait for clocks and fd readiness.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#poll_oneoff

Strategy (sans-IO core, trio only at the edge):

1. :func:`decode_subscriptions` turns the guest's bytes into subscription
   values (pure; a bad tag becomes a :class:`BadSubscription`).
2. :func:`make_plan` fixes each clock's deadline on the monotonic clock once,
   at call time (relative timeouts are relative to the call; REALTIME
   absolute times are converted with the realtime-monotonic offset).
3. :func:`collect` decides which subscriptions are ready now, given the
   current time and a readiness query for fds (pure given that callable).
4. If something is ready the events are written at once (no suspension).
   Otherwise :func:`poll_oneoff` returns an awaitable that sleeps in trio
   until the earliest deadline or until an fd may be ready, then collects
   again. A deadline whose trio sleep finished counts as reached even if the
   configured monotonic source disagrees (so trio's virtual clocks work).

Rules:
- ``nsubscriptions == 0`` is INVAL (the witx says so).
- A problem with one subscription (unknown fd, missing right, bad clock id,
  unknown tag) is reported in that subscription's event ``error`` and the
  call still succeeds, as wasi-libc's ``poll()`` expects.
- Regular files are always ready. stdin and pipes are ready when the host
  says so; trio streams when a chunk is buffered (see :mod:`.stdio`);
  sockets when ``poll()`` says so (see :mod:`.sockets`: a read event's
  ``nbytes`` is FIONREAD, a write event's the free send-buffer space, and
  ``FD_READWRITE_HANGUP`` is set on POLLHUP: the connection is gone both
  ways, e.g. reset by the peer).

``epoll_oneoff`` (WasmEdge's extension, same arguments and layouts) is the
edge-triggered variant tokio-style guests use: fds with a host fd are
registered with ``EPOLLET`` in an epoll set that persists across calls (one
per context, :class:`EdgePoller`), so a readiness is reported once per
change rather than on every call. Entries without a host fd (in-memory
stdio) and clocks behave as in ``poll_oneoff``.
"""

from __future__ import annotations

import select
import weakref
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Sequence, Union

import trio

from .abi import (
    EVENT,
    U32 as U32_LAYOUT,
    SUBSCRIPTION_CLOCK,
    SUBSCRIPTION_FD,
    SUBSCRIPTION_HEAD,
    SUBSCRIPTION_PAYLOAD_OFFSET,
    SUBSCRIPTION_SIZE,
    Clockid,
    Errno,
    Eventrwflags,
    Eventtype,
    Rights,
    Subclockflags,
    WasiError,
)
from .decl import PTR, U32, host_function
from .later import Later
from .sock import extension_function

ErrnoResult = Union[int, Awaitable[int]]
_U64 = 0xFFFFFFFFFFFFFFFF
_FD_READ = int(Eventtype.FD_READ)
_ABSTIME = int(Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME)


@dataclass(frozen=True)
class ClockSubscription:
    userdata: int
    clock_id: int
    timeout: int
    precision: int
    flags: int


@dataclass(frozen=True)
class FdSubscription:
    userdata: int
    eventtype: Eventtype  # FD_READ or FD_WRITE
    fd: int


@dataclass(frozen=True)
class BadSubscription:
    """A subscription that can only produce an error event."""

    userdata: int
    eventtype: int
    errno: Errno


Subscription = Union[ClockSubscription, FdSubscription, BadSubscription]


@dataclass(frozen=True)
class Event:
    """One ``$event``: ``nbytes``/``flags`` only mean something for fd events."""

    userdata: int
    error: int
    type: int
    nbytes: int = 0
    flags: int = 0

    def pack(self) -> bytes:
        return EVENT.pack(self.userdata, self.error, self.type, self.nbytes, self.flags)


def decode_subscriptions(data: bytes) -> list[Subscription]:
    """Decode ``len(data) // 48`` subscriptions (``data`` is exactly that long).

    Layout per subscription (48 bytes): userdata u64 @0, tag u8 @8; clock:
    id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40; fd_read /
    fd_write: file_descriptor u32 @16."""
    if len(data) % SUBSCRIPTION_SIZE:
        raise ValueError(f"subscription bytes must be a multiple of {SUBSCRIPTION_SIZE}, not {len(data)}")
    subs: list[Subscription] = []
    for base in range(0, len(data), SUBSCRIPTION_SIZE):
        userdata, tag = SUBSCRIPTION_HEAD.unpack_from(data, base)
        payload = base + SUBSCRIPTION_PAYLOAD_OFFSET
        if tag == Eventtype.CLOCK:
            clock_id, timeout, precision, flags = SUBSCRIPTION_CLOCK.unpack_from(data, payload)
            subs.append(ClockSubscription(userdata, clock_id, timeout, precision, flags))
        elif tag in (Eventtype.FD_READ, Eventtype.FD_WRITE):
            (fd,) = SUBSCRIPTION_FD.unpack_from(data, payload)
            subs.append(FdSubscription(userdata, _EVENTTYPES[tag], fd))
        else:
            subs.append(BadSubscription(userdata, tag, Errno.INVAL))
    return subs


def clock_deadline(sub: ClockSubscription, monotonic_now: int, realtime_now: int) -> int:
    """The deadline of a clock subscription on the monotonic clock (ns).

    INVAL for unknown flag bits or clock ids; NOTSUP for the CPU-time clocks
    (we cannot sleep until a CPU-time instant)."""
    if sub.flags & ~_ABSTIME:
        raise WasiError(Errno.INVAL)
    absolute = bool(sub.flags & _ABSTIME)
    if sub.clock_id == Clockid.MONOTONIC:
        return sub.timeout if absolute else monotonic_now + sub.timeout
    if sub.clock_id == Clockid.REALTIME:
        return monotonic_now + (sub.timeout - realtime_now) if absolute else monotonic_now + sub.timeout
    if sub.clock_id in (Clockid.PROCESS_CPUTIME_ID, Clockid.THREAD_CPUTIME_ID):
        raise WasiError(Errno.NOTSUP)
    raise WasiError(Errno.INVAL)


@dataclass(frozen=True)
class Plan:
    """Subscriptions with their fixed clock deadlines (None for non-clocks)."""

    subscriptions: tuple[Subscription, ...]
    deadlines: tuple[Optional[int], ...]


def make_plan(subs: Sequence[Subscription], monotonic_now: int, realtime_now: int) -> Plan:
    """Fix clock deadlines; a bad clock becomes a :class:`BadSubscription`."""
    fixed: list[Subscription] = []
    deadlines: list[Optional[int]] = []
    for sub in subs:
        deadline = None
        if isinstance(sub, ClockSubscription):
            try:
                deadline = clock_deadline(sub, monotonic_now, realtime_now)
            except WasiError as exc:
                sub = BadSubscription(sub.userdata, Eventtype.CLOCK, exc.errno)
        fixed.append(sub)
        deadlines.append(deadline)
    return Plan(tuple(fixed), tuple(deadlines))


FdQuery = Callable[[FdSubscription], Optional[Event]]


def collect(plan: Plan, monotonic_now: int, fired_until: Optional[int], fd_ready: FdQuery) -> tuple[
    list[Event], Optional[int], list[FdSubscription]
]:
    """Events ready now, the earliest pending deadline, and the fd
    subscriptions still waiting. A clock is ready once ``monotonic_now`` or
    ``fired_until`` (the deadline a finished sleep was for) reaches it."""
    events: list[Event] = []
    earliest: Optional[int] = None
    waiting: list[FdSubscription] = []
    for sub, deadline in zip(plan.subscriptions, plan.deadlines):
        if isinstance(sub, BadSubscription):
            events.append(Event(sub.userdata, sub.errno, sub.eventtype))
        elif isinstance(sub, ClockSubscription):
            assert deadline is not None
            if deadline <= monotonic_now or (fired_until is not None and deadline <= fired_until):
                events.append(Event(sub.userdata, Errno.SUCCESS, Eventtype.CLOCK))
            elif earliest is None or deadline < earliest:
                earliest = deadline
        else:
            event = fd_ready(sub)
            if event is None:
                waiting.append(sub)
            else:
                events.append(event)
    return events, earliest, waiting


# Plain ints and prebuilt members: these run once per subscription per call,
# and enum arithmetic costs more than the rest of the check.
_READ_RIGHTS = int(Rights.POLL_FD_READWRITE | Rights.FD_READ)
_WRITE_RIGHTS = int(Rights.POLL_FD_READWRITE | Rights.FD_WRITE)
_EVENTTYPES = {int(t): t for t in Eventtype}


def _pollable_entry(ctx: Any, sub: FdSubscription) -> Any:
    """The entry ``sub`` watches, with the rights polling it needs (WasiError)."""
    return ctx.fds.get(sub.fd, _READ_RIGHTS if sub.eventtype == _FD_READ else _WRITE_RIGHTS)


def _level_event(entry: Any, sub: FdSubscription) -> Optional[Event]:
    """The event for ``sub`` if ``entry`` is ready now (level-triggered)."""
    try:
        ready = entry.poll_read() if sub.eventtype == Eventtype.FD_READ else entry.poll_write()
    except OSError:
        return Event(sub.userdata, Errno.IO, sub.eventtype)
    if ready is None:
        return None
    nbytes, flags = ready
    return Event(sub.userdata, Errno.SUCCESS, sub.eventtype, min(nbytes, _U64), flags)


def _fd_readiness(ctx: Any) -> FdQuery:
    def query(sub: FdSubscription) -> Optional[Event]:
        try:
            entry = _pollable_entry(ctx, sub)
        except WasiError as exc:
            return Event(sub.userdata, exc.errno, sub.eventtype)
        return _level_event(entry, sub)

    return query


def _read_plan(ctx: Any, subscriptions: int, events: int, nsubscriptions: int, nevents: int) -> Plan:
    """Check the call's pointers and decode its subscriptions (INVAL, FAULT)."""
    if nsubscriptions == 0:
        raise WasiError(Errno.INVAL)
    ctx.memory.check(events, nsubscriptions * EVENT.size)
    ctx.memory.check(nevents, 4)
    data = ctx.memory.read(subscriptions, nsubscriptions * SUBSCRIPTION_SIZE)
    subs = _decoded(data) if nsubscriptions < _MANY_FDS else decode_subscriptions(data)
    return make_plan(subs, ctx.clocks.monotonic_ns(), ctx.clocks.realtime_ns())


# Small subscription tables decoded lately, by their bytes: a server waits
# with the same (fd, idle timeout) table call after call, and decoding is a
# fifth of a poll_oneoff. Subscriptions are frozen, so a decoded tuple can be
# shared by every caller; the cache is cleared when full (bounded memory).
_DECODED: dict[bytes, tuple[Subscription, ...]] = {}
_DECODED_MAX = 256


def _decoded(data: bytes) -> tuple[Subscription, ...]:
    subs = _DECODED.get(data)
    if subs is None:
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        subs = _DECODED[data] = tuple(decode_subscriptions(data))
    return subs


def _store_events(ctx: Any, out: int, nevents: int, events: list[Event]) -> int:
    ctx.memory.write(out, b"".join(event.pack() for event in events))
    ctx.memory.store_u32(nevents, len(events))
    return Errno.SUCCESS


@host_function(subscriptions=PTR, events=PTR, nsubscriptions=U32, nevents=PTR)
def poll_oneoff(ctx: Any, subscriptions: int, events: int, nsubscriptions: int, nevents: int) -> ErrnoResult:
    """Wait until at least one subscription is ready.

    Reads ``nsubscriptions`` 48-byte ``$subscription``s at ``subscriptions``
    (layout in :func:`decode_subscriptions`); writes up to that many 32-byte
    ``$event``s at ``events`` (userdata u64 @0, error u16 @8, type u8 @10,
    fd_readwrite.nbytes u64 @16, fd_readwrite.flags u16 @24) and their count
    (u32) at ``nevents``. Suspends the guest (returns an awaitable) when
    nothing is ready yet. Errnos: INVAL (no subscriptions), FAULT; per-event
    errors BADF, NOTCAPABLE, INVAL, NOTSUP."""
    if 0 < nsubscriptions <= _SMALL:
        return _poll_small(ctx, subscriptions, events, nsubscriptions, nevents)
    plan = _read_plan(ctx, subscriptions, events, nsubscriptions, nevents)
    if nsubscriptions >= _MANY_FDS:
        return _poll_many(ctx, plan, events, nevents)
    fd_ready = _fd_readiness(ctx)
    ready, earliest, waiting = collect(plan, ctx.clocks.monotonic_ns(), None, fd_ready)
    if ready:
        return _store_events(ctx, events, nevents, ready)
    return Later(_wait_and_store, ctx, plan, fd_ready, earliest, waiting, events, nevents)


# -- poll_oneoff of one or two subscriptions -------------------------------------------------------
#
# A server's usual call (its connection, plus an idle timeout) without the
# Plan/Event objects of the general path: the scan below decides readiness
# subscription by subscription exactly as make_plan + collect do (same
# deadlines, same event order and errors) and packs each ready event
# straight into guest memory. Objects are built only when the call has to
# wait; then it yields once and looks again, and only then waits in the
# calling task on its one fd (with a cancel scope only when a clock bounds
# the wait).

_SMALL = 2
_EVENT_PACK = EVENT.pack_into
_EVENT_SIZE = EVENT.size
_U32_PACK = U32_LAYOUT.pack_into
_SUCCESS = int(Errno.SUCCESS)
_IO = int(Errno.IO)
_CLOCK = int(Eventtype.CLOCK)
_REALTIME = int(Clockid.REALTIME)
_SEVERAL = object()  # more than one fd waiting: the general wait handles it


def _poll_small(ctx: Any, subscriptions: int, out: int, nsubscriptions: int, nevents: int) -> ErrnoResult:
    memory = ctx.memory
    memory.check(out, nsubscriptions * _EVENT_SIZE)  # same order of FAULT checks as _read_plan
    memory.check(nevents, 4)
    subs = _decoded(memory.read(subscriptions, nsubscriptions * SUBSCRIPTION_SIZE))
    view = memory.view_to(max(out + nsubscriptions * _EVENT_SIZE, nevents + 4))
    now = ctx.clocks.monotonic_ns()
    found = _small_scan(ctx, subs, None, now, None, view, out)
    if found.__class__ is int:
        _U32_PACK(view, nevents, found)
        return _SUCCESS
    deadlines, earliest, waiting = found
    if waiting is _SEVERAL:  # e.g. read and write on one socket: one task per fd, as before
        plan = Plan(tuple(subs), deadlines)
        fd_ready = _fd_readiness(ctx)
        ready, earliest, waiting_subs = collect(plan, ctx.clocks.monotonic_ns(), None, fd_ready)
        if ready:  # became ready since the scan
            return _store_events(ctx, out, nevents, ready)
        return Later(_wait_and_store, ctx, plan, fd_ready, earliest, waiting_subs, out, nevents)
    return Later(_small_wait, ctx, subs, deadlines, earliest, waiting, view, out, nevents)


def _small_scan(ctx: Any, subs: tuple[Subscription, ...], deadlines: Optional[tuple[Optional[int], ...]],
                now: int, fired_until: Optional[int], view: memoryview, out: int) -> Any:
    """Pack the events of the subscriptions ready now at ``out`` and return
    their count; when none is, return (deadlines, earliest deadline, the
    waiting fd subscription or _SEVERAL or None). ``deadlines`` are the ones
    fixed at call time (None: fix them now, as make_plan)."""
    count = 0
    earliest: Optional[int] = None
    waiting: Any = None
    fixed: Optional[list[Optional[int]]] = [] if deadlines is None else None
    index = 0
    for sub in subs:
        cls = sub.__class__
        if cls is FdSubscription:
            if fixed is not None:
                fixed.append(None)
            reading = sub.eventtype == _FD_READ
            try:
                entry = ctx.fds.get(sub.fd, _READ_RIGHTS if reading else _WRITE_RIGHTS)
            except WasiError as exc:
                _EVENT_PACK(view, out + count * _EVENT_SIZE, sub.userdata, exc.errno, sub.eventtype, 0, 0)
                count += 1
                continue
            try:
                ready = entry.poll_read() if reading else entry.poll_write()
            except OSError:
                _EVENT_PACK(view, out + count * _EVENT_SIZE, sub.userdata, _IO, sub.eventtype, 0, 0)
                count += 1
                continue
            if ready is None:
                waiting = sub if waiting is None else _SEVERAL
            else:
                _EVENT_PACK(view, out + count * _EVENT_SIZE, sub.userdata, _SUCCESS, sub.eventtype,
                            min(ready[0], _U64), ready[1])
                count += 1
        elif cls is ClockSubscription:
            if fixed is not None:
                try:
                    deadline = clock_deadline(sub, now, ctx.clocks.realtime_ns() if sub.clock_id == _REALTIME else 0)
                except WasiError as exc:
                    fixed.append(None)
                    _EVENT_PACK(view, out + count * _EVENT_SIZE, sub.userdata, exc.errno, _CLOCK, 0, 0)
                    count += 1
                    continue
                fixed.append(deadline)
            else:
                deadline = deadlines[index]  # type: ignore[index]
                if deadline is None:  # a bad clock: reported on the first scan, which returned
                    continue
            if deadline <= now or (fired_until is not None and deadline <= fired_until):
                _EVENT_PACK(view, out + count * _EVENT_SIZE, sub.userdata, _SUCCESS, _CLOCK, 0, 0)
                count += 1
            elif earliest is None or deadline < earliest:
                earliest = deadline
        else:  # BadSubscription
            if fixed is not None:
                fixed.append(None)
            _EVENT_PACK(view, out + count * _EVENT_SIZE, sub.userdata, sub.errno, sub.eventtype, 0, 0)
            count += 1
        index += 1
    if count:
        return count
    return (tuple(fixed) if fixed is not None else deadlines), earliest, waiting


async def _small_wait(ctx: Any, subs: tuple[Subscription, ...], deadlines: tuple[Optional[int], ...],
                      earliest: Optional[int], waiting: Optional[FdSubscription], view: memoryview, out: int,
                      nevents: int) -> int:
    # Let the other tasks run once and look again before parking: on a busy
    # server the data usually arrives meanwhile, and a wait with a deadline
    # (cancel scope, epoll registration, wake-up) costs several times this
    # round. A clock that is due by then is reported as usual.
    await trio.lowlevel.checkpoint()
    found = _small_scan(ctx, subs, deadlines, ctx.clocks.monotonic_ns(), None, view, out)
    if found.__class__ is int:
        _U32_PACK(view, nevents, found)
        return _SUCCESS
    _, earliest, waiting = found
    fired_until: Optional[int] = None
    while True:
        if waiting is None:
            assert earliest is not None  # the scan waits on something
            await trio.sleep(max(0, earliest - ctx.clocks.monotonic_ns()) / 1e9)
            fired_until = earliest if fired_until is None else max(earliest, fired_until)
        else:
            entry = ctx.fds.get(waiting.fd)  # still open: the scan just looked it up
            wait = entry.wait_readable if waiting.eventtype == _FD_READ else entry.wait_writable
            if earliest is None:
                await wait()
            else:
                with trio.move_on_after(max(0, earliest - ctx.clocks.monotonic_ns()) / 1e9) as scope:
                    await wait()
                if scope.cancelled_caught:
                    fired_until = earliest if fired_until is None else max(earliest, fired_until)
        found = _small_scan(ctx, subs, deadlines, ctx.clocks.monotonic_ns(), fired_until, view, out)
        if found.__class__ is int:
            _U32_PACK(view, nevents, found)
            return _SUCCESS
        _, earliest, waiting = found


# From this many subscriptions on, poll_oneoff asks one epoll set (kept per
# context, level-triggered) which fds are ready and waits on its single fd,
# instead of one readiness query and one trio task per fd: a server polling
# 1,000 connections would otherwise pay 1,000 of each on every call.
_MANY_FDS = 4


def _level_poller(ctx: Any) -> "EdgePoller":
    if ctx.net.level_poller is None:
        ctx.net.level_poller = EdgePoller(trigger=0)
    return ctx.net.level_poller


def _many_readiness(ctx: Any, ready_bits: dict[int, int], looked_up: dict[tuple[int, int], Any]) -> FdQuery:
    """Level readiness, asking entries only for fds the epoll set reported.
    ``looked_up``: (fd, eventtype) -> (entry, host fd) or the WasiError of
    the lookup, filled on first use (the guest's table cannot change while
    its call is in progress)."""

    def query(sub: FdSubscription) -> Optional[Event]:
        key = (sub.fd, sub.eventtype)
        found = looked_up.get(key)
        if found is None:
            try:
                entry = _pollable_entry(ctx, sub)
                found = looked_up[key] = (entry, entry.host_fd)
            except WasiError as exc:
                found = looked_up[key] = exc
        if isinstance(found, WasiError):
            return Event(sub.userdata, found.errno, sub.eventtype)
        entry, host_fd = found
        if host_fd is not None:
            reading = sub.eventtype == _FD_READ
            if not ready_bits.get(host_fd, 0) & (_WANT_READ if reading else _WANT_WRITE) \
                    and not (reading and entry.buffered):
                return None
        return _level_event(entry, sub)

    return query


def _poll_many(ctx: Any, plan: Plan, out: int, nevents: int) -> ErrnoResult:
    poller = _level_poller(ctx)
    _register_edges(ctx, poller, plan, retain=True)
    looked_up: dict[tuple[int, int], Any] = {}
    ready, earliest, waiting = collect(plan, ctx.clocks.monotonic_ns(), None,
                                       _many_readiness(ctx, poller.ready_now(), looked_up))
    if ready:
        return _store_events(ctx, out, nevents, ready)
    return Later(_many_wait_and_store, ctx, poller, plan, earliest, waiting, out, nevents)


async def _many_wait_and_store(ctx: Any, poller: "EdgePoller", plan: Plan, earliest: Optional[int],
                               waiting: list[FdSubscription], out: int, nevents: int) -> int:
    fired_until: Optional[int] = None
    while True:
        fired = await _wait_any(ctx, earliest, _edge_waiting(ctx, waiting), poller.fileno())
        if fired is not None:
            fired_until = fired if fired_until is None else max(fired, fired_until)
        ready, earliest, waiting = collect(plan, ctx.clocks.monotonic_ns(), fired_until,
                                           _many_readiness(ctx, poller.ready_now(), {}))
        if ready:
            return _store_events(ctx, out, nevents, ready)


async def _wait_and_store(
    ctx: Any, plan: Plan, fd_ready: FdQuery, earliest: Optional[int], waiting: list[FdSubscription],
    out: int, nevents: int,
) -> int:
    fired_until: Optional[int] = None
    while True:
        fired = await _wait_any(ctx, earliest, waiting)
        if fired is not None:
            fired_until = fired if fired_until is None else max(fired, fired_until)
        ready, earliest, waiting = collect(plan, ctx.clocks.monotonic_ns(), fired_until, fd_ready)
        if ready:
            return _store_events(ctx, out, nevents, ready)


async def _wait_any(ctx: Any, deadline: Optional[int], waiting: list[FdSubscription],
                    extra_fd: Optional[int] = None) -> Optional[int]:
    """Sleep until ``deadline``, until one waiting fd may be ready, or until
    host fd ``extra_fd`` is readable. Returns ``deadline`` if the sleep is
    what ended the wait, else None."""
    watched: dict[tuple[int, Eventtype], Any] = {}
    for sub in waiting:
        entry = ctx.fds.get(sub.fd)  # still open: collect() just looked it up
        watched.setdefault((id(entry), sub.eventtype), (entry, sub.eventtype))
    if extra_fd is None and len(watched) <= 1:
        return await _wait_one(ctx, deadline, watched)
    outcome: list[Optional[int]] = [None]

    async with trio.open_nursery() as nursery:

        async def sleep() -> None:
            assert deadline is not None
            delay_ns = deadline - ctx.clocks.monotonic_ns()
            await trio.sleep(max(0, delay_ns) / 1e9)
            outcome[0] = deadline
            nursery.cancel_scope.cancel()

        async def watch(entry: Any, kind: Eventtype) -> None:
            await (entry.wait_readable() if kind == Eventtype.FD_READ else entry.wait_writable())
            nursery.cancel_scope.cancel()

        async def watch_extra(fd: int) -> None:
            await trio.lowlevel.wait_readable(fd)
            nursery.cancel_scope.cancel()

        if deadline is not None:
            nursery.start_soon(sleep)
        for entry, kind in watched.values():
            nursery.start_soon(watch, entry, kind)
        if extra_fd is not None:
            nursery.start_soon(watch_extra, extra_fd)
    return outcome[0]


async def _wait_one(ctx: Any, deadline: Optional[int], watched: dict[Any, tuple[Any, Eventtype]]) -> Optional[int]:
    """:func:`_wait_any` for at most one fd and no extra fd, in this task:
    the common wait of a server (one connection, with an idle timeout)
    without a nursery and a task per source."""
    if not watched:
        assert deadline is not None  # collect() waits on something
        await trio.sleep(max(0, deadline - ctx.clocks.monotonic_ns()) / 1e9)
        return deadline
    ((entry, kind),) = watched.values()
    wait = entry.wait_readable if kind == Eventtype.FD_READ else entry.wait_writable
    if deadline is None:
        await wait()
        return None
    with trio.move_on_after(max(0, deadline - ctx.clocks.monotonic_ns()) / 1e9) as scope:
        await wait()
    return deadline if scope.cancelled_caught else None


# -- epoll_oneoff: edge-triggered (WasmEdge) ------------------------------------------------------

_EDGE_READ = select.EPOLLIN | select.EPOLLRDHUP
_EDGE_WRITE = select.EPOLLOUT
_EDGE_ALWAYS = select.EPOLLHUP | select.EPOLLERR
_WANT_READ = _EDGE_READ | _EDGE_ALWAYS
_WANT_WRITE = _EDGE_WRITE | _EDGE_ALWAYS


class EdgePoller:
    """The persistent ``EPOLLET`` registrations of one context's ``epoll_oneoff``.

    Strategy: a real epoll set. Each call (re)registers the host fds it
    subscribes to with the union of the directions it asks for; edges the
    kernel reports are kept in ``pending`` (host fd -> epoll bits) until a
    call that subscribes to them delivers them, so an edge is never lost
    between calls. A registration ends when the fd table closes its entry
    (a close hook, run while the fd is still open: the kernel would keep the
    registration of a pre-opened listener, whose file the host shares, and
    report it for whatever socket reuses the fd number)."""

    def __init__(self, trigger: int = select.EPOLLET) -> None:
        self._epoll = select.epoll()
        self._trigger = trigger  # EPOLLET, or 0 for the level-triggered set of poll_oneoff
        self._closed = False
        self._owners: dict[int, tuple[Any, int]] = {}  # host fd -> (entry, registered mask)
        self._hooked: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self.pending: dict[int, int] = {}

    def fileno(self) -> int:
        return self._epoll.fileno()

    def register(self, host_fd: int, entry: Any, mask: int) -> None:
        """Watch ``host_fd`` (belonging to ``entry``) for ``mask``, edge-triggered."""
        old = self._owners.get(host_fd)
        if old is not None and old[0] is entry:
            if old[1] != mask:
                self._epoll.modify(host_fd, mask | self._trigger)
                self._owners[host_fd] = (entry, mask)
            return
        if old is not None:  # a stale owner (closed outside the table): drop what it left
            self.forget(host_fd, old[0])
        self._epoll.register(host_fd, mask | self._trigger)
        self._owners[host_fd] = (entry, mask)
        if entry not in self._hooked:  # once per entry, however often it is re-registered
            self._hooked.add(entry)
            entry.add_close_hook(lambda: self.forget(host_fd, entry))

    def forget(self, host_fd: int, entry: Any) -> None:
        """Stop watching ``host_fd`` for ``entry`` (its close hook: runs while
        the fd is still open, since epoll keeps the registration of a file
        that a shared descriptor keeps alive)."""
        owner = self._owners.get(host_fd)
        if self._closed or owner is None or owner[0] is not entry:
            return
        del self._owners[host_fd]
        self.pending.pop(host_fd, None)
        try:
            self._epoll.unregister(host_fd)
        except OSError:  # already gone (the fd was closed some other way)
            pass

    def retain(self, host_fds: "set[int] | dict[int, Any]") -> None:
        """Stop watching every host fd not in ``host_fds`` (a level-triggered
        set must hold only what the current call waits for)."""
        for host_fd in [fd for fd in self._owners if fd not in host_fds]:
            self.forget(host_fd, self._owners[host_fd][0])

    def ready_now(self) -> dict[int, int]:
        """Host fd -> epoll bits of the fds ready now (never waits)."""
        return dict(self._epoll.poll(0))

    def harvest(self) -> None:
        """Collect the edges the kernel has now (never waits)."""
        for fd, bits in self._epoll.poll(0):
            self.pending[fd] = self.pending.get(fd, 0) | bits

    def consume(self, delivered: set[tuple[int, int]]) -> None:
        """Forget edges that were just reported: (host fd, direction bits)."""
        for fd, direction in delivered:
            left = self.pending.get(fd, 0) & ~(direction | _EDGE_ALWAYS)
            if left:
                self.pending[fd] = left
            else:
                self.pending.pop(fd, None)

    def close(self) -> None:
        self._closed = True
        self._owners.clear()
        self.pending.clear()
        self._epoll.close()


def _edge_poller(ctx: Any) -> EdgePoller:
    if ctx.net.edge_poller is None:
        ctx.net.edge_poller = EdgePoller()
    return ctx.net.edge_poller


def _register_edges(ctx: Any, poller: EdgePoller, plan: Plan, retain: bool = False) -> None:
    """Register every subscribed host fd with the directions this call wants
    (and with ``retain``, unregister every other)."""
    masks: dict[int, tuple[Any, int]] = {}
    for sub in plan.subscriptions:
        if not isinstance(sub, FdSubscription):
            continue
        try:
            entry = _pollable_entry(ctx, sub)
        except WasiError:
            continue  # reported by the query as the event's error
        host_fd = entry.host_fd
        if host_fd is not None:
            bits = _EDGE_READ if sub.eventtype == _FD_READ else _EDGE_WRITE
            masks[host_fd] = (entry, masks.get(host_fd, (entry, 0))[1] | bits)
    if retain:
        poller.retain(masks)
    for host_fd, (entry, mask) in masks.items():
        poller.register(host_fd, entry, mask)


def _edge_readiness(ctx: Any, poller: EdgePoller, delivered: set[tuple[int, int]]) -> FdQuery:
    """Edge events from ``poller.pending`` for host fds, level ones otherwise;
    what it reports is added to ``delivered`` (consumed once the call returns)."""

    def query(sub: FdSubscription) -> Optional[Event]:
        try:
            entry = _pollable_entry(ctx, sub)
        except WasiError as exc:
            return Event(sub.userdata, exc.errno, sub.eventtype)
        host_fd = entry.host_fd
        if host_fd is None:
            return _level_event(entry, sub)
        reading = sub.eventtype == Eventtype.FD_READ
        direction = _EDGE_READ if reading else _EDGE_WRITE
        bits = poller.pending.get(host_fd, 0)
        if not bits & (direction | _EDGE_ALWAYS):
            return None
        delivered.add((host_fd, direction))
        level = _level_event(entry, sub)
        nbytes = level.nbytes if level is not None else 0
        flags = int(Eventrwflags.FD_READWRITE_HANGUP) if bits & select.EPOLLHUP else 0
        return Event(sub.userdata, Errno.SUCCESS, sub.eventtype, nbytes, flags)

    return query


def _edge_waiting(ctx: Any, waiting: list[FdSubscription]) -> list[FdSubscription]:
    """The waiting subscriptions the epoll set does not cover (no host fd)."""
    out = []
    for sub in waiting:
        entry = ctx.fds.get(sub.fd)
        if entry.host_fd is None:
            out.append(sub)
    return out


@extension_function(subscriptions=PTR, events=PTR, nsubscriptions=U32, nevents=PTR)
def epoll_oneoff(ctx: Any, subscriptions: int, events: int, nsubscriptions: int, nevents: int) -> ErrnoResult:
    """WasmEdge's edge-triggered ``poll_oneoff``: same arguments, layouts and
    errnos; an fd's readiness is reported once per change (see
    :class:`EdgePoller`). Registrations persist across calls until the fd is
    closed or the context is."""
    plan = _read_plan(ctx, subscriptions, events, nsubscriptions, nevents)
    poller = _edge_poller(ctx)
    _register_edges(ctx, poller, plan)
    poller.harvest()
    delivered: set[tuple[int, int]] = set()
    ready, earliest, waiting = collect(plan, ctx.clocks.monotonic_ns(), None, _edge_readiness(ctx, poller, delivered))
    if ready:
        poller.consume(delivered)
        return _store_events(ctx, events, nevents, ready)
    return Later(_edge_wait_and_store, ctx, poller, plan, earliest, waiting, events, nevents)


async def _edge_wait_and_store(ctx: Any, poller: EdgePoller, plan: Plan, earliest: Optional[int],
                               waiting: list[FdSubscription], out: int, nevents: int) -> int:
    fired_until: Optional[int] = None
    while True:
        fired = await _wait_any(ctx, earliest, _edge_waiting(ctx, waiting), poller.fileno())
        if fired is not None:
            fired_until = fired if fired_until is None else max(fired, fired_until)
        poller.harvest()
        delivered: set[tuple[int, int]] = set()
        query = _edge_readiness(ctx, poller, delivered)
        ready, earliest, waiting = collect(plan, ctx.clocks.monotonic_ns(), fired_until, query)
        if ready:
            poller.consume(delivered)
            return _store_events(ctx, out, nevents, ready)
