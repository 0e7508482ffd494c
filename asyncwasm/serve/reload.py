"""Reloading: check a module source on its schedule and on request, and
swap each new version in.

    >>> reloader = Reloader(source, target, log=print)   # target: a Server, or the workers' pool
    >>> version, module = await reloader.initial(target.check)   # at start: the source, or its fallback
    >>> nursery.start_soon(reloader.run)                 # watch/poll; reloader.request("SIGHUP") any time
    >>> attempt = await reloader.check_now("POST /reload")   # and wait for its outcome

One attempt at a time: a request during an attempt makes one more attempt
after it (requests in between are merged). An attempt is: fetch (a 304 or
the same SHA-256 is ``unchanged``), check the signature, then the target
deploys it (``target.deploy(version)``: compile, start the new generation,
switch; see :meth:`asyncwasm.serve.Server.deploy`). Any refusal leaves the
serving version as it was.

Rule: one log line per attempt, naming the trigger, the source, the
version (SHA-256's first 12 hex digits, size, signing key id), the outcome
and the time it took (for a swap: from the trigger to the switch):

    reload (watch) from app.wasm: sha256 0123456789ab, 22785 bytes, key 7b314f3b1e5687de: swapped in 0.084 s (generation 2)
    reload (poll) from https://example.org/app.wasm: refused (fetch_failed): example.org:443: HTTP 404 Not Found for /app.wasm

Except for polls: an unchanged source is not logged, and a failure that
repeats the previous poll's is logged once (every attempt is counted in
:attr:`Reloader.counts`, by outcome).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Protocol

import trio

from .source import OUTCOMES, ModuleSource, Refused, Version

__all__ = ["Reloader", "Attempt", "Target"]

_QUIET = ("poll",)  # triggers whose unchanged or repeated outcomes are not logged


class Target(Protocol):
    """What a reloader swaps versions into."""

    async def admit(self, version: Version) -> Any:
        """Compile and check ``version`` (at start); :class:`Refused` if it cannot serve."""

    async def deploy(self, version: Version) -> str:
        """Serve ``version`` from now on; a short description of where it
        serves (``generation 3``), or :class:`Refused` (nothing changed)."""


@dataclass(frozen=True)
class Attempt:
    """The result of one attempt: its outcome (one of :data:`~.source.OUTCOMES`) and log line."""

    outcome: str
    line: str
    version: Optional[Version] = None


class Reloader:
    """Keeps ``target`` on the newest good version of ``source`` (see the module docstring)."""

    def __init__(self, source: ModuleSource, target: Target, log: Callable[[str], None]) -> None:
        self.source = source
        self.target = target
        self.log = log
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.current: Optional[Version] = None  #: the version serving
        self.last: Optional[Attempt] = None
        self._wanted: Optional[str] = None
        self._wake = trio.Event()
        self._started = 0
        self._finished = 0
        self._progress = trio.lowlevel.ParkingLot()
        self._quiet_failure: Optional[str] = None

    async def initial(self, check: Optional[Callable[[Any], Awaitable[None]]] = None) -> tuple[Version, Any]:
        """The first version and what ``target.admit`` made of it: from the
        source, or else its fallback, logged with the reason. ``check`` is
        called on the admitted module (a link check); its exceptions count
        as a refusal. :class:`Refused` when nothing can serve."""
        try:
            version = await self.source.fetch()
            assert version is not None  # nothing settled yet, so never "unchanged"
            admitted = await self._admit(version, check)
        except Refused as exc:
            fallback = self.source.fallback_version()
            self.counts[exc.outcome] += 1
            if fallback is None:
                raise
            self.log(f"starting on {fallback.origin} ({fallback.describe()}): {self.source.location} "
                     f"{'(' + exc.version.describe() + ') ' if exc.version else ''}refused ({exc.outcome}): {exc}")
            admitted = await self._admit(fallback, check)
            self.current = fallback.without_data()
            return fallback, admitted
        self.source.settle(version)
        self.current = version.without_data()
        return version, admitted

    async def _admit(self, version: Version, check: Optional[Callable[[Any], Awaitable[None]]]) -> Any:
        admitted = await self.target.admit(version)
        if check is not None:
            try:
                await check(admitted)
            except Exception as exc:  # LinkError, Trap, OSError: this version cannot start
                raise Refused("rolled_back", f"cannot instantiate: {exc}", version) from None
        return admitted

    # -- triggers -------------------------------------------------------------------------------
    def request(self, trigger: str) -> None:
        """Check the source as soon as possible (safe from any task)."""
        if self._wanted is None:
            self._wanted = trigger
        self._wake.set()

    async def check_now(self, trigger: str) -> Attempt:
        """Request an attempt and wait for one that started after the
        request; its result (or a later one's)."""
        ticket = self._started + 1
        self.request(trigger)
        while self._finished < ticket:
            await self._progress.park()
        assert self.last is not None
        return self.last

    async def run(self) -> None:
        """Attempt on every request and every change the source reports, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._schedule)
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                trigger, self._wanted = self._wanted or "request", None
                await self.attempt(trigger)

    async def _schedule(self) -> None:
        while True:
            self.request(await self.source.next_change())

    # -- one attempt ---------------------------------------------------------------------------
    async def attempt(self, trigger: str) -> Attempt:
        """Fetch, verify and deploy once; log and count the outcome."""
        self._started += 1
        began = trio.current_time()
        version: Optional[Version] = None
        reason = ""
        try:
            version = await self.source.fetch()
            if version is None:
                outcome = "unchanged"
                detail = f"unchanged ({self.current.describe() if self.current else '?'})"
            else:
                where = await self.target.deploy(version)
                self.source.settle(version)
                version = self.current = version.without_data()
                outcome = "swapped"
                detail = f"{version.describe()}: swapped in {trio.current_time() - began:.3f} s ({where})"
        except Refused as exc:
            outcome, reason = exc.outcome, str(exc)
            version = exc.version.without_data() if exc.version else None
            known = f"{exc.version.describe()}: " if exc.version else ""
            detail = f"{known}refused ({exc.outcome}) after {trio.current_time() - began:.3f} s: {exc}"
        except Exception as exc:  # a host failure (a bug, a full disk): the serving version goes on
            outcome, reason = "error", f"{type(exc).__name__}: {exc}"
            detail = f"failed after {trio.current_time() - began:.3f} s: {reason}"
        line = f"reload ({trigger}) from {self.source.location}: {detail}"
        self.counts[outcome] += 1
        self._log(trigger, outcome, line, reason)
        result = Attempt(outcome, line, version)
        self.last = result
        self._finished += 1
        self._progress.unpark_all()
        return result

    def _log(self, trigger: str, outcome: str, line: str, reason: str) -> None:
        if trigger in _QUIET:
            if outcome in ("swapped", "unchanged"):
                self._quiet_failure = None
                if outcome == "unchanged":
                    return
            elif reason == self._quiet_failure:
                return
            else:
                self._quiet_failure = reason
        self.log(line)
