"""Containment: what the limits did to which guest, as log lines.

    >>> watch = Watch(log=print, memory_budget=limits.memory_budget)
    >>> nursery.start_soon(watch.run, server.lives)     # a look every INTERVAL seconds
    >>> watch.look(server.lives())                      # or one look now: the lines it logged

Rule: the limits contain a guest by themselves, where it acts: the engine
refuses ``memory.grow`` past its cap or the memory budget, the WASI layer
refuses opens past ``max_fds`` (MFILE) or the process's fd budget (NFILE),
the output limit makes its writes wait, fuel slices and the pacer share
the thread. This module only *tells*: each look reads every running
instance's counters and logs one line for each instance that hit a limit
since the previous look (or ran the engine for at least :data:`BUSY` of
the time without one host call: a spinning guest is contained by the
slices, but should be known), then one line per process-wide budget that
refused something.
Reading counters costs a few microseconds per instance, nothing on the
guests' paths; a look logs at most :data:`MAX_LINES` instance lines
("and N more"), so an attack on every instance cannot flood the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import trio

from .._engine import Memory, MemoryBudget
from ..flagvalues import PAGE_SIZE, format_size
from ..wasi.fdbudget import FdBudget

__all__ = ["Watch", "Life", "INTERVAL", "BUSY", "MAX_LINES"]

#: Seconds between two looks.
INTERVAL = 10.0
#: Share of the wall-clock time between two looks that an instance may
#: spend in the engine without a host call before a look says it is busy
#: (a server between requests makes host calls; a spinning guest none).
BUSY = 0.05
#: Most instance lines per look.
MAX_LINES = 10

#: A running instance as a look sees it: (log of its generation, index, Instance).
Life = tuple[Callable[[str], None], int, Any]


@dataclass
class _Counters:
    """One instance's counters at a look."""

    mfile: int = 0
    nfile: int = 0
    grows: int = 0
    written: int = 0
    waited: float = 0.0
    guest_time: float = 0.0
    host_calls: int = 0

    @classmethod
    def of(cls, instance: Any) -> "_Counters":
        stats = instance.statistics()
        counters = cls(guest_time=stats.guest_time, host_calls=stats.host_calls)
        wasi = instance.wasi
        if wasi is not None:
            counters.mfile, counters.nfile = wasi.fds.refused_mfile, wasi.fds.refused_nfile
            limit = wasi.output_limit
            if limit is not None:
                counters.written, counters.waited = limit.written, limit.waited
        counters.grows = sum(m.refused_grows for m in _memories(instance))
        return counters


def _memories(instance: Any) -> list[Memory]:
    return [extern for extern in instance.exports.values() if isinstance(extern, Memory)]


class Watch:
    """Looks at running instances' counters and logs what the limits did
    (see the module docstring). ``memory_budget``/``fd_budget``: the
    process-wide budgets to report on (None: not reported)."""

    def __init__(self, log: Callable[[str], None], *, memory_budget: Optional[MemoryBudget] = None,
                 fd_budget: Optional[FdBudget] = None, interval: float = INTERVAL) -> None:
        self.log = log
        self.memory_budget = memory_budget
        self.fd_budget = fd_budget
        self.interval = interval
        self._seen: dict[int, tuple[Any, _Counters]] = {}  # id(instance) -> (instance, counters at the last look)
        self._budget_seen = (0, 0)  # memory budget refusals, fd budget refusals at the last look
        self._last: Optional[float] = None

    async def run(self, lives: Callable[[], Iterable[Life]]) -> None:
        """Look every ``interval`` seconds until cancelled."""
        self.look(lives())  # the starting point: what happened before is not news
        while True:
            await trio.sleep(self.interval)
            self.look(lives())

    def look(self, lives: Iterable[Life]) -> list[str]:
        """Read every instance's counters, log what changed since the
        previous look; returns the lines logged."""
        now = trio.current_time()
        elapsed = None if self._last is None else now - self._last
        self._last = now
        lines: list[tuple[Callable[[str], None], str]] = []
        seen: dict[int, tuple[Any, _Counters]] = {}
        for log, index, instance in lives:
            counters = _Counters.of(instance)
            seen[id(instance)] = (instance, counters)
            before = self._seen.get(id(instance))
            if before is not None and before[0] is instance and elapsed is not None:
                parts = self._news(instance, before[1], counters, elapsed)
                if parts:
                    lines.append((log, f"instance {index}: contained: " + "; ".join(parts)))
        self._seen = seen
        said = []
        for log, line in lines[:MAX_LINES]:
            log(line)
            said.append(line)
        if len(lines) > MAX_LINES:
            line = f"contained: and {len(lines) - MAX_LINES} more instances"
            lines[0][0](line)
            said.append(line)
        for line in self._budget_news():
            self.log(line)
            said.append(line)
        return said

    def _news(self, instance: Any, before: _Counters, now: _Counters, elapsed: float) -> list[str]:
        parts = []
        if now.mfile > before.mfile:
            parts.append(f"{now.mfile - before.mfile} opens refused at its limit of {instance.wasi.fds.max_fds} fds (MFILE)")
        if now.nfile > before.nfile:
            parts.append(f"{now.nfile - before.nfile} opens refused by the process's fd budget (NFILE)")
        if now.grows > before.grows:
            size = sum(m.data_len for m in _memories(instance))
            parts.append(f"{now.grows - before.grows} memory.grow refused at {format_size(size)}")
        if now.waited > before.waited:
            limit = instance.wasi.output_limit
            parts.append(f"stdout/stderr held to {format_size(limit.rate)}/s ({format_size(now.written - before.written)} "
                         f"written, writes waited {now.waited - before.waited:.1f} s)")
        busy = now.guest_time - before.guest_time
        if elapsed > 0 and busy >= BUSY * elapsed and now.host_calls == before.host_calls:
            parts.append(f"busy: {busy:.1f} s in the engine in the last {elapsed:.1f} s, no host call")
        return parts

    def _budget_news(self) -> list[str]:
        lines = []
        memory = self.memory_budget.refused if self.memory_budget is not None else 0
        fds = self.fd_budget.refused if self.fd_budget is not None else 0
        if self.memory_budget is not None and memory > self._budget_seen[0]:
            b = self.memory_budget
            lines.append(f"memory budget: {memory - self._budget_seen[0]} memory.grow or instantiations refused "
                         f"({format_size(b.used_pages * PAGE_SIZE)} of {format_size(b.max_pages * PAGE_SIZE)} in use)")
        if self.fd_budget is not None and fds > self._budget_seen[1]:
            f = self.fd_budget
            lines.append(f"fd budget: {fds - self._budget_seen[1]} guest opens refused ({f.held} of {f.max_fds} held)")
        self._budget_seen = (memory, fds)
        return lines
