"""Driving fibers: limits, the run outcome, the sync and trio drivers, handles.

A :class:`~asyncwasm.lowlevel.Fiber` is one call into Wasm whose frames live
on the heap. ``fiber.run(fuel)`` executes until one of the closed set of
:class:`Outcome` values; a *driver* decides what to do with each:

    DONE         -> read ``fiber.results``
    SUSPEND      -> a host function returned an awaitable: await it, then
                    ``fiber.resume(value)`` (or ``fiber.throw(exc)``)
    OUT_OF_FUEL  -> the slice is spent: charge the budget, checkpoint, run again
    TRAP         -> raise ``fiber.trap()``
    EXCEPTION    -> raise ``fiber.exception()`` (a Wasm exception nothing caught)

Both drivers here run slices through the same code (:meth:`_Gate.run_slice`,
which applies the instance's fuel budget and keeps its statistics):

- the synchronous one (:meth:`_Gate.call_sync`) runs ``func(*args)`` on an
  instance with a fuel budget, a timeout, or a call in progress, and the
  start function of ``linker.instantiate``; it cannot await, so a host
  function returning an awaitable there raises :class:`RuntimeError`;
- the trio one (:func:`call_async`, behind ``Func.call_async`` and
  :func:`execute`) passes a trio checkpoint after each slice, awaits
  suspended host calls in the calling task, and sizes slices with
  :mod:`asyncwasm._pacer` so that a CPU-bound guest yields every
  ``Limits.yield_interval``.

An instance without limits and without a call in progress is not *guarded*:
``func(*args)`` then runs entirely in C (the fast path) and never reaches
this module.

**One instance, one task.** An instance is entered by one trio task at a
time. An async call into an instance that another task is running *waits
its turn* (first come, first served), like a :class:`trio.Lock`: a guest's
exports are routinely called from several request handlers, and
serialising them is what every caller would otherwise write by hand. A
*synchronous* call cannot wait (it would block the event loop that the
holder needs to finish), so it fails at once with :class:`RuntimeError`.
Re-entry from a host function into its own instance (sync or async, in the
task that holds it) is allowed.

**Calls between instances.** A guest's call into a function of another
instance (imported through ``Linker.define_instance``, or reached through a
shared table) takes that instance's turn too, in the engine (``runtime.c``,
"Turns"), which asks the callee's gate (:meth:`_Gate.guest_enter`) unless
the call cannot matter to anyone else. Under the async driver a call into
an instance that another task holds suspends until its turn comes (a
:class:`_Turn`); a synchronous call fails with "the instance is busy". The
turn is given back when the call returns, traps or fails, and a fiber
dropped while inside (cancelled) interrupts that instance as well. A cycle
of tasks waiting for each other's instances raises :class:`RuntimeError`
("deadlock") in the task that would close it.

**Interrupted instances.** When a call is stopped mid-run (trio
cancellation, ``Execution.cancel()``, ``Limits.timeout``, KeyboardInterrupt)
its fiber is dropped: guest memory and globals may be half-updated, so the
instance is marked interrupted and every later call raises
:class:`~asyncwasm.Interrupted`. Instantiate the module again to go on.
"""

from __future__ import annotations

import enum
import inspect
import math
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, final

import trio

from . import _engine
from ._engine import MemoryBudget
from ._errors import FuelExhausted, Interrupted
from .flagvalues import MAX_PAGES64
from ._pacer import Pacer, crowd, slice_target
from ._stats import Meter, Statistics

__all__ = ["Limits", "Outcome", "Execution", "Waiting", "execute", "call_async", "run_sync", "DEFAULT_MAX_CALL_DEPTH"]

#: Guest call depth allowed when no :class:`Limits` says otherwise.
DEFAULT_MAX_CALL_DEPTH = 10_000
#: The engine's default caps (see ``_engine.Instance``).
DEFAULT_MAX_MEMORY_PAGES = 65_536
DEFAULT_MAX_TABLE_ELEMENTS = 10_000_000
#: Default of ``Limits.yield_interval``: a CPU-bound guest reaches a trio
#: checkpoint at least this often (seconds).
DEFAULT_YIELD_INTERVAL = 0.005

# One unlimited slice: the engine's fuel counter is an int64; a slice this
# large never ends a realistic run, and the drivers resume if it does.
_UNLIMITED = 1 << 62
# Synchronous driven calls look at the clock and at signals about this often.
_SYNC_CHECK_INTERVAL = 0.005

_perf_counter = time.perf_counter
_DONE, _SUSPEND, _OUT_OF_FUEL, _TRAP, _EXCEPTION = 0, 1, 2, 3, 5


class Waiting:
    """Marks an awaitable that always waits in the event loop (passes a trio
    schedule point) before it completes, such as a socket wait. After one,
    the async driver starts a new slice, as after a checkpoint: a guest that
    waits for I/O between requests never ends a slice on fuel."""

    __slots__ = ()


class Outcome(enum.IntEnum):
    """What one ``Fiber.run(fuel)`` returned; mirrors engine.h's ``RUN_*``.

    ``ERROR`` is never returned to Python: ``run()`` raises the exception
    (a host function's own error, or :class:`~asyncwasm.Exit`) instead.
    ``EXCEPTION``: the guest threw a Wasm exception nothing caught
    (``fiber.exception()`` is the :class:`~asyncwasm.WasmException`).
    """

    DONE = 0
    SUSPEND = 1
    OUT_OF_FUEL = 2
    TRAP = 3
    ERROR = 4
    EXCEPTION = 5


def _check_count(name: str, value: Optional[int], minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Limits.{name} must be an int or None, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"Limits.{name} must be >= {minimum}, not {value}")


def _check_seconds(name: str, value: Optional[float]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Limits.{name} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value <= 0:
        raise ValueError(f"Limits.{name} must be > 0 seconds, not {value}")


@final
@dataclass(frozen=True)
class Limits:
    """Resource caps for one instance. ``None`` means the engine's default.

        >>> Limits(max_memory_pages=16, fuel=10_000_000, timeout=2.0)
        Limits(max_memory_pages=16, max_table_elements=None, max_call_depth=None, fuel=10000000, timeout=2.0, yield_interval=0.005, memory_budget=None)

    - ``max_memory_pages``: cap on each defined memory, in 64 KiB pages. A
      memory whose declared minimum is above it fails to instantiate;
      ``memory.grow`` beyond it returns -1 to the guest. Each memory
      reserves address space for min(its declared maximum, this cap) pages.
      Default 65536 (4 GiB); above that only a memory64 can use it (up to
      2**48).
    - ``max_table_elements``: the same for defined tables.
    - ``max_call_depth``: guest frames per call before the
      ``"call stack exhausted"`` trap (every call, fast path included).
    - ``fuel``: total fuel budget of the instance, shared by all its calls
      (about one unit per Wasm instruction). When the next straight-line
      region does not fit in what is left, the call raises
      :class:`~asyncwasm.FuelExhausted` whose ``consumed`` is the fuel used.
    - ``timeout``: wall-clock seconds per call from Python, for synchronous
      calls too; a call that runs longer is stopped and raises
      :class:`~asyncwasm.Interrupted` (with ``timeout`` set), and the
      instance is interrupted.
    - ``yield_interval``: the longest a CPU-bound guest runs between two
      trio checkpoints in ``call_async`` (the slices adapt to the guest's
      speed and to how many guests share the event loop).
    - ``memory_budget``: a :class:`~asyncwasm.MemoryBudget` that the
      instance's memories join, shared with every instance given the same
      one: ``memory.grow`` past what is left returns -1 to the guest, and a
      memory whose minimum does not fit fails to instantiate (LinkError).
      The instance gives its pages back when it is freed.
    """

    max_memory_pages: Optional[int] = None
    max_table_elements: Optional[int] = None
    max_call_depth: Optional[int] = None
    fuel: Optional[int] = None
    timeout: Optional[float] = None
    yield_interval: float = DEFAULT_YIELD_INTERVAL
    memory_budget: Optional[MemoryBudget] = None

    def __post_init__(self) -> None:
        _check_count("max_memory_pages", self.max_memory_pages, 0)
        if self.max_memory_pages is not None and self.max_memory_pages > MAX_PAGES64:
            raise ValueError(f"Limits.max_memory_pages must be <= {MAX_PAGES64}")
        _check_count("max_table_elements", self.max_table_elements, 0)
        if self.max_table_elements is not None and self.max_table_elements > 0xFFFF_FFFF:
            raise ValueError("Limits.max_table_elements must be < 2**32")
        _check_count("max_call_depth", self.max_call_depth, 1)
        if self.max_call_depth is not None and self.max_call_depth > 0xFFFF_FFFF:
            raise ValueError("Limits.max_call_depth must be < 2**32")
        _check_count("fuel", self.fuel, 0)
        _check_seconds("timeout", self.timeout)
        if self.yield_interval is None:
            raise TypeError("Limits.yield_interval must be a number of seconds, not None")
        _check_seconds("yield_interval", self.yield_interval)
        if self.memory_budget is not None and not isinstance(self.memory_budget, MemoryBudget):
            raise TypeError(f"Limits.memory_budget must be an asyncwasm.MemoryBudget, not {type(self.memory_budget).__name__}")

    @property
    def call_depth(self) -> int:
        """``max_call_depth`` with the default filled in."""
        return DEFAULT_MAX_CALL_DEPTH if self.max_call_depth is None else self.max_call_depth


_NO_LIMITS = Limits()


def _busy(who: str) -> RuntimeError:
    return RuntimeError(
        "the instance is busy: another trio task is running a call into it (suspended in a host function or "
        f"between two slices); {who} cannot wait for it without blocking the event loop; use "
        "`await func.call_async(...)`, which waits its turn"
    )


def _refuse_awaitable(awaitable: Any) -> RuntimeError:
    """Close an awaitable we cannot await (so no 'never awaited' warning) and
    build the error that explains why."""
    if isinstance(awaitable, _Turn):
        return _busy("a synchronous call that enters it from another instance's code")
    close = getattr(awaitable, "close", None)
    if inspect.iscoroutine(awaitable) and close is not None:
        close()
    return RuntimeError(
        f"a host function returned an awaitable ({type(awaitable).__name__}) during a synchronous "
        "call; host functions that await need the async driver (await func.call_async(...))"
    )


def _shape(results: tuple, raw: bool) -> Any:
    """Results as ``func(*args)`` returns them: a tuple in raw mode, else
    None / the value / a tuple."""
    if raw:
        return results
    n = len(results)
    return None if n == 0 else results[0] if n == 1 else results


def _current_task() -> Optional[trio.lowlevel.Task]:
    try:
        return trio.lowlevel.current_task()
    except RuntimeError:  # not inside trio.run
        return None


def _stops_mid_run(exc: BaseException, fiber: Any) -> bool:
    """Whether ``exc``, escaping a driver, leaves ``fiber``'s guest stopped
    half-way: cancellation and KeyboardInterrupt always do; any other
    exception does when it did not come from the guest's own outcome (the
    fiber is still between two runs: a signal handler raised it), except
    :class:`FuelExhausted`, which ends a call cleanly at a region boundary."""
    if not isinstance(exc, Exception):
        return True
    return fiber.state in (_SUSPEND, _OUT_OF_FUEL) and not isinstance(exc, FuelExhausted)


# --------------------------------------------------------------------------
# The gate: the Python side of one instance
# --------------------------------------------------------------------------


@final
class _Gate:
    """Who holds an instance, its limits, fuel budget, pacing and totals.

    Stored on the engine's instance (``_engine.Instance._gate``); while the
    instance is *guarded*, synchronous calls of its functions come to
    :meth:`call_sync` instead of the C fast path. Guarded = it has a fuel
    budget or a timeout, a task holds it, or it was interrupted.

    Rule (lifetime): the engine instance owns its gate, and every other
    reference from the gate is weak or points away from the instance
    (module, limits, WASI context): an instance and its Python side form
    no reference cycle, so they die by reference count the moment the last
    Func, Instance or Caller goes. The :class:`~asyncwasm.Instance` the gate
    serves (:attr:`instance`) is kept weakly; when nobody holds it any more
    and a Caller asks for it, an equivalent one is made over the same
    engine instance and gate.

    Strategy (speed): the parking lot and the pacer are made on first need
    (a second task waiting; the first slice), so a short-lived instance
    pays for neither until it uses them.
    """

    __slots__ = ("_raw", "_owner", "module", "wasi", "limits", "call_depth", "pacer", "totals", "holder", "depth",
                 "lot", "running", "interrupted", "fuel_left", "fuel_used", "active", "__weakref__")  # fmt: skip

    def __init__(self, raw: Any, limits: Limits, module: Any = None, wasi: Any = None,
                 totals: Optional[Meter] = None, pacer: Optional[Pacer] = None) -> None:
        """The gate of ``raw`` (attached to it at once), or of a lone host
        function (``raw`` None). A OneShot passes its own ``totals`` (its
        runs' sum) and ``pacer`` (what one run learned of the guest's speed
        serves the next)."""
        self._owner: Optional[weakref.ref] = None  # the asyncwasm.Instance, see `instance`
        self.module = module  # the asyncwasm.Module (None: made without asyncwasm.Instance)
        self.wasi = wasi  # the instance's own WasiContext, or None
        self.limits = limits
        self.call_depth = limits.call_depth
        self.pacer = pacer  # made by the first slice when None
        self.totals = Meter() if totals is None else totals  # finished calls that went through this module
        self.holder: Optional[trio.lowlevel.Task] = None  # task running an async call
        self.depth = 0  # async calls of `holder` in progress (re-entry nests)
        self.lot: Optional[trio.lowlevel.ParkingLot] = None  # tasks waiting their turn, once one waits
        self.running = 0  # fiber.run() calls in progress on this thread (sync re-entry nests)
        self.interrupted: Optional[str] = None  # why, once interrupted
        self.fuel_left = limits.fuel  # None: no budget
        self.fuel_used = 0  # charged to the budget so far
        self.active: list[Meter] = []  # calls in progress, for statistics()
        if raw is None:
            self._raw = None
        else:
            self._raw = weakref.ref(raw)  # the _engine.Instance
            raw._gate = self
            raw._guarded = limits.fuel is not None or limits.timeout is not None  # see update_guard

    @property
    def raw(self) -> Any:
        """The engine instance, or None (a lone host function's gate, or the instance is gone)."""
        ref = self._raw
        return None if ref is None else ref()

    @property
    def instance(self) -> Any:
        """The :class:`~asyncwasm.Instance` of this gate (what ``Caller.instance``
        gives), or None for an engine instance made without one."""
        owner = None if self._owner is None else self._owner()
        if owner is None:
            raw = self.raw
            if raw is None or self.module is None:
                return None
            from .instance import Instance

            owner = Instance._over(raw, self)  # nobody holds the first: nobody can tell them apart
            self._owner = weakref.ref(owner)
        return owner

    def update_guard(self) -> None:
        raw = self.raw
        if raw is not None:
            raw._guarded = bool(
                self.interrupted is not None
                or self.holder is not None
                or self.fuel_left is not None
                or self.limits.timeout is not None
            )

    # -- state ----------------------------------------------------------------

    def check_usable(self) -> None:
        if self.interrupted is not None:
            raise Interrupted(
                f"the instance was interrupted ({self.interrupted}) and refuses further calls: its "
                "memory and globals may be half-updated; instantiate the module again to continue"
            )

    def interrupt(self, why: str) -> None:
        if self.interrupted is None:
            self.interrupted = why
            self.update_guard()

    def statistics(self) -> Statistics:
        raw = self.raw
        fast = raw._fast_counters if raw is not None else (0, 0, 0)
        if not self.active:
            return self.totals.snapshot(fast=fast)
        now = Meter()  # finished calls plus the ones running now
        now.add(self.totals)
        for meter in self.active:
            now.add(meter)
            running = meter.snapshot()
            now.fuel_used += running.fuel_used - meter.fuel_used
            now.host_calls += running.host_calls - meter.host_calls
            now.suspensions += running.suspensions - meter.suspensions
            now.wall_time += running.wall_time - meter.wall_time
        return now.snapshot(fast=fast)

    # -- one slice: shared by both drivers ----------------------------------------

    def run_slice(self, fiber: Any, fuel: int, meter: Meter) -> int:
        """``fiber.run`` with at most ``fuel`` (less if the budget has less),
        charging the budget with what was used; returns the outcome, or
        raises :class:`FuelExhausted` when the next region does not fit
        in the budget."""
        budget = self.fuel_left
        if budget is not None:
            if fuel > budget:
                fuel = budget
            self.fuel_left = budget - fuel  # reserved: a re-entrant call sees the rest
        self.running += 1
        started = _perf_counter()
        try:
            outcome = fiber.run(fuel)
        finally:
            meter.guest_time += _perf_counter() - started
            meter.slices += 1
            self.running -= 1
            if budget is not None:
                left = fiber.fuel_left
                self.fuel_left += left
                self.fuel_used += fuel - left
        if outcome == _OUT_OF_FUEL and budget is not None and self.fuel_left < fiber.fuel_needed:
            raise FuelExhausted(self.fuel_used)
        return outcome

    # -- synchronous calls ----------------------------------------------------------

    def call_sync(self, func: Any, args: tuple, raw: bool = False) -> Any:
        """``func(*args)`` on a guarded instance (called by the engine).

        Raises :class:`Interrupted` on an interrupted instance or when
        ``Limits.timeout`` passes, :class:`RuntimeError` when another task
        holds the instance."""
        self.check_usable()
        if self.holder is not None and self.running == 0 and self.holder is not _current_task():
            raise _busy("a synchronous call")
        fiber = _engine.Fiber(func, args, raw=raw, max_call_depth=self.call_depth, awaits=False)
        meter = Meter()
        meter.start(fiber)
        self.active.append(meter)
        try:
            return _shape(self._drive_sync(fiber, meter), raw)
        finally:
            self.active.remove(meter)
            meter.finish()
            self.totals.add(meter)

    def _drive_sync(self, fiber: Any, meter: Meter) -> tuple:
        timeout = self.limits.timeout if self.running == 0 else None  # the outermost call is timed
        deadline = None if timeout is None else _perf_counter() + timeout
        pacer = self.pacer
        if pacer is None:
            pacer = self.pacer = Pacer()
        try:
            while True:
                # Finite slices even without limits: signals (Ctrl-C) are
                # handled between two.
                fuel = pacer.fuel_for(_SYNC_CHECK_INTERVAL)
                used_before, time_before = fiber.fuel_used, meter.guest_time
                outcome = self.run_slice(fiber, max(fuel, fiber.fuel_needed), meter)
                pacer.observe(fiber.fuel_used - used_before, meter.guest_time - time_before)
                if outcome != _OUT_OF_FUEL:
                    break
                if deadline is not None and _perf_counter() >= deadline:
                    self.interrupt(f"a call ran past Limits.timeout={timeout}s")
                    raise Interrupted(
                        f"the call ran longer than Limits.timeout={timeout}s and was stopped; the instance "
                        "is now interrupted (instantiate the module again to continue)",
                        timeout=timeout,
                    )
        except BaseException as exc:
            if _stops_mid_run(exc, fiber):
                self.interrupt(f"a synchronous call was stopped by {type(exc).__name__}")
            fiber.close()  # gives back the turns it took in other instances
            raise
        if outcome == _DONE:
            return fiber.results
        if outcome == _TRAP:
            raise fiber.trap()
        if outcome == _EXCEPTION:
            raise fiber.exception()
        # SUSPEND: nothing can await here; the host call (or the wait for
        # another instance's turn) fails with the reason, which ends the fiber.
        fiber.throw(_refuse_awaitable(fiber.awaitable))
        fiber.run(0)  # raises it
        raise AssertionError("a fiber given an exception ran on")

    # -- async calls: one task at a time ------------------------------------------------

    async def acquire(self, task: trio.lowlevel.Task) -> None:
        """Wait until ``task`` (the current one) may run a call into the instance."""
        if self.holder is task:  # re-entry from an async host function
            self.check_usable()
            self.depth += 1
            return
        self.check_usable()
        if self.holder is None:
            self.holder = task
            self.depth = 1
            self.update_guard()
            return
        if self._waits_for(task):
            raise RuntimeError(
                "deadlock: the instance this task calls is held by a task that waits (directly or through "
                "other tasks) for an instance this task holds; the call fails instead of waiting forever"
            )
        _waiting_for[task] = self
        if self.lot is None:
            self.lot = trio.lowlevel.ParkingLot()
        try:
            await self.lot.park()  # release() hands the instance to us
        finally:
            del _waiting_for[task]
        self.depth = 1
        try:
            self.check_usable()  # the previous holder may have been interrupted
            await trio.lowlevel.checkpoint_if_cancelled()  # cancelled while waiting: do not start
        except BaseException:
            self.release()
            raise

    def _waits_for(self, task: trio.lowlevel.Task) -> bool:
        """Whether this instance's holder waits, directly or through other
        tasks, for an instance that ``task`` holds."""
        gate: Optional[_Gate] = self
        for _ in range(len(_waiting_for) + 1):
            if gate is None or gate.holder is None:
                return False
            if gate.holder is task:
                return True
            gate = _waiting_for.get(gate.holder)
        return False

    def release(self) -> None:
        self.depth -= 1
        if self.depth > 0:
            return
        woken = self.lot.unpark() if self.lot else ()  # the next waiter, first come first served
        self.holder = woken[0] if woken else None
        self.depth = 0
        ref = self._raw
        if ref is not None and self.holder is None and self.interrupted is None:  # update_guard, inline
            raw = ref()
            if raw is not None:
                raw._guarded = self.fuel_left is not None or self.limits.timeout is not None
        else:
            self.update_guard()

    # -- calls from another instance's guest (engine: runtime.c "Turns") --------------

    def guest_enter(self, may_wait: bool) -> Any:
        """A guest of another instance calls one of this instance's functions.

        ``may_wait``: the fiber is driven by the async driver, which can
        wait for the turn. Returns True when the calling task takes (or
        nests in) the turn: :meth:`guest_leave` gives it back; False when
        there is nothing to take (a synchronous call: no other task can run
        until it returns); a :class:`_Turn` to await when another task
        holds the instance. Raises :class:`Interrupted`, or the busy
        :class:`RuntimeError` when the fiber cannot wait."""
        if self.interrupted is not None:
            self.check_usable()
        holder = self.holder
        if not may_wait:
            if holder is None or self.running or holder is _current_task():
                return False
            raise _busy("a synchronous call that enters it from another instance's code")
        task = _current_task()
        if task is None:  # a custom driver outside trio (asyncwasm.lowlevel): no task to wait for
            return False
        if holder is None:
            self.holder = task
            self.depth = 1
            self.update_guard()
            return True
        if holder is task or self.running:
            self.depth += 1
            return True
        return _Turn(self, task)

    def guest_leave(self, held: bool, why: Optional[str]) -> None:
        """The call :meth:`guest_enter` let in is over: give the turn back
        when it was taken (``held``); ``why``: it was stopped mid-run, so
        the instance is interrupted."""
        if why is not None:
            self.interrupt(why)
        if held:
            self.release()

    async def call_async(self, func: Any, args: tuple, meter: Meter, deadline: Optional[Deadline] = None) -> Any:
        """``func(*args)`` driven in the current task (see :func:`call_async`):
        returns what ``func(*args)`` returns.

        ``deadline``: the call ends with :class:`Interrupted` once it passes
        (as ``Limits.timeout`` does; the sooner of the two applies)."""
        # A call made in an already-cancelled scope must not enter the guest
        # (entering then stopping it would interrupt the instance).
        await trio.lowlevel.checkpoint_if_cancelled()
        task = trio.lowlevel.current_task()
        ref = self._raw
        raw = ref() if ref is not None and self.holder is None and self.interrupted is None else None
        if raw is not None:
            self.holder = task  # the common case, inline: a free instance
            self.depth = 1
            raw._guarded = True
        else:
            await self.acquire(task)
        try:
            fiber = _engine.Fiber(func, args, max_call_depth=self.call_depth)
            meter.start(fiber)
            self.active.append(meter)
            timeout = self.limits.timeout if self.depth == 1 else None
            if timeout is not None:
                own = Deadline(timeout, lambda: f"a call ran past Limits.timeout={timeout}s",
                               lambda: f"the call ran longer than Limits.timeout={timeout}s")
                if deadline is None or own.seconds < deadline.seconds - (own.started - deadline.started):
                    deadline = own
            if deadline is None:
                return _shape(await self._drive_async(fiber, meter, None), False)
            try:
                return _shape(await self._drive_async(fiber, meter, deadline), False)
            except _Overdue:
                self.interrupt(deadline.why())
                raise Interrupted(
                    f"{deadline.message()} and was stopped; the instance is now interrupted (instantiate the "
                    "module again to continue)",
                    timeout=deadline.seconds,
                ) from None
        finally:
            if meter in self.active:
                self.active.remove(meter)
            meter.finish()
            self.totals.add(meter)
            self.release()

    async def _drive_async(self, fiber: Any, meter: Meter, deadline: Optional[Deadline]) -> tuple:
        """Slices and checkpoints until the fiber is done.

        The fuel of a slice spans the host calls that suspend within it: an
        awaitable that completes without a checkpoint must not let the
        guest run on forever. The pacer learns from run time only (time
        spent awaiting is not the guest's speed).

        ``deadline`` is checked where a cancel scope would act: at the end
        of each slice, and by a scope around each suspended host call (made
        only when one suspends); past it, :class:`_Overdue`. So a call that
        neither suspends nor outlasts a slice pays for no scope at all."""
        pacer = self.pacer
        if pacer is None:
            pacer = self.pacer = Pacer()
        interval = self.limits.yield_interval
        guests = crowd()
        guests.running += 1
        try:
            while True:  # one slice per iteration
                used_at_start = fiber.fuel_used
                time_at_start = meter.guest_time
                fuel = max(pacer.fuel_for(slice_target(interval, guests.running)), fiber.fuel_needed)
                end = used_at_start + fuel
                wall_start = _perf_counter()
                while True:
                    outcome = self.run_slice(fiber, max(end - fiber.fuel_used, 0), meter)
                    if outcome != _SUSPEND:
                        break
                    awaitable = fiber.awaitable
                    guests.running -= 1  # waiting for I/O is not competing for the CPU
                    try:
                        if deadline is None:
                            value = await awaitable
                        else:
                            with trio.move_on_at(deadline.at()) as waiting:
                                value = await awaitable
                            if waiting.cancelled_caught:
                                raise _Overdue
                    except _Overdue:
                        raise
                    except Exception as exc:  # the host function's error: raised inside the guest
                        fiber.throw(exc)
                    else:
                        fiber.resume(value)
                    finally:
                        guests.running += 1
                    if isinstance(awaitable, Waiting):  # it yielded to the loop: a new slice begins
                        end = fiber.fuel_used + fuel
                        wall_start = _perf_counter()
                    elif _perf_counter() - wall_start > interval:
                        break  # host calls that never yield took the time: checkpoint, then go on
                if outcome == _DONE:
                    return fiber.results
                if outcome == _TRAP:
                    raise fiber.trap()
                if outcome == _EXCEPTION:
                    raise fiber.exception()
                # OUT_OF_FUEL, or resumed after a long suspension: the slice is over
                pacer.observe(fiber.fuel_used - used_at_start, meter.guest_time - time_at_start)
                if deadline is not None and deadline.passed():
                    raise _Overdue
                await trio.lowlevel.checkpoint()
        except _Overdue:
            fiber.close()  # the caller interrupts the instance, saying why
            raise
        except BaseException as exc:
            if _stops_mid_run(exc, fiber):
                self.interrupt(f"a call was stopped mid-run by {type(exc).__name__}")
            fiber.close()  # gives back the turns it took in other instances
            raise
        finally:
            guests.running -= 1


@final
class Deadline:
    """When a call (or a run of several) must be over: ``seconds`` after it
    was made. ``why`` and ``message`` say it was not, for the interrupted
    instance and the :class:`Interrupted` error (whose ``timeout`` is
    ``seconds``); ``message`` is called only then, so it may be costly.

    Strategy: the start is read from ``time.perf_counter`` (cheap); trio's
    clock is read only when a scope must be made (:meth:`at`)."""

    __slots__ = ("started", "seconds", "why", "message")

    def __init__(self, seconds: float, why: Callable[[], str], message: Callable[[], str]) -> None:
        self.started = _perf_counter()
        self.seconds = seconds
        self.why = why
        self.message = message

    def passed(self) -> bool:
        return _perf_counter() - self.started >= self.seconds

    def at(self) -> float:
        """The deadline on trio's clock (for ``trio.move_on_at``)."""
        return trio.current_time() + self.seconds - (_perf_counter() - self.started)


class _Overdue(Exception):
    """A driven call passed its :class:`Deadline` (internal)."""


#: Tasks waiting for an instance's turn, and the gate each waits for (to see deadlocks).
_waiting_for: dict[trio.lowlevel.Task, _Gate] = {}


@final
class _Turn:
    """What a guest's call into an instance that another task holds
    suspends on: awaiting it waits for the instance's turn (first come,
    first served) and takes it; the call then runs. The synchronous drivers
    cannot await and fail with "the instance is busy" instead."""

    __slots__ = ("gate", "task")

    def __init__(self, gate: _Gate, task: trio.lowlevel.Task) -> None:
        self.gate = gate
        self.task = task

    def __await__(self) -> Any:
        return self.gate.acquire(self.task).__await__()


def _gate_for(func: Any) -> _Gate:
    """The gate of ``func``'s instance; a fresh unattached one for host
    functions and instances made without :class:`asyncwasm.Instance`."""
    gate = func._gate
    if gate is None:
        gate = _Gate(None, _NO_LIMITS)
    return gate


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def run_sync(fiber: Any) -> tuple:
    """Drive ``fiber`` to completion on this thread and return its results
    (no limits beyond the fiber's own; for custom drivers and tests).

        >>> fiber = lowlevel.Fiber(instance.exports["add"], (1, 2))
        >>> run_sync(fiber)
        (3,)
    """
    while True:
        outcome = fiber.run(max(_UNLIMITED, fiber.fuel_needed))
        if outcome == _DONE:
            return fiber.results
        if outcome == _TRAP:
            raise fiber.trap()
        if outcome == _EXCEPTION:
            raise fiber.exception()
        if outcome == _SUSPEND:
            raise _refuse_awaitable(fiber.awaitable)
        if outcome != _OUT_OF_FUEL:
            raise AssertionError(f"engine returned an unknown run outcome {outcome!r}")


async def call_async(func: Any, *args: Any) -> Any:
    """``await func.call_async(*args)``: call ``func`` in the current trio task.

    Returns what ``func(*args)`` returns (None, a value, or a tuple). The
    guest yields to other tasks every ``Limits.yield_interval``; host
    functions that return awaitables suspend only this task. Raises the
    guest's :class:`~asyncwasm.Trap`, :class:`~asyncwasm.FuelExhausted`,
    :class:`~asyncwasm.Exit`, a host function's own error, or
    :class:`~asyncwasm.Interrupted` (the instance was interrupted, or the
    call ran past ``Limits.timeout``). When an enclosing cancel scope
    cancels the call, :class:`trio.Cancelled` propagates as usual and the
    instance is marked interrupted.

        >>> with trio.fail_after(5):
        ...     total = await instance.exports["sum"].call_async(1000)
    """
    return await _gate_for(func).call_async(func, args, Meter())


def _call_async_hook(func: Any, args: tuple) -> Any:
    # The gate's coroutine itself, not call_async's around it: a served
    # guest's task resumes through every frame of this chain at each wake-up.
    return _gate_for(func).call_async(func, args, Meter())


_engine.set_hooks(call_async=_call_async_hook)


@final
class Execution:
    """A call running in its own task, made by :func:`execute`; in the
    style of WasmEdge's async handles, made awaitable.

        >>> async with trio.open_nursery() as nursery:
        ...     execution = asyncwasm.execute(nursery, instance.exports["run"], 10)
        ...     if not await execution.wait_for(0.5):
        ...         execution.cancel()
        ...     try:
        ...         print(await execution.result())
        ...     except asyncwasm.Interrupted:
        ...         print("took too long")

    The guest's errors (Trap, Exit, FuelExhausted, a host function's
    exception) are kept for :meth:`result` and never escape into the
    nursery; :class:`trio.Cancelled` never escapes from a handle either:
    a cancelled execution's :meth:`result` raises
    :class:`~asyncwasm.Interrupted`.
    """

    __slots__ = ("_func", "_args", "_scope", "_finished", "_value", "_error", "_meter")

    def __init__(self, func: Any, args: tuple) -> None:
        self._func = func
        self._args = args
        self._scope = trio.CancelScope()
        self._finished = trio.Event()
        self._value: Any = None
        self._error: Optional[BaseException] = None
        self._meter = Meter()

    async def _run(self) -> None:
        try:
            with self._scope:
                gate = _gate_for(self._func)
                self._value = await gate.call_async(self._func, self._args, self._meter)
                return
            self._error = Interrupted("the execution was cancelled (Execution.cancel())")
        except Exception as exc:  # the guest's outcome, kept for result()
            self._error = exc
        except BaseException as exc:  # cancelled from outside: finish the handle, then let it propagate
            self._error = Interrupted(f"the execution was stopped by {type(exc).__name__}")
            raise
        finally:
            self._finished.set()

    @property
    def done(self) -> bool:
        """True once the call has finished, however it ended."""
        return self._finished.is_set()

    async def wait(self) -> None:
        """Wait until the call finishes. Never raises the guest's error."""
        await self._finished.wait()

    async def wait_for(self, seconds: float) -> bool:
        """Wait at most ``seconds``; True if the call has finished. On False
        the guest keeps running."""
        with trio.move_on_after(seconds):
            await self._finished.wait()
        return self._finished.is_set()

    def cancel(self) -> None:
        """Stop the call (at its next checkpoint or suspension). Its instance
        is interrupted if the guest had started; :meth:`result` then raises
        :class:`~asyncwasm.Interrupted`. No effect once done."""
        self._scope.cancel()

    async def result(self) -> Any:
        """Wait for the call and return its results (as ``func(*args)``), or
        raise how it ended: Trap, FuelExhausted, Exit, Interrupted, or a
        host function's exception."""
        await self._finished.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def statistics(self) -> Statistics:
        """What this call has cost so far (it may still be running)."""
        return self._meter.snapshot()

    def __repr__(self) -> str:
        state = "running" if not self.done else "failed" if self._error is not None else "done"
        return f"<asyncwasm.Execution {self._func!r}: {state}>"


def execute(nursery: trio.Nursery, func: Any, *args: Any) -> Execution:
    """Start ``func(*args)`` as a new task in ``nursery`` and return its
    :class:`Execution` handle.

        >>> execution = asyncwasm.execute(nursery, instance.exports["main"])
        >>> ok = await execution.wait_for(0.05)
    """
    if not isinstance(nursery, trio.Nursery):
        raise TypeError(f"execute() needs a trio.Nursery to run in, not {type(nursery).__name__}")
    if not isinstance(func, _engine.Func):
        raise TypeError(f"execute() needs an asyncwasm.Func, not {type(func).__name__}")
    execution = Execution(func, tuple(args))
    nursery.start_soon(execution._run, name=f"asyncwasm.execute({func!r})")
    return execution
