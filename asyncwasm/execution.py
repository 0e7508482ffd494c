"""Driving fibers: run limits, the run outcome, and the synchronous driver.

A :class:`~asyncwasm.lowlevel.Fiber` is one call into Wasm whose frames live
on the heap. ``fiber.run(fuel)`` executes until one of the closed set of
:class:`Outcome` values; a *driver* decides what to do with each:

    DONE         -> read ``fiber.results``
    SUSPEND      -> a host function returned an awaitable: await it, then
                    ``fiber.resume(value)`` (or ``fiber.throw(exc)``)
    OUT_OF_FUEL  -> the slice is spent: checkpoint / charge the budget, run again
    TRAP         -> raise ``fiber.trap()``

This module holds the synchronous driver (:func:`run_sync`), used to run start
functions at instantiation. It cannot await, so a host function that returns
an awaitable here is a programming error and raises :class:`RuntimeError`.

The trio driver (fuel budgets, timeouts, cancellation, ``execute``/``wait``
handles) lands with the async-execution issue, below the marked section at the
end of this file, on top of the same :class:`Outcome` and :class:`Limits`.
"""

from __future__ import annotations

import enum
import inspect
import math
from dataclasses import dataclass
from typing import Any, Optional, final

from . import _engine

__all__ = ["Limits", "Outcome", "run_sync", "call_sync", "DEFAULT_MAX_CALL_DEPTH"]

#: Guest call depth allowed when no :class:`Limits` says otherwise.
DEFAULT_MAX_CALL_DEPTH = 10_000
#: The engine's default caps (see ``_engine.Instance``).
DEFAULT_MAX_MEMORY_PAGES = 65_536
DEFAULT_MAX_TABLE_ELEMENTS = 10_000_000

# One synchronous slice. The engine's fuel counter is an int64; a slice this
# large never ends a realistic run, and the loop below resumes if it does.
_SYNC_SLICE = 1 << 62


class Outcome(enum.IntEnum):
    """What one ``Fiber.run(fuel)`` returned; mirrors engine.h's ``RUN_*``.

    ``ERROR`` is never returned to Python: ``run()`` raises the exception
    (a host function's own error, or :class:`~asyncwasm.Exit`) instead.
    """

    DONE = 0
    SUSPEND = 1
    OUT_OF_FUEL = 2
    TRAP = 3
    ERROR = 4


def _check_count(name: str, value: Optional[int], minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Limits.{name} must be an int or None, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"Limits.{name} must be >= {minimum}, not {value}")


@final
@dataclass(frozen=True)
class Limits:
    """Resource caps for one instance. ``None`` means the engine's default.

        >>> Limits(max_memory_pages=16, max_call_depth=500)
        Limits(max_memory_pages=16, max_table_elements=None, max_call_depth=500, fuel=None, timeout=None)

    - ``max_memory_pages``: cap on each defined memory, in 64 KiB pages. A
      memory whose declared minimum is above it fails to instantiate;
      ``memory.grow`` beyond it returns -1 to the guest.
    - ``max_table_elements``: the same for defined tables.
    - ``max_call_depth``: guest frames per call before the
      ``"call stack exhausted"`` trap.
    - ``fuel``: total fuel budget (about one unit per Wasm instruction) and
      ``timeout``: wall-clock seconds per call. Both are enforced by the async
      driver, which is not built yet; setting them raises
      :class:`NotImplementedError` at instantiation rather than being ignored.
    """

    max_memory_pages: Optional[int] = None
    max_table_elements: Optional[int] = None
    max_call_depth: Optional[int] = None
    fuel: Optional[int] = None
    timeout: Optional[float] = None

    def __post_init__(self) -> None:
        _check_count("max_memory_pages", self.max_memory_pages, 0)
        if self.max_memory_pages is not None and self.max_memory_pages > DEFAULT_MAX_MEMORY_PAGES:
            raise ValueError(f"Limits.max_memory_pages must be <= {DEFAULT_MAX_MEMORY_PAGES}")
        _check_count("max_table_elements", self.max_table_elements, 0)
        _check_count("max_call_depth", self.max_call_depth, 1)
        _check_count("fuel", self.fuel, 0)
        if self.timeout is not None:
            if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)):
                raise TypeError(f"Limits.timeout must be a number of seconds or None, not {type(self.timeout).__name__}")
            if math.isnan(self.timeout) or self.timeout <= 0:
                raise ValueError(f"Limits.timeout must be > 0 seconds, not {self.timeout}")

    def check_supported(self) -> None:
        """Raise :class:`NotImplementedError` for limits the sync runtime cannot apply yet."""
        unsupported = [name for name in ("fuel", "timeout") if getattr(self, name) is not None]
        if unsupported:
            raise NotImplementedError(
                f"Limits({', '.join(n + '=...' for n in unsupported)}): fuel and timeout limits are "
                "enforced by the async driver, which is not implemented yet; leave them as None"
            )

    @property
    def call_depth(self) -> int:
        """``max_call_depth`` with the default filled in."""
        return DEFAULT_MAX_CALL_DEPTH if self.max_call_depth is None else self.max_call_depth


def _refuse_awaitable(awaitable: Any) -> RuntimeError:
    """Close an awaitable we cannot await (so no 'never awaited' warning) and
    build the error that explains why."""
    close = getattr(awaitable, "close", None)
    if inspect.iscoroutine(awaitable) and close is not None:
        close()
    return RuntimeError(
        f"a host function returned an awaitable ({type(awaitable).__name__}) during a synchronous "
        "call; host functions that await need the async driver (call_async)"
    )


def run_sync(fiber: "_engine.Fiber") -> tuple:
    """Drive ``fiber`` to completion on this thread and return its results.

    Blocks until the guest returns. Raises the guest's :class:`~asyncwasm.Trap`,
    a host function's own exception, or :class:`RuntimeError` when a host
    function returns an awaitable (the fiber is then abandoned, which is safe:
    an unresumed fiber holds no C stack).

        >>> fiber = lowlevel.Fiber(instance.exports["add"], (1, 2))
        >>> run_sync(fiber)
        (3,)
    """
    while True:
        outcome = fiber.run(max(_SYNC_SLICE, fiber.fuel_needed))
        if outcome == Outcome.DONE:
            return fiber.results
        if outcome == Outcome.TRAP:
            raise fiber.trap()
        if outcome == Outcome.SUSPEND:
            raise _refuse_awaitable(fiber.awaitable)
        if outcome != Outcome.OUT_OF_FUEL:
            raise AssertionError(f"engine returned an unknown run outcome {outcome!r}")


def call_sync(func: "_engine.Func", args: tuple = (), *, limits: Optional[Limits] = None, raw: bool = False) -> tuple:
    """Call ``func`` through a fiber under ``limits`` (call depth) and return
    its results as a tuple. Blocks; raises as :func:`run_sync`."""
    depth = (limits or Limits()).call_depth
    return run_sync(_engine.Fiber(func, tuple(args), raw=raw, max_call_depth=depth))


# --------------------------------------------------------------------------
# Async driver (trio): lands with the async-execution issue.
# It will drive the same fibers: run a fuel slice, on SUSPEND await the
# awaitable and resume/throw, on OUT_OF_FUEL charge Limits.fuel and pass a
# trio checkpoint, and honour Limits.timeout with a cancel scope.
# --------------------------------------------------------------------------
