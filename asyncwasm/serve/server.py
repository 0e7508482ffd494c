"""Server: N instances of one compiled module behind one handoff listener.

    >>> module = asyncwasm.Module.from_file("server.wasm")     # compiled once
    >>> handoff = Handoff.bind(["127.0.0.1:8080"])
    >>> server = Server(module, handoff, instances=8, log=print)
    >>> async with trio.open_nursery() as nursery:
    ...     await nursery.start(server.run)      # returns once every instance started
    ...     ...
    ...     server.shutdown()                    # graceful: see below

The pieces: :class:`~.handoff.Handoff` accepts and hands connections to
idle instances; :class:`~.supervisor.Supervisor` keeps ``instances`` lives
running, each instantiating the module with a fresh WASI context (the
handoff is its pre-opened listener, fd 3) and calling ``_start``.

Graceful shutdown (:meth:`Server.shutdown`): stop accepting (the listening
sockets close, so new connections are refused), stop restarting, wait until
every running instance is back in ``sock_accept`` with no connection left
to take, or until ``grace`` seconds passed, then cancel every instance
(which closes its sockets).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Optional

import trio

from ..execution import Limits
from ..instance import Instance
from ..linker import Linker
from ..module import Module
from ..hostnet import format_address
from ..wasi import WasiConfig
from ..wasi.netpolicy import NetPolicy
from .handoff import Handoff
from .supervisor import Backoff, Supervisor

__all__ = ["Server", "DEFAULT_MEMORY_PAGES"]

# How often shutdown looks whether the in-flight connections are done.
_DRAIN_POLL = 0.02

#: Linear memory each instance may reserve unless ``limits`` say otherwise:
#: 1 GiB (16,384 pages). Each memory reserves address space for its maximum
#: up front (it never moves); a module without a declared maximum would
#: reserve 4 GiB, and 47 bits of user address space (128 TiB) hold only
#: 32,768 of those. At 1 GiB, 100,000 instances take 98 TiB and leave
#: 30 TiB for the rest of the process (see RATIONALE.md).
DEFAULT_MEMORY_PAGES = 16_384


class Server:
    """Hosts ``instances`` copies of ``module`` on ``handoff`` (see the
    module docstring).

    ``env``/``argv``: the guests' environment and arguments;
    ``limits``: per instance (``Limits.fuel`` is a budget per life;
    ``max_memory_pages`` defaults to :data:`DEFAULT_MEMORY_PAGES`);
    ``net_policy``: what guests may do beyond the listener (default: nothing);
    ``stdout``/``stderr``: the guests' output (default: the host's);
    ``grace``: seconds in-flight requests get at shutdown."""

    def __init__(self, module: Module, handoff: Handoff, *, instances: int = 1,
                 limits: Optional[Limits] = None, env: Optional[Mapping[str, str]] = None,
                 argv: Optional[list[str]] = None, net_policy: Optional[NetPolicy] = None,
                 stdout: object = "inherit", stderr: object = "inherit", grace: float = 5.0,
                 backoff: Backoff = Backoff(), log: Callable[[str], None] = lambda line: None) -> None:
        if math.isnan(grace) or grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, not {grace!r}")
        self.module = module
        self.handoff = handoff
        limits = limits or Limits()
        if limits.max_memory_pages is None:
            limits = dataclasses.replace(limits, max_memory_pages=DEFAULT_MEMORY_PAGES)
        self.limits = limits
        self.grace = grace
        self.log = log
        config = WasiConfig(argv=argv or [module.name or "server"], env=dict(env or {}),
                            listeners=[handoff], net_policy=net_policy or NetPolicy(),
                            stdout=stdout, stderr=stderr)
        self.linker = Linker()
        self.linker.define_wasi(config)
        self.supervisor = Supervisor(self._life, instances, backoff=backoff, log=log)
        self._shutdown = trio.Event()
        self.stopped = trio.Event()
        self._instances: set[Instance] = set()
        # fuel, guest seconds and host calls of the lives that ended
        self._retired_fuel, self._retired_seconds, self._retired_calls = 0, 0.0, 0

    async def _life(self, index: int, started: Callable[[], None]) -> None:
        instance = await self.linker.instantiate_async(self.module, limits=self.limits)
        self._instances.add(instance)
        try:
            started()
            await instance.exports["_start"].call_async()
        finally:
            self._instances.discard(instance)
            stats = instance.statistics()
            self._retired_fuel += stats.fuel_used
            self._retired_seconds += stats.guest_time
            self._retired_calls += stats.host_calls
            instance.close()

    def guest_totals(self) -> tuple[int, float, int]:
        """(fuel consumed, seconds in the engine, host calls) of every life
        so far, the running ones included (for metrics; costs a few
        microseconds per instance)."""
        fuel, seconds, calls = self._retired_fuel, self._retired_seconds, self._retired_calls
        for instance in self._instances:
            stats = instance.statistics()
            fuel += stats.fuel_used
            seconds += stats.guest_time
            calls += stats.host_calls
        return fuel, seconds, calls

    async def check(self) -> None:
        """Instantiate the module once and close it: raises what every
        instance would (LinkError for missing imports or memory above the
        limits, OSError for a listener), so a server that cannot start fails
        at once instead of restarting forever."""
        instance = await self.linker.instantiate_async(self.module, limits=self.limits)
        instance.close()

    def shutdown(self) -> None:
        """Begin the graceful shutdown (idempotent; safe from any task)."""
        self._shutdown.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown.is_set()

    @property
    def in_flight(self) -> int:
        """Instances busy with a connection (not waiting for one), plus
        connections accepted but not yet taken."""
        return max(0, self.supervisor.running - self.handoff.waiting) + self.handoff.pending

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`shutdown`, then shut down gracefully; returns
        when everything is closed. Started with ``nursery.start``, returns
        to the starter once every instance is up and accepting."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.handoff.accept_loop)
                await nursery.start(self.supervisor.run)
                for address in self.handoff.addresses():
                    self.log(f"listening on {self.handoff.scheme}://{format_address(address)}/ "
                             f"({self.supervisor.count} instances)")
                task_status.started()
                await self._shutdown.wait()
                busy = self.in_flight
                self.log(f"shutting down: stopped accepting; {busy} connection(s) in flight, "
                         f"grace period {self.grace:g} s")
                self.handoff.stop_accepting()
                self.supervisor.stop_restarting()
                with trio.move_on_after(self.grace) as scope:
                    while self.in_flight:
                        await trio.sleep(_DRAIN_POLL)
                if scope.cancelled_caught:
                    self.log(f"grace period over: cancelling {self.in_flight} connection(s) in flight")
                nursery.cancel_scope.cancel()
        finally:
            self.handoff.close()
            self.stopped.set()
        self.log("stopped")
