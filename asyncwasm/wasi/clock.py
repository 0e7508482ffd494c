"""WASI clocks: ``clock_res_get`` and ``clock_time_get``.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#clock_time_get

The realtime and monotonic sources come from :class:`~asyncwasm.wasi.WasiConfig`
(``realtime_ns``, ``monotonic_ns``) so tests can make time deterministic;
the CPU-time clocks are the host process's and thread's.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Optional, Union

from .abi import Clockid, Errno, WasiError
from .decl import PTR, U32, U64, host_function

ErrnoResult = Union[int, Awaitable[int]]


def _resolution_ns(name: str) -> int:
    return max(1, round(time.get_clock_info(name).resolution * 1e9))


class Clocks:
    """The four preview1 clocks of one context, in nanoseconds."""

    def __init__(self, monotonic_ns: Optional[Callable[[], int]] = None,
                 realtime_ns: Optional[Callable[[], int]] = None) -> None:
        self.monotonic_ns = monotonic_ns or time.monotonic_ns
        self.realtime_ns = realtime_ns or time.time_ns
        self._sources: dict[int, Callable[[], int]] = {
            Clockid.REALTIME: self.realtime_ns,
            Clockid.MONOTONIC: self.monotonic_ns,
            Clockid.PROCESS_CPUTIME_ID: time.process_time_ns,
            Clockid.THREAD_CPUTIME_ID: time.thread_time_ns,
        }
        self._resolutions = {
            Clockid.REALTIME: 1 if realtime_ns else _resolution_ns("time"),
            Clockid.MONOTONIC: 1 if monotonic_ns else _resolution_ns("monotonic"),
            Clockid.PROCESS_CPUTIME_ID: _resolution_ns("process_time"),
            Clockid.THREAD_CPUTIME_ID: _resolution_ns("thread_time"),
        }

    def now(self, clock_id: int) -> int:
        """The time of ``clock_id`` (INVAL for an unknown clock)."""
        source = self._sources.get(clock_id)
        if source is None:
            raise WasiError(Errno.INVAL)
        return source() & 0xFFFFFFFFFFFFFFFF

    def resolution(self, clock_id: int) -> int:
        res = self._resolutions.get(clock_id)
        if res is None:
            raise WasiError(Errno.INVAL)
        return res


@host_function(id=U32, resolution=PTR)
def clock_res_get(ctx: Any, id: int, resolution: int) -> ErrnoResult:
    """Write the resolution (u64 ns, never 0) of clock ``id`` at ``resolution``.
    Errnos: INVAL (unknown clock), FAULT."""
    ctx.memory.store_u64(resolution, ctx.clocks.resolution(id))
    return Errno.SUCCESS


@host_function(id=U32, precision=U64, time=PTR)
def clock_time_get(ctx: Any, id: int, precision: int, time: int) -> ErrnoResult:
    """Write the time (u64 ns) of clock ``id`` at ``time``; ``precision`` is
    ignored (we always give the best we have). REALTIME counts from the Unix
    epoch; MONOTONIC from an unspecified point. Errnos: INVAL, FAULT."""
    ctx.memory.store_u64(time, ctx.clocks.now(id))
    return Errno.SUCCESS
