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
  says so; trio streams when a chunk is buffered (see :mod:`.stdio`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Sequence, Union

import trio

from .abi import (
    EVENT,
    SUBSCRIPTION_CLOCK,
    SUBSCRIPTION_FD,
    SUBSCRIPTION_HEAD,
    SUBSCRIPTION_PAYLOAD_OFFSET,
    SUBSCRIPTION_SIZE,
    Clockid,
    Errno,
    Eventtype,
    Rights,
    Subclockflags,
    WasiError,
)
from .decl import PTR, U32, host_function
from .later import Later

ErrnoResult = Union[int, Awaitable[int]]
_U64 = 0xFFFFFFFFFFFFFFFF


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
            subs.append(FdSubscription(userdata, Eventtype(tag), fd))
        else:
            subs.append(BadSubscription(userdata, tag, Errno.INVAL))
    return subs


def clock_deadline(sub: ClockSubscription, monotonic_now: int, realtime_now: int) -> int:
    """The deadline of a clock subscription on the monotonic clock (ns).

    INVAL for unknown flag bits or clock ids; NOTSUP for the CPU-time clocks
    (we cannot sleep until a CPU-time instant)."""
    if sub.flags & ~int(Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME):
        raise WasiError(Errno.INVAL)
    absolute = bool(sub.flags & Subclockflags.SUBSCRIPTION_CLOCK_ABSTIME)
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


def _fd_readiness(ctx: Any) -> FdQuery:
    def query(sub: FdSubscription) -> Optional[Event]:
        reading = sub.eventtype == Eventtype.FD_READ
        needed = Rights.POLL_FD_READWRITE | (Rights.FD_READ if reading else Rights.FD_WRITE)
        try:
            entry = ctx.fds.get(sub.fd, needed)
        except WasiError as exc:
            return Event(sub.userdata, exc.errno, sub.eventtype)
        try:
            ready = entry.poll_read() if reading else entry.poll_write()
        except OSError:
            return Event(sub.userdata, Errno.IO, sub.eventtype)
        if ready is None:
            return None
        nbytes, flags = ready
        return Event(sub.userdata, Errno.SUCCESS, sub.eventtype, min(nbytes, _U64), flags)

    return query


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
    if nsubscriptions == 0:
        raise WasiError(Errno.INVAL)
    ctx.memory.check(events, nsubscriptions * EVENT.size)
    ctx.memory.check(nevents, 4)
    subs = decode_subscriptions(ctx.memory.read(subscriptions, nsubscriptions * SUBSCRIPTION_SIZE))
    plan = make_plan(subs, ctx.clocks.monotonic_ns(), ctx.clocks.realtime_ns())
    fd_ready = _fd_readiness(ctx)
    ready, earliest, waiting = collect(plan, ctx.clocks.monotonic_ns(), None, fd_ready)
    if ready:
        return _store_events(ctx, events, nevents, ready)
    return Later(_wait_and_store, ctx, plan, fd_ready, earliest, waiting, events, nevents)


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


async def _wait_any(ctx: Any, deadline: Optional[int], waiting: list[FdSubscription]) -> Optional[int]:
    """Sleep until ``deadline`` or until one waiting fd may be ready. Returns
    ``deadline`` if the sleep is what ended the wait, else None."""
    watched: dict[tuple[int, Eventtype], Any] = {}
    for sub in waiting:
        entry = ctx.fds.get(sub.fd)  # still open: collect() just looked it up
        watched.setdefault((id(entry), sub.eventtype), (entry, sub.eventtype))
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

        if deadline is not None:
            nursery.start_soon(sleep)
        for entry, kind in watched.values():
            nursery.start_soon(watch, entry, kind)
    return outcome[0]
