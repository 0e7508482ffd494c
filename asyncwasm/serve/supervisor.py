"""Supervisor: keeps N instances of a guest running, restarting failures.

    >>> async def life(index: int, started: Callable[[], None]) -> None:
    ...     instance = await linker.instantiate_async(module)
    ...     started()
    ...     await instance.exports["_start"].call_async()
    >>> supervisor = Supervisor(life, 4, log=print)
    >>> await supervisor.run()          # until cancelled

Each slot runs ``life(index, started)`` in its own task. A life that ends,
whatever the reason (the guest returned, called ``proc_exit``, trapped, ran
out of fuel, failed to instantiate), is logged and started again after a
back-off delay that doubles on each consecutive failure, up to a maximum,
and resets once an instance has stayed up for ``Backoff.reset_after``
seconds. Cancellation (shutdown) is never a failure: it just ends the slot.

Log lines (one per event, ``instance N: ...``) go to ``log``:
``started``, ``exited with status S``, ``trapped: MESSAGE``, ``failed: ...``,
``restarting in T s``, ``stopped``. With more than :data:`LOG_EACH` slots,
the first starts and the final stops are one line each (``10000 instances
started``), not one per instance; restarts and their reasons stay per
instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

import trio

from .._errors import Exit, FuelExhausted, Trap

__all__ = ["Backoff", "Supervisor", "Life", "describe_end", "end_reason", "LOG_EACH", "REASONS"]

#: Up to this many slots, every first start and final stop is logged per instance.
LOG_EACH = 16

#: Why a life ended, as counted in ``Supervisor.restarts_by_reason``:
#: returned or ``proc_exit``, trapped, out of fuel, anything else
#: (instantiation failed, a host error).
REASONS = ("exit", "trap", "fuel", "crash")

#: One life of an instance: ``life(index, started)`` calls ``started()`` once
#: the instance is up, then runs until the guest ends (or raises).
Life = Callable[[int, Callable[[], None]], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial`` seconds after the first failure, times
    ``factor`` after each consecutive one, at most ``maximum``; a life that
    lasted ``reset_after`` seconds counts as healthy (the next delay is
    ``initial`` again).

        >>> [Backoff(0.1, 1.0).delay(n) for n in range(1, 6)]
        [0.1, 0.2, 0.4, 0.8, 1.0]
    """

    initial: float = 0.1
    maximum: float = 30.0
    factor: float = 2.0
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        if not (0 <= self.initial <= self.maximum) or self.factor < 1 or self.reset_after < 0:
            raise ValueError(f"bad back-off {self!r}: need 0 <= initial <= maximum, factor >= 1")

    def delay(self, failures: int) -> float:
        """The delay before restart number ``failures`` (1 = first failure)."""
        if failures <= 0:
            return 0.0
        exponent = min(failures - 1, 64)  # no float overflow
        return min(self.maximum, self.initial * self.factor ** exponent)


def describe_end(exc: Optional[BaseException]) -> str:
    """How a life ended, for the log: ``None`` is a normal return."""
    if exc is None:
        return "exited with status 0"
    if isinstance(exc, Exit):
        return f"exited with status {exc.code}"
    if isinstance(exc, FuelExhausted):
        return "ran out of fuel"
    if isinstance(exc, Trap):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"trapped: {first}"
    return f"failed: {type(exc).__name__}: {exc}"


def end_reason(exc: Optional[BaseException]) -> str:
    """The :data:`REASONS` entry for how a life ended (``None``: returned).

        >>> end_reason(None), end_reason(FuelExhausted("out")), end_reason(OSError())
        ('exit', 'fuel', 'crash')
    """
    if exc is None or isinstance(exc, Exit):
        return "exit"
    if isinstance(exc, FuelExhausted):
        return "fuel"
    if isinstance(exc, Trap):
        return "trap"
    return "crash"


class Supervisor:
    """Runs ``count`` slots of ``life`` (see the module docstring).

    ``running`` is how many instances are up right now; ``restarts`` counts
    restarts since the start, ``restarts_by_reason`` the same by why the
    life ended (see :data:`REASONS`). :meth:`stop_restarting` lets lives that end from now
    on stay ended (used while shutting down). ``announce=False`` leaves first
    starts and final stops out of the log (a generation built by a reload
    says it started in one line of its own); restarts are always logged."""

    def __init__(self, life: Life, count: int, *, backoff: Backoff = Backoff(),
                 log: Callable[[str], None] = lambda line: None, announce: bool = True) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"instance count must be an int >= 1, not {count!r}")
        self.life = life
        self.count = count
        self.backoff = backoff
        self.log = log
        self.running = 0
        self.restarts = 0
        self.restarts_by_reason = dict.fromkeys(REASONS, 0)
        self.restarting = True
        self._all_started = trio.Event()
        self._started_once = 0
        self.announce = announce
        self._log_each = announce and count <= LOG_EACH
        self._stopped = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every slot until cancelled (or until every slot ended after
        :meth:`stop_restarting`). ``nursery.start(supervisor.run)`` returns
        once every instance has started the first time (or failed to)."""
        try:
            async with trio.open_nursery() as nursery:
                for index in range(self.count):
                    nursery.start_soon(self._slot, index)
                await self._all_started.wait()
                task_status.started()
        finally:
            if self._stopped and self.announce and not self._log_each:
                self.log(f"{self._stopped} instances stopped")

    def stop_restarting(self) -> None:
        self.restarting = False

    def _first_start_done(self) -> None:
        self._started_once += 1
        if self._started_once == self.count:
            if self.announce and not self._log_each:
                up = f"{self.running} of {self.count}" if self.running < self.count else str(self.count)
                self.log(f"{up} instances started")
            self._all_started.set()

    async def _slot(self, index: int) -> None:
        failures = 0
        first = True
        while True:
            began = trio.current_time()
            up = False

            def started() -> None:
                nonlocal up, first
                if not up:
                    up = True
                    self.running += 1
                    if self._log_each or not first:
                        self.log(f"instance {index}: started")
                if first:
                    first = False
                    self._first_start_done()

            error: Optional[BaseException] = None
            try:
                await self.life(index, started)
            except trio.Cancelled:
                if up:
                    self._stopped += 1
                    if self._log_each:
                        self.log(f"instance {index}: stopped")
                raise
            except Exception as exc:  # any failure of the guest or its instantiation restarts it
                error = exc
            finally:
                if up:
                    self.running -= 1
                if first:  # the first life failed before it started: it counts as tried
                    first = False
                    self._first_start_done()
            lasted = trio.current_time() - began
            failures = 1 if lasted >= self.backoff.reset_after else failures + 1
            if not self.restarting:
                self.log(f"instance {index}: {describe_end(error)}; not restarted (shutting down)")
                return
            delay = self.backoff.delay(failures)
            self.log(f"instance {index}: {describe_end(error)}; restarting in {_seconds(delay)}")
            self.restarts += 1
            self.restarts_by_reason[end_reason(error)] += 1
            await trio.sleep(delay)


def _seconds(value: float) -> str:
    if math.isinf(value):
        return "never"
    return f"{value:.3g} s"
