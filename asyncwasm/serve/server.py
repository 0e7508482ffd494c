"""Server: N instances of one compiled module behind one handoff listener,
and the swap to a new version without dropping a connection.

    >>> module = asyncwasm.Module.from_file("server.wasm")     # compiled once
    >>> handoff = Handoff.bind(["127.0.0.1:8080"])
    >>> server = Server(module, handoff, instances=8, log=print)
    >>> async with trio.open_nursery() as nursery:
    ...     await nursery.start(server.run)      # returns once every instance started
    ...     await server.swap(new_module)        # zero-drop: see below
    ...     server.shutdown()                    # graceful: see below

or from a :class:`~asyncwasm.serve.source.ModuleSource`, loaded at start and
reloaded on its schedule (``server.reload()`` checks at once):

    >>> server = Server(ModuleSource("https://example.org/app.wasm", poll=60), handoff, log=print)

The pieces: :class:`~.handoff.Handoff` accepts and hands connections to
idle instances; a :class:`~.generation.Generation` is one module version's
instances (a :class:`~.supervisor.Supervisor` keeps them running, each
instantiating the module with a fresh WASI context whose listener, fd 3,
is the generation's gate, and calling ``_start``).

Swap (:meth:`Server.swap`): the next generation is built beside the one
serving (instantiated, started, every instance waiting in
``sock_accept``) while the old one goes on accepting; then the accept loop
switches to it in one step (connections accepted but not yet taken move
with it), and the old generation drains: it gets no new connection, its
instances finish the ones they hold, and it is cancelled when none is
left or after ``drain`` seconds. A version that fails to start (link
error, trap or exit first, not ready within ``start_timeout``) is
cancelled and the serving one never stopped: :class:`SwapFailed`.

Graceful shutdown (:meth:`Server.shutdown`): stop accepting (the listening
sockets close, so new connections are refused), stop restarting, wait until
every running instance of every generation is back in ``sock_accept`` with
no connection left to take, or until ``grace`` seconds passed, then cancel
every instance (which closes its sockets).
"""

from __future__ import annotations

import dataclasses
import gc
import math
from typing import Any, Callable, Iterator, Mapping, Optional, Union

import trio

from .._errors import LinkError, ModuleError, Trap
from ..execution import Limits
from ..hostnet import format_address
from ..module import Module
from ..wasi.netpolicy import NetPolicy
from ..wasi.fdbudget import process_fd_budget
from .containment import Life, Watch
from .generation import Generation, Settings, check_instantiable
from .handoff import Gate, Handoff
from .source import ModuleSource, Refused, Version
from .supervisor import REASONS, Backoff, Supervisor

__all__ = ["Server", "SwapFailed", "DEFAULT_MEMORY_PAGES", "compile_version", "server_limits"]

# How often shutdown looks whether the in-flight connections are done.
_DRAIN_POLL = 0.02

#: Linear memory each instance may reserve unless ``limits`` say otherwise:
#: 1 GiB (16,384 pages). Each memory reserves address space for its maximum
#: up front (it never moves); a module without a declared maximum would
#: reserve 4 GiB, and 47 bits of user address space (128 TiB) hold only
#: 32,768 of those. At 1 GiB, 100,000 instances take 98 TiB and leave
#: 30 TiB for the rest of the process (see RATIONALE.md).
DEFAULT_MEMORY_PAGES = 16_384


def server_limits(limits: Optional[Limits]) -> Limits:
    """``limits`` with the memory cap every served instance has by default
    (:data:`DEFAULT_MEMORY_PAGES`)."""
    limits = limits or Limits()
    if limits.max_memory_pages is None:
        limits = dataclasses.replace(limits, max_memory_pages=DEFAULT_MEMORY_PAGES)
    return limits


def _collect_frozen() -> None:
    """Free a retired generation's reference cycles even when they were
    frozen (``asyncwasm serve`` freezes what start-up made, ``gc.freeze()``,
    and frozen garbage is never collected): unfreeze, collect once, freeze
    again what lives. Nothing when nothing is frozen."""
    if gc.get_freeze_count():
        gc.unfreeze()
        gc.collect()
        gc.freeze()


class SwapFailed(Exception):
    """The new version did not start; the one serving goes on. One line."""


async def compile_version(version: Version) -> Module:
    """Compile ``version`` off the event loop (the engine releases the GIL,
    so serving goes on meanwhile) and check it is a server: a WASI command.
    :class:`~.source.Refused` (outcome ``invalid``) otherwise."""
    try:
        module = await trio.to_thread.run_sync(Module, version.data)
    except ModuleError as exc:
        raise Refused("invalid", f"not a valid module: {exc}", version) from None
    if "_start" not in {e.name for e in module.exports}:
        raise Refused("invalid", "the module exports no _start (serve runs WASI commands)", version)
    return module


class Server:
    """Hosts ``instances`` copies of ``module`` on ``handoff`` (see the
    module docstring).

    ``module``: a compiled :class:`~asyncwasm.Module`, or a
    :class:`~.source.ModuleSource` loaded when :meth:`run` starts (its
    fallback served when it cannot be had; :class:`~.source.Refused` from
    :meth:`run` when there is none) and reloaded on its schedule;
    ``env``/``argv``: the guests' environment and arguments;
    ``limits``: per instance (``Limits.fuel`` is a budget per life;
    ``max_memory_pages`` defaults to :data:`DEFAULT_MEMORY_PAGES`);
    ``net_policy``: what guests may do beyond the listener (default: nothing);
    ``stdout``/``stderr``: the guests' output (default: the host's);
    ``grace``: seconds in-flight requests get at shutdown;
    ``drain``: seconds a replaced generation keeps its connections;
    ``start_timeout``: seconds a new generation has to be ready;
    ``max_output_rate``: bytes a second each instance may write to stdout
    and stderr (then its writes wait; default: no limit);
    ``max_fds``: fds each instance may hold (then MFILE; a server that
    holds its connections itself, like netmods' http_server_poll, serves
    at most about that many at once).
    :attr:`watch` logs what the limits refuse (:mod:`.containment`)."""

    def __init__(self, module: Union[Module, ModuleSource], handoff: Handoff, *, instances: int = 1,
                 limits: Optional[Limits] = None, env: Optional[Mapping[str, str]] = None,
                 argv: Optional[list[str]] = None, net_policy: Optional[NetPolicy] = None,
                 stdout: object = "inherit", stderr: object = "inherit", grace: float = 5.0,
                 drain: float = 30.0, start_timeout: float = 30.0, backoff: Backoff = Backoff(),
                 log: Callable[[str], None] = lambda line: None, version: Optional[Version] = None,
                 max_output_rate: Optional[int] = None, max_fds: int = 1024) -> None:
        for name, value in (("grace", grace), ("drain", drain)):
            if math.isnan(value) or value < 0:
                raise ValueError(f"{name} must be >= 0 seconds, not {value!r}")
        if not start_timeout > 0:
            raise ValueError(f"start_timeout must be > 0 seconds, not {start_timeout!r}")
        if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
            raise ValueError(f"instance count must be an int >= 1, not {instances!r}")
        self.source = module if isinstance(module, ModuleSource) else None
        self.module: Optional[Module] = None if self.source else module  # type: ignore[assignment]
        self.version = version.without_data() if version is not None else None
        self.handoff = handoff
        self.limits = limits = server_limits(limits)
        self.settings = Settings(instances=instances, limits=limits, env=dict(env or {}), argv=argv,
                                 net_policy=net_policy or NetPolicy(), stdout=stdout, stderr=stderr,
                                 backoff=backoff, max_output_rate=max_output_rate, max_fds=max_fds)
        self.grace = grace
        self.drain = drain
        self.start_timeout = start_timeout
        self.log = log
        self.watch = Watch(log, memory_budget=limits.memory_budget, fd_budget=process_fd_budget())
        self.generations: list[Generation] = []  # starting, serving and draining; the serving one is `current`
        self.current: Optional[Generation] = None
        self.reloader: Any = None  # a Reloader, when the module comes from a source
        self._numbers = 0
        self._swap_lock = trio.Lock()
        self._nursery: Optional[trio.Nursery] = None
        self._shutdown = trio.Event()
        self.stopped = trio.Event()
        # what generations that are gone counted
        self._retired_totals = [0, 0.0, 0]
        self._retired_restarts = dict.fromkeys(REASONS, 0)

    # -- what runs -------------------------------------------------------------------------------
    @property
    def supervisor(self) -> Supervisor:
        """The serving generation's supervisor."""
        assert self.current is not None, "the server has not started"
        return self.current.supervisor

    @property
    def instances(self) -> int:
        """Instances per generation (configured)."""
        return self.settings.instances

    @property
    def running(self) -> int:
        """Instances up now, in every generation (a swap briefly runs two)."""
        return sum(g.supervisor.running for g in self.generations)

    def restarts_by_reason(self) -> dict[str, int]:
        totals = dict(self._retired_restarts)
        for generation in self.generations:
            for reason, count in generation.restarts().items():
                totals[reason] += count
        return totals

    def lives(self) -> Iterator[Life]:
        """Every running instance: (its generation's log, index, Instance)."""
        for generation in self.generations:
            for instance, index in list(generation.instances.items()):
                yield generation.log, index, instance

    def guest_totals(self) -> tuple[int, float, int]:
        """(fuel consumed, seconds in the engine, host calls) of every life
        so far, the running ones included (for metrics; costs a few
        microseconds per instance)."""
        fuel, seconds, calls = self._retired_totals
        for generation in self.generations:
            f, s, c = generation.guest_totals()
            fuel, seconds, calls = fuel + f, seconds + s, calls + c
        return int(fuel), float(seconds), int(calls)

    @property
    def generation(self) -> int:
        """The serving generation's number (1 at start, +1 per swap)."""
        return self.current.number if self.current is not None else 0

    def _new_generation(self, module: Module, version: Optional[Version], gate: Gate, *,
                        starting: bool) -> Generation:
        self._numbers += 1
        generation = Generation(self._numbers, module, version, gate, self.settings, log=self.log,
                                starting=starting)
        self.generations.append(generation)
        return generation

    def _retire(self, generation: Generation) -> None:
        """Keep a stopped generation's counts and forget it."""
        fuel, seconds, calls = generation.guest_totals()
        self._retired_totals = [self._retired_totals[0] + fuel, self._retired_totals[1] + seconds,
                                self._retired_totals[2] + calls]
        for reason, count in generation.restarts().items():
            self._retired_restarts[reason] += count
        self.generations.remove(generation)

    # -- starting -----------------------------------------------------------------------------
    async def check(self, module: Optional[Module] = None) -> None:
        """Instantiate the module (default: the one to serve) once and close
        it: raises what every instance would (LinkError for missing imports
        or memory above the limits, Trap for a failing start function), so a
        server that cannot start fails at once instead of restarting forever."""
        module = module or self.module
        assert module is not None, "load the source first (Server.load)"
        await check_instantiable(module, self.settings)

    async def load(self) -> None:
        """With a :class:`~.source.ModuleSource`: fetch, verify, compile and
        check its module, or take its fallback (logged with the reason);
        :class:`~.source.Refused` when neither can serve. Called by
        :meth:`run`; call it first to learn of a failure before serving."""
        if self.module is not None or self.source is None:
            return
        from .reload import Reloader

        self.reloader = Reloader(self.source, self, self.log)
        version, self.module = await self.reloader.initial(self.check)
        self.version = version.without_data()

    async def admit(self, version: Version) -> Module:
        """Compile ``version`` (:func:`compile_version`); :class:`Refused` if it is no server."""
        return await compile_version(version)

    async def deploy(self, version: Version) -> str:
        """Compile ``version`` and :meth:`swap` to it: where it serves
        (``generation N``), or :class:`Refused` with nothing changed."""
        module = await self.admit(version)
        try:
            generation = await self.swap(module, version)
        except SwapFailed as exc:
            raise Refused("rolled_back", str(exc), version) from None
        return f"generation {generation.number}"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until :meth:`shutdown`, then shut down gracefully; returns
        when everything is closed. Started with ``nursery.start``, returns
        to the starter once every instance is up and accepting."""
        await self.load()
        assert self.module is not None
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self.handoff.accept_loop)
                self.current = self._new_generation(self.module, self.version, self.handoff.gate, starting=False)
                await nursery.start(self.current.run)
                for address in self.handoff.addresses():
                    self.log(f"listening on {self.handoff.scheme}://{format_address(address)}/ "
                             f"({self.settings.instances} instances)")
                if self.reloader is not None:
                    nursery.start_soon(self.reloader.run)
                nursery.start_soon(self.watch.run, self.lives)
                task_status.started()
                await self._shutdown.wait()
                await self._shut_down(nursery)
        finally:
            self.handoff.close()
            self.stopped.set()
        self.log("stopped")

    async def _shut_down(self, nursery: trio.Nursery) -> None:
        busy = self.in_flight
        self.log(f"shutting down: stopped accepting; {busy} connection(s) in flight, "
                 f"grace period {self.grace:g} s")
        self.handoff.stop_accepting()
        for generation in self.generations:
            generation.supervisor.stop_restarting()
        with trio.move_on_after(self.grace) as scope:
            while self.in_flight:
                await trio.sleep(_DRAIN_POLL)
        if scope.cancelled_caught:
            self.log(f"grace period over: cancelling {self.in_flight} connection(s) in flight")
        nursery.cancel_scope.cancel()

    # -- swapping ------------------------------------------------------------------------------
    async def swap(self, module: Module, version: Optional[Version] = None) -> Generation:
        """Serve ``module`` from now on without dropping a connection (see
        the module docstring); returns the new generation once it serves
        (the previous one drains in the background). :class:`SwapFailed`
        when it does not start: nothing changed."""
        async with self._swap_lock:
            generation = await self.prepare(module, version)
            self.commit(generation)
            return generation

    async def prepare(self, module: Module, version: Optional[Version] = None) -> Generation:
        """The first half of :meth:`swap`: a new generation started beside
        the serving one, every instance waiting for a connection, none
        given yet. Then :meth:`commit` or :meth:`abort` it (worker
        processes prepare together, then all commit). :class:`SwapFailed`
        when it does not start (it is stopped already)."""
        if self._nursery is None or self._shutdown.is_set():
            raise SwapFailed("the server is not running")
        generation = self._new_generation(module, version, Gate(self.handoff), starting=True)
        self._nursery.start_soon(generation.run)
        if not await generation.wait_ready(self.start_timeout):
            reason = generation.failure or "did not start"
            await self.abort(generation)
            raise SwapFailed(f"generation {generation.number} {reason}")
        return generation

    def commit(self, generation: Generation) -> None:
        """Switch to a prepared generation; the previous one drains."""
        assert generation.starting and generation in self.generations, "commit a prepared generation"
        previous = self.current
        assert previous is not None and self._nursery is not None
        generation.serving()
        self.handoff.switch(generation.gate)
        self.current, self.module, self.version = generation, generation.module, generation.version
        self._nursery.start_soon(self._drain, previous)

    async def abort(self, generation: Generation) -> None:
        """Stop a prepared generation that will not serve (rollback)."""
        await generation.stop()
        if generation in self.generations:
            self._retire(generation)

    async def _drain(self, generation: Generation) -> None:
        number, open_now = generation.number, generation.gate.open
        began = trio.current_time()
        cut = await generation.drain(self.drain)
        self._retire(generation)
        del generation  # the last reference: its cycles are garbage now
        _collect_frozen()
        if cut:
            self.log(f"generation {number}: drain time ({self.drain:g} s) over: {cut} connection(s) closed")
        else:
            self.log(f"generation {number}: drained in {trio.current_time() - began:.3f} s "
                     f"({open_now} connection(s) open at the switch), stopped")

    def reload(self, trigger: str = "request") -> bool:
        """Check the source now (``trigger`` names why in the log: SIGHUP...);
        False when there is no source to check."""
        if self.reloader is None:
            return False
        self.reloader.request(trigger)
        return True

    # -- stopping ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Begin the graceful shutdown (idempotent; safe from any task)."""
        self._shutdown.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown.is_set()

    @property
    def in_flight(self) -> int:
        """Instances busy with a connection (not waiting for one), plus
        connections accepted but not yet taken, in every generation."""
        return sum(g.in_flight for g in self.generations if not g.starting)
