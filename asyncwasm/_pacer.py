"""Pacer: how much fuel the next slice of a CPU-bound guest may burn.

Strategy: the engine stops only on fuel, never on time, so a slice's length
in seconds is fuel times the guest's cost per unit of fuel, which depends
on its instruction mix (and on the synchronous host functions it calls,
which burn time but almost no fuel). The pacer learns that cost from every
slice it sees and sizes the next one to last a target time:

- a slice that ran slower than expected lowers the estimate at once, so
  the next slice is already short;
- a faster one raises it by at most 2x per slice, so a guest that turns
  expensive mid-slice overshoots its target by at most 2x;
- the first slice of a new instance is small (``INITIAL_FUEL``) and later
  slices grow from there.

The target time comes from the trio side (:func:`slice_target`): with n
guests running their slices in one trio run, each aims at
``yield_interval / (4 n)``, never below ``MIN_SLICE_TIME``, so that one
round of the event loop, in which every runnable task takes one step, stays
near ``yield_interval / 4`` however many guests share it. A task that
becomes runnable (a sleeper whose time came) waits for the end of the
round it fell in and runs somewhere in the next, so its lateness is up to
two rounds: about ``yield_interval / 2`` (2.5 ms by default), and with 100
spinning guests 100 slice boundaries (about 3 us each) more.
"""

from __future__ import annotations

from typing import final

import trio

__all__ = ["Pacer", "Crowd", "crowd", "slice_target", "MIN_SLICE_TIME"]

#: Shortest slice aimed at, in seconds: the checkpoint between two slices
#: costs about 3 us, so at this floor a crowded loop spends about an eighth
#: of its time switching guests (the price of waking a sleeper within 5 ms
#: among 100 spinning guests).
MIN_SLICE_TIME = 20e-6
#: Fuel of the first slice of an instance: tens of microseconds of pure
#: Wasm, and still short when every instruction calls a slow host function.
INITIAL_FUEL = 10_000
#: Bounds on a slice's fuel: a floor so that very slow mixes still progress
#: in reasonable steps, a ceiling far beyond any realistic slice.
MIN_FUEL = 1_000
MAX_FUEL = 1 << 40
# Slices shorter than this in both fuel and time are mostly fixed overhead
# and say little about the guest's speed.
_OBSERVE_MIN_FUEL = 10_000
_OBSERVE_MIN_TIME = 50e-6


@final
class Pacer:
    """A running estimate of seconds per unit of fuel, for one instance
    (or one call of a function that has no instance)."""

    __slots__ = ("seconds_per_fuel", "_fuel", "_seconds")

    def __init__(self) -> None:
        self.seconds_per_fuel = 0.0  # unknown: the first slice is INITIAL_FUEL
        # Short slices are summed until they say something (see observe).
        self._fuel = 0
        self._seconds = 0.0

    def fuel_for(self, seconds: float) -> int:
        """Fuel that should take about ``seconds``."""
        if self.seconds_per_fuel <= 0.0:
            return INITIAL_FUEL
        fuel = int(seconds / self.seconds_per_fuel)
        return MIN_FUEL if fuel < MIN_FUEL else MAX_FUEL if fuel > MAX_FUEL else fuel

    def observe(self, fuel: int, seconds: float) -> None:
        """A slice burned ``fuel`` in ``seconds``.

        Slices too short to measure are added up until their sum is
        significant: otherwise one slow slice (the process preempted by the
        OS, say) would shrink the slices below the size that is ever
        observed again, and the estimate could never recover."""
        fuel += self._fuel
        seconds += self._seconds
        if fuel < _OBSERVE_MIN_FUEL and seconds < _OBSERVE_MIN_TIME:
            self._fuel, self._seconds = fuel, seconds
            return
        self._fuel, self._seconds = 0, 0.0
        rate = seconds / max(fuel, 1)
        if rate >= self.seconds_per_fuel or self.seconds_per_fuel <= 0.0:
            self.seconds_per_fuel = rate  # slower than thought: believe it at once
        else:
            self.seconds_per_fuel = max(rate, self.seconds_per_fuel * 0.5)


@final
class FixedPacer:
    """Stands in for a :class:`Pacer` where slices must be of a known size
    (tests and benchmarks): every slice gets ``fuel``."""

    __slots__ = ("fuel",)

    def __init__(self, fuel: int) -> None:
        self.fuel = fuel

    def fuel_for(self, seconds: float) -> int:
        return self.fuel

    def observe(self, fuel: int, seconds: float) -> None:
        pass


@final
class Crowd:
    """How many guests of one trio run are between two slices right now
    (running, or runnable at a checkpoint; not suspended on a host call)."""

    __slots__ = ("running",)

    def __init__(self) -> None:
        self.running = 0


_CROWD: "trio.lowlevel.RunVar[Crowd]" = trio.lowlevel.RunVar("asyncwasm.crowd")


def crowd() -> Crowd:
    """The :class:`Crowd` of the current trio run (made on first use)."""
    try:
        return _CROWD.get()
    except LookupError:
        new = Crowd()
        _CROWD.set(new)
        return new


def slice_target(yield_interval: float, running: int) -> float:
    """Seconds the next slice should last when ``running`` guests share the
    event loop and each must yield at least every ``yield_interval``."""
    target = yield_interval / (4 * max(running, 1))
    return target if target > MIN_SLICE_TIME else MIN_SLICE_TIME
