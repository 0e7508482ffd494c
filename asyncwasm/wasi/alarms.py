"""Alarms: the deadlines of waiting polls, kept by one timer task per trio run.

    >>> alarms = Alarms.current()                      # this trio run's
    >>> handle = alarms.set(trio.current_time() + 30, on_time)
    >>> ...                                            # the wait ends first:
    >>> alarms.clear(handle)                           # on_time is never called

Why: a guest's ``poll_oneoff`` usually carries an idle timeout beside its
sockets, and a server waits once per request. A trio cancel scope per wait
(``move_on_after``) costs about 5 us, several times the rest of the wait;
an alarm costs a heap push. The waiting task waits for readiness alone,
and when a deadline passes, the timer task calls ``on_time()``, which wakes
the waiter its own way (``SockMirror`` calls ``notify_closing`` on the fd
its guest waits on). A socket mirror keeps its one alarm from wait to
wait and sets it again only when it goes off early (``SockMirror._arm``),
so a busy server sets about one per timeout period, not one per request.

``clock`` is the run's clock (deadlines are on it); ``running`` turns
False when the run's timer task ends, so a holder of an alarm from an
earlier trio run knows to set a new one in this run's alarms.

Rule: the timer task follows trio's clock (virtual clocks work), sleeps
until the earliest deadline in one cancel scope whose deadline moves when
an earlier alarm is set, and calls every ``on_time`` whose deadline has
passed, in deadline order. ``on_time`` must not raise or block: it runs in
a system task.

Strategy: cleared alarms stay in the heap (a clear is an O(1) mark) until
they come first or until the heap holds twice as many cleared as set
alarms; then it is rebuilt, so its size stays within a constant of the
waits in progress and clearing costs amortized O(1). The heap holds
(deadline, number) only and the callbacks sit in a dict by number, so a
clear lets go of its callback at once: a cleared alarm's ``on_time`` (a
guest's socket mirror, and through it the guest's instance and memory)
must not live on until its deadline, perhaps minutes after the guest
ended (regression: ``MemoryBudget`` pages held by finished guests).
"""

from __future__ import annotations

import heapq
import math
from typing import Callable, Optional, final

import trio

__all__ = ["Alarms"]

# The heap is rebuilt when it holds more than this many entries beyond twice the live ones.
_SLACK = 64


@final
class Alarms:
    """The alarms of one trio run (see the module docstring)."""

    __slots__ = ("_heap", "_live", "_counter", "_scope", "_started", "clock", "running")

    def __init__(self) -> None:
        # (deadline, number): a number not in _live is a cleared alarm
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, Callable[[], None]] = {}  # number -> on_time
        self._counter = 0
        self._scope: Optional[trio.CancelScope] = None  # the timer task's sleep
        self._started = False
        self.clock = trio.lowlevel.current_clock()  #: the run's clock (deadlines are on it)
        self.running = True  #: False once the trio run is over: alarms kept from it are gone

    @staticmethod
    def current() -> "Alarms":
        """The alarms of the current trio run (made, with their timer task, on first use)."""
        try:
            return _ALARMS.get()
        except LookupError:
            alarms = Alarms()
            _ALARMS.set(alarms)
            return alarms

    def set(self, deadline: float, on_time: Callable[[], None]) -> int:
        """Call ``on_time()`` once trio's clock reaches ``deadline``; a handle for :meth:`clear`."""
        self._counter += 1
        number = self._counter
        heapq.heappush(self._heap, (deadline, number))
        self._live[number] = on_time
        if not self._started:
            self._started = True
            trio.lowlevel.spawn_system_task(self._run, name="asyncwasm.alarms")
        elif self._scope is not None and deadline < self._scope.deadline:
            self._scope.deadline = deadline
        return number

    def clear(self, handle: int) -> None:
        """Forget an alarm (nothing if it went off already)."""
        self._live.pop(handle, None)
        if len(self._heap) > 2 * len(self._live) + _SLACK:
            self._heap = [entry for entry in self._heap if entry[1] in self._live]
            heapq.heapify(self._heap)

    def __len__(self) -> int:
        """Alarms set and not yet gone off or cleared."""
        return len(self._live)

    async def _run(self) -> None:
        try:
            await self._go_off()
        finally:
            self.running = False

    async def _go_off(self) -> None:
        live = self._live
        while True:
            heap = self._heap  # clear() may have rebuilt it
            while heap and heap[0][1] not in live:
                heapq.heappop(heap)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._scope:
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            heap = self._heap
            while heap and heap[0][0] <= now:
                on_time = live.pop(heapq.heappop(heap)[1], None)
                if on_time is not None:
                    on_time()
            on_time = None  # no callback held while asleep


_ALARMS: "trio.lowlevel.RunVar[Alarms]" = trio.lowlevel.RunVar("asyncwasm.alarms")
