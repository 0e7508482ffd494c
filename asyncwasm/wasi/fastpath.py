"""The C path of the hot socket calls, kept in step with the fd table.

    >>> mirror = SockMirror(ctx)                 # one per WasiContext (if AVAILABLE)
    >>> ctx.fds.mirror = mirror                  # the table installs and removes socket fds
    >>> call = mirror.wrap("sock_recv", bound)   # what the engine calls: C first, then `bound`

``sock_recv``, ``sock_send``, ``fd_read``/``fd_write`` on sockets and
``poll_oneoff`` run in the engine (``_engine/wasi_sock.c``): the
non-blocking system call on the host socket, guest memory read and written
in C. They come back here, or to the Python function they wrap, only when
the call would wait or is unusual (see the C file's header): the Python
functions stay the one definition of every rule, and C takes only the calls
it finishes exactly as they would.

Rule: the C side sees an fd only while this module says so. The fd table
calls :meth:`SockMirror.install` when it opens an entry and
:meth:`SockMirror.remove` before it closes one; a socket entry pushes its
rights and flags when they change (``SocketEntry.fdflags`` and
``rights_base`` are properties for that). Only plain :class:`SocketEntry`
objects are mirrored (a subclass, a TLS connection, keeps the Python path)
and :class:`HandedListenerEntry` for ``poll_oneoff`` readiness; the C side
reads host fds from the socket objects, so a socket Python closed is never
used, whatever the mirror says.

Rule: ``poll_oneoff`` asks one level-triggered epoll set per context which
subscribed sockets are ready (one system call however many), reports every
ready subscription, and, when none is, the guest's task waits in trio on
that one fd: many connections becoming ready wake the instance once. The
set is closed when nothing is registered, so an idle instance holds no fd.
"""

from __future__ import annotations

import errno as host_errno
import functools
import math
import socket
import sys
import time
import weakref
from typing import Any, Callable, Generator, Optional

import trio

from .. import _engine
from ..execution import Waiting
from .abi import _HOST_ERRNO, Errno
from .alarms import Alarms
from .decl import _settle
from .later import Later
from .sockets import HandedListenerEntry, SocketEntry

__all__ = ["AVAILABLE", "KINDS", "SockMirror", "answer_times", "answer_percentile"]

#: WASI function -> the SockCall kind of its C path (wasi_sock.c ``enum sock_kind``).
KINDS = {"sock_recv": 0, "sock_send": 1, "fd_read": 2, "fd_write": 3, "poll_oneoff": 4}
_POLL = KINDS["poll_oneoff"]
_SUCCESS = int(Errno.SUCCESS)


def _configure() -> bool:
    """Give the engine the errno map; whether the C path works here."""
    if not sys.platform.startswith("linux"):
        return False
    table = bytearray(256)
    for host, wasi in _HOST_ERRNO.items():
        if 0 < host < 256:
            table[host] = int(wasi)
    table[host_errno.EAGAIN] = int(Errno.AGAIN)
    with socket.socket() as probe:
        return bool(_engine.SockTable.configure(bytes(table), probe))


#: Whether the engine's C path can run on this platform (Linux, CPython's socket layout).
AVAILABLE = _configure()


def answer_times(on: bool) -> list[tuple[float, float, int]]:
    """Turn the engine's answer-time histogram on or off (for benchmarks;
    process-wide, off by default) and return what it counted since the last
    call, emptied: ``(low, high, count)`` per non-empty bucket (seconds,
    four buckets per doubling). An answer time runs from the kernel's arrival
    time of a request's first bytes received by the C path (SO_TIMESTAMPNS)
    to the first send on that socket after it: the server's own latency,
    without the client's.

        >>> answer_times(True)           # start counting
        >>> ...                          # load the server
        >>> answer_percentile(answer_times(False), 0.99)   # seconds"""
    counts = _engine.SockTable.answer_times(on) if AVAILABLE else ()
    return [(_bucket_floor(i), _bucket_floor(i + 1), n) for i, n in enumerate(counts) if n]


def _bucket_floor(bucket: int) -> float:
    if bucket == 0:
        return 0.0
    e, q = divmod(bucket - 1, 4)
    return (1 << e) * (1 + q / 4) * 1e-6


def answer_percentile(histogram: list[tuple[float, float, int]], fraction: float) -> float:
    """The upper bound (seconds) of the bucket that holds the ``fraction``
    quantile of :func:`answer_times`' histogram (nan when empty)."""
    total = sum(n for _, _, n in histogram)
    seen = 0
    for _, high, n in histogram:
        seen += n
        if seen >= fraction * total:
            return high
    return float("nan")


class SockMirror:
    """The C mirror of one context's socket fds, and the waits its calls
    need (see the module docstring). ``native_clocks``: the context's
    clocks are the host's, so ``poll_oneoff`` may read them in C."""

    def __init__(self, ctx: Any, native_clocks: bool) -> None:
        self.ctx = ctx
        self.native_clocks = native_clocks
        self.table = _engine.SockTable(poll_wait=functools.partial(_PollWait, self), send_rest=self._send_rest)
        self._sources: dict[int, Any] = {}  # guest fd -> ConnectionSource of a mirrored listener
        self._python_poll: Optional[Callable[..., Any]] = None
        # The wait in progress (one task per context): the epoll fd it
        # watches, or its task parked; whether its deadline passed.
        self._waiting_on = -1
        self._parked: Optional[trio.lowlevel.Task] = None
        self._fired = False
        # The deadline of the wait in progress (trio's clock; None: none),
        # and the one alarm this mirror keeps (see _arm): where, when, and
        # the callback it calls, which holds the mirror weakly.
        self._deadline: Optional[float] = None
        self._alarms: Optional[Alarms] = None
        self._alarm = 0
        self._alarm_at = math.inf
        ref = weakref.ref(self)
        self._alarm_callback = lambda: _on_time(ref)

    def wrap(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        """``call`` (the bound WASI function ``name``) with its C path, if it has one."""
        kind = KINDS.get(name)
        if kind is None or (kind == _POLL and not self.native_clocks):
            return call
        if kind == _POLL:
            self._python_poll = call
        return _engine.SockCall(kind, self.table, call)

    # -- the fd table's side ----------------------------------------------------------
    def install(self, fd: int, entry: Any) -> None:
        cls = entry.__class__
        sock = entry.sock if cls is SocketEntry or cls is HandedListenerEntry else None
        if sock is None:
            return
        source = entry.source if cls is HandedListenerEntry else None
        self.table.install(fd, sock, entry.rights_base, entry.fdflags, entry.is_stream, source)
        if source is not None:
            self._sources[fd] = source
        entry.native = (self, fd)

    def update(self, entry: Any) -> None:
        self.table.update(entry.native[1], entry.rights_base, entry.fdflags)

    def counts(self, fd: int) -> tuple[int, int]:
        return self.table.counts(fd)

    def remove(self, fd: int, entry: Any) -> None:
        """Forget ``fd`` (before ``entry`` closes its socket); its C byte
        counts move to the entry."""
        if getattr(entry, "native", None) is None:
            return
        received, sent = self.table.remove(fd)
        entry.native = None
        entry.count_bytes(received, sent)
        self._sources.pop(fd, None)
        if self.table.idle:
            self.close_epoll()

    def bind_memory(self, memory: Any) -> None:
        """The guest memory the C path reads and writes (an engine Memory;
        anything else, a test's fake, leaves every call to Python)."""
        self.table.bind_memory(memory if isinstance(memory, _engine.Memory) else None)

    def close_epoll(self) -> None:
        epfd = self.table.epoll_fd
        if epfd >= 0:
            try:
                trio.lowlevel.notify_closing(epfd)  # a task waiting on it wakes (then finds its fds gone)
            except RuntimeError:  # outside trio: nobody can be waiting
                pass
            self.table.close_epoll()

    def close(self) -> None:
        """The context closed (its table already removed every fd)."""
        if self._alarms is not None and self._alarm_at != math.inf:
            self._alarms.clear(self._alarm)
            self._alarm_at = math.inf
        self.table.clear()
        self.table.bind_memory(None)
        self._sources.clear()
        self.close_epoll()

    # -- what C hands back: the waits ------------------------------------------------------
    def _poll_waiting(self, args: tuple[int, int, int, int], start: tuple[int, int],
                      earliest: Optional[int], listeners: bool) -> Generator[Any, Any, int]:
        """The body of a :class:`_PollWait` (what its ``__await__`` returns):
        one generator, so that every trip through trio (two per request on
        a server that waits between requests) resumes one frame here, not a
        chain of coroutines."""
        # C found nothing ready. Let the other tasks run once and look again
        # before waiting: on a busy server the data often arrives meanwhile,
        # and that round costs less than a wait. (Either way the task passes
        # a schedule point: a _PollWait is Waiting.)
        yield from trio.lowlevel.checkpoint().__await__()
        fired_until: Optional[int] = None
        while True:
            done = self.table.poll_scan(args, start, fired_until)
            if done:
                return _SUCCESS
            if done is None:  # the table changed under the wait (fds closed): Python's poll_oneoff decides
                assert self._python_poll is not None
                result = self._python_poll(*args)
                return result if result.__class__ is int else (yield from result.__await__())
            # Wait until the epoll set is readable, a handed listener may
            # have a connection, or `earliest` (monotonic ns) passes (trio's
            # clock decides: virtual clocks work). The task waits in one
            # trio primitive: wait_readable on the epoll set, or parked when
            # there is none. The deadline is an alarm (see .alarms) and the
            # listeners' sources are watched (ConnectionSource.watch);
            # either ends the wait through _wake. No cancel scope, no helper
            # task: a server waits once per request.
            epfd = self.table.epoll_fd
            self._fired = False
            stops = [source.watch(self._wake, self) for source in set(self._sources.values())] if listeners else ()
            if earliest is not None:
                alarms = self._alarms
                if alarms is None or not alarms.running:
                    alarms = self._alarms = Alarms.current()
                    self._alarm_at = math.inf
                at = self._deadline = alarms.clock.current_time() + max(0, earliest - time.monotonic_ns()) / 1e9
                if at < self._alarm_at:
                    self._arm(at)
            assert epfd >= 0 or stops or earliest is not None, "a poll waits for something"
            try:
                if epfd >= 0:
                    self._waiting_on = epfd
                    try:
                        yield from trio.lowlevel.wait_readable(epfd).__await__()
                    except (trio.ClosedResourceError, OSError):  # woken by _wake, or the set closed: the scan tells
                        pass
                else:
                    self._parked = trio.lowlevel.current_task()
                    yield from trio.lowlevel.wait_task_rescheduled(self._unpark).__await__()
            finally:
                self._waiting_on = -1
                self._parked = None
                self._deadline = None  # the alarm stays: the next wait most likely needs one later
                for stop in stops:
                    stop()
            if self._fired:
                fired_until = earliest if fired_until is None else max(earliest, fired_until)  # type: ignore[type-var]

    def _arm(self, at: float) -> None:
        """Make the mirror's one alarm go off at ``at``.

        Strategy: a server waits once per request, each time with a
        deadline (its idle timeout) a little later than the last. Instead
        of setting an alarm per wait and clearing it after, the mirror
        keeps one: a wait whose deadline is no earlier than the alarm's
        leaves it be, and when it goes off before the deadline of the wait
        then in progress (:meth:`_on_time`) it is set again for that
        deadline. So a busy server sets an alarm once per timeout period,
        not per request. The alarm holds the mirror weakly: a pending one
        never keeps a finished guest's memory alive."""
        alarms = self._alarms
        assert alarms is not None
        if self._alarm_at != math.inf:
            alarms.clear(self._alarm)
        self._alarm = alarms.set(at, self._alarm_callback)
        self._alarm_at = at

    def _on_time(self) -> None:
        """The mirror's alarm went off."""
        self._alarm_at = math.inf
        deadline = self._deadline
        if deadline is None:  # no wait in progress: the alarm lapses
            return
        if self._alarms is not None and self._alarms.clock.current_time() < deadline:
            self._arm(deadline)  # set for an earlier wait: the one in progress ends later
            return
        self._fired = True
        self._wake()

    def _wake(self) -> None:
        """End the wait in progress, if any (called at most once per wait by
        design, harmless after it ended)."""
        if self._parked is not None:
            task, self._parked = self._parked, None
            trio.lowlevel.reschedule(task)
        elif self._waiting_on >= 0:
            fd, self._waiting_on = self._waiting_on, -1
            trio.lowlevel.notify_closing(fd)  # the wait raises ClosedResourceError: _poll_waiting looks again

    def _unpark(self, raise_cancel: Any) -> Any:
        self._parked = None  # cancelled while parked
        return trio.lowlevel.Abort.SUCCEEDED

    def _send_rest(self, fd: int, iovs: int, niovs: int, so_datalen: int, done: int) -> Any:
        """A blocking socket took ``done`` bytes of a send in C: the rest
        waits here, as :meth:`SocketEntry.send` would."""
        entry = self.ctx.fds.get(fd)
        buffers = self.ctx.memory.iovecs(iovs, niovs)
        return _settle(Later(self._send_rest_waiting, entry, buffers, so_datalen, done))

    async def _send_rest_waiting(self, entry: SocketEntry, buffers: list, so_datalen: int, done: int) -> int:
        sent = await entry.send_wait(buffers, None, done)
        self.ctx.memory.store_u32(so_datalen, sent)
        return _SUCCESS


def _on_time(ref: "weakref.ref[SockMirror]") -> None:
    mirror = ref()
    if mirror is not None:
        mirror._on_time()


class _PollWait(Waiting):
    """A ``poll_oneoff`` that found nothing ready: awaiting it (once) waits
    until something is (:meth:`SockMirror._poll_waiting`); it always passes
    a trio schedule point."""

    __slots__ = ("_mirror", "_args", "_start", "_earliest", "_listeners")

    def __init__(self, mirror: SockMirror, args: tuple[int, int, int, int], start: tuple[int, int],
                 earliest: Optional[int], listeners: bool) -> None:
        self._mirror: Optional[SockMirror] = mirror
        self._args = args
        self._start = start
        self._earliest = earliest
        self._listeners = listeners

    def __await__(self) -> Generator[Any, Any, int]:
        mirror = self._mirror
        if mirror is None:
            raise RuntimeError("this awaitable was closed or already awaited")
        self._mirror = None
        return mirror._poll_waiting(self._args, self._start, self._earliest, self._listeners)

    def close(self) -> None:
        """Forget the wait (it was never awaited)."""
        self._mirror = None
