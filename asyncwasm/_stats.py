"""Statistics: what a run of guest code cost, in the style of WasmEdge's
statistics (instruction counting, cost measuring, time measuring).

:class:`Statistics` is the frozen record users see, from
``Execution.statistics()`` (one call) and ``Instance.statistics()`` (every
call into an instance). :class:`Meter` is the mutable tally the drivers in
:mod:`asyncwasm.execution` add to while a call runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, final

__all__ = ["Statistics", "Meter"]


@final
@dataclass(frozen=True)
class Statistics:
    """What guest code has cost so far. Fields:

    - ``calls``: calls into the guest from Python (an execution counts 1)
      and from other instances' guests (their fuel counts in ``fuel_used``
      as well; host calls and times count with the calling instance).
    - ``fuel_used``: fuel consumed: about one unit per Wasm instruction
      executed (the engine charges each straight-line region when entering
      it, so a region left early by a branch counts whole).
    - ``host_calls``: host functions the guest called.
    - ``suspensions``: host calls that returned an awaitable, so the guest
      waited for it in its trio task.
    - ``slices``: times the driver ran the engine: each fuel slice (an
      async one ends in a trio checkpoint) and each resumption after a
      suspended host call.
    - ``wall_time``: seconds from the start to the end of the calls
      (until now for a call still running), including time spent suspended
      and waiting for other tasks.
    - ``guest_time``: seconds inside the engine: Wasm code and the
      synchronous host functions it called.

    Calls that take the synchronous fast path (``func(*args)`` on an
    instance without a fuel budget or timeout, while no async call holds
    it) count in ``calls``, ``fuel_used`` and ``host_calls`` but are not
    timed: reading the clock would double the cost of a short call. A call
    made from a host function while another call runs (re-entry) counts on
    its own; its guest time is also inside the outer call's.

        >>> instance.statistics()
        Statistics(calls=3, fuel_used=120000, host_calls=2, suspensions=0, slices=3, wall_time=0.0021, guest_time=0.0019)
    """

    calls: int = 0
    fuel_used: int = 0
    host_calls: int = 0
    suspensions: int = 0
    slices: int = 0
    wall_time: float = 0.0
    guest_time: float = 0.0


@final
class Meter:
    """A mutable tally behind a :class:`Statistics`.

    A driver creates one per call: it adds each slice's ``guest_time`` and
    ``slices`` as they happen, and calls :meth:`finish` with the fiber once
    the call is over, which takes the fiber's own counters (fuel, host
    calls, suspensions) and stops the wall clock. Instances keep a Meter of
    totals that finished calls are :meth:`add`-ed to.
    """

    __slots__ = ("calls", "fuel_used", "host_calls", "suspensions", "slices", "wall_time", "guest_time",
                 "_started", "_fiber")  # fmt: skip

    def __init__(self) -> None:
        self.calls = 0
        self.fuel_used = 0
        self.host_calls = 0
        self.suspensions = 0
        self.slices = 0
        self.wall_time = 0.0
        self.guest_time = 0.0
        self._started: Optional[float] = None
        self._fiber: Any = None

    def start(self, fiber: Any) -> None:
        """A call begins: count it, start the wall clock, follow ``fiber``'s counters."""
        self.calls += 1
        self._started = time.perf_counter()
        self._fiber = fiber

    def finish(self) -> None:
        """The call is over (however it ended): fold in the fiber's counters."""
        fiber, self._fiber = self._fiber, None
        if fiber is not None:
            self.fuel_used += fiber.fuel_used
            self.host_calls += fiber.host_calls
            self.suspensions += fiber.suspensions
        if self._started is not None:
            self.wall_time += time.perf_counter() - self._started
            self._started = None

    def add(self, other: "Meter") -> None:
        """Add a finished call's tally to these totals."""
        self.calls += other.calls
        self.fuel_used += other.fuel_used
        self.host_calls += other.host_calls
        self.suspensions += other.suspensions
        self.slices += other.slices
        self.wall_time += other.wall_time
        self.guest_time += other.guest_time

    def snapshot(self, *, fast: tuple[int, int, int] = (0, 0, 0)) -> Statistics:
        """The record as of now, a running call included; ``fast`` adds the
        engine's fast-path counters ``(calls, fuel_used, host_calls)``."""
        fuel_used, host_calls, suspensions, wall_time = self.fuel_used, self.host_calls, self.suspensions, self.wall_time
        if self._fiber is not None:
            fuel_used += self._fiber.fuel_used
            host_calls += self._fiber.host_calls
            suspensions += self._fiber.suspensions
        if self._started is not None:
            wall_time += time.perf_counter() - self._started
        return Statistics(
            calls=self.calls + fast[0],
            fuel_used=fuel_used + fast[1],
            host_calls=host_calls + fast[2],
            suspensions=suspensions,
            slices=self.slices,
            wall_time=wall_time,
            guest_time=self.guest_time,
        )
