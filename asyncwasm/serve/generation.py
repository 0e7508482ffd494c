"""A generation: one compiled module version and the instances serving it.

    >>> generation = Generation(2, module, version, Gate(handoff), settings, log=print, starting=True)
    >>> nursery.start_soon(generation.run)       # its instances start, each waits on its gate
    >>> await generation.wait_ready(timeout=30)  # True once every one waits in sock_accept
    >>> handoff.switch(generation.gate)          # new connections go to it
    >>> await old.drain(30)                      # the previous one: until its connections close

Lifecycle (DESIGN.md "Generations"): *starting* -> *serving* -> *draining*
-> stopped. A generation built by a reload is started beside the one that
serves: its instances get their own :class:`~asyncwasm.serve.handoff.Gate`
as their listener, so no connection reaches them before the switch. It is
*ready* once every instance has waited for a connection at least once (it
instantiated, ran its start-up, and sits in ``sock_accept`` or a poll on
its listener). While starting, a life that ends (link error, trap, exit)
is the generation's failure: the life parks instead of being restarted,
and the caller cancels the generation (rollback). Once serving, lives that
end are restarted with back-off as always. Draining: no new connections;
the instances finish the ones they hold, until none is left or the drain
time is over, then the generation is cancelled (which closes what is left).

Each life's statistics are kept when it ends, so the server's counters
never go back when a generation goes away.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Union

import trio

from .._engine import Func
from ..execution import Limits
from ..instance import Instance
from ..linker import Linker
from ..module import Module
from ..wasi import WasiConfig
from ..wasi.netpolicy import NetPolicy
from .handoff import Gate
from .supervisor import REASONS, Backoff, Supervisor, describe_end

__all__ = ["Generation", "Settings", "make_linker", "check_instantiable"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every generation of a server runs with (see :class:`~asyncwasm.serve.Server`)."""

    instances: int = 1
    limits: Limits = dataclasses.field(default_factory=Limits)
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    argv: Optional[list[str]] = None
    net_policy: NetPolicy = dataclasses.field(default_factory=NetPolicy)
    stdout: object = "inherit"
    stderr: object = "inherit"
    backoff: Backoff = Backoff()
    max_output_rate: Optional[int] = None  # bytes/s of stdout+stderr per instance (WasiConfig's)
    max_fds: int = 1024  # fds per instance (WasiConfig's): a poll server's connections at once


def make_linker(module: Module, listeners: list[Any], settings: Settings) -> Linker:
    """A linker with WASI as ``settings`` say, the guests' listeners being ``listeners``."""
    env: dict[Union[str, bytes], Union[str, bytes]] = {}
    env.update(settings.env)
    config = WasiConfig(argv=settings.argv or [module.name or "server"], env=env,
                        listeners=listeners, net_policy=settings.net_policy,
                        stdout=settings.stdout, stderr=settings.stderr, max_output_rate=settings.max_output_rate,
                        max_fds=settings.max_fds)
    linker = Linker()
    linker.define_wasi(config)
    return linker


async def check_instantiable(module: Module, settings: Settings) -> None:
    """Instantiate ``module`` once as an instance would be, and close it:
    LinkError (a missing import, memory above the limits), Trap (a start
    function that fails)."""
    instance = await make_linker(module, [], settings).instantiate_async(module, limits=settings.limits)
    instance.close()


class Generation:
    """One module version's instances on one gate (see the module docstring).

    ``number`` counts generations from 1; ``version`` is what the log and
    metrics say about its bytes (a :class:`~asyncwasm.serve.source.Version`,
    or None for a module given as such)."""

    def __init__(self, number: int, module: Module, version: Any, gate: Gate, settings: Settings, *,
                 log: Callable[[str], None], starting: bool = False) -> None:
        self.number = number
        self.module = module
        self.version = version.without_data() if version is not None else None
        self.gate = gate
        self.settings = settings
        self.starting = starting
        self.failure: Optional[str] = None  #: how a life ended while starting
        prefix = "" if number == 1 else f"generation {number}: "
        self.log = log if not prefix else (lambda line: log(prefix + line))
        self.linker = make_linker(module, [gate], settings)
        self.supervisor = Supervisor(self._life, settings.instances, backoff=settings.backoff, log=self.log,
                                     announce=number == 1)
        self.instances: dict[Instance, int] = {}  # running instance -> its index
        # fuel, guest seconds and host calls of the lives that ended
        self.retired = [0, 0.0, 0]
        self.scope = trio.CancelScope()
        self.stopped = trio.Event()

    def __repr__(self) -> str:
        return f"<Generation {self.number}: {self.supervisor.running} running, {self.gate!r}>"

    async def _life(self, index: int, started: Callable[[], None]) -> None:
        try:
            instance = await self.linker.instantiate_async(self.module, limits=self.settings.limits)
        except Exception as exc:
            await self._failed_while_starting(index, exc)
            raise
        self.instances[instance] = index
        try:
            started()
            start = instance.exports["_start"]
            assert isinstance(start, Func)  # compile_version checked that _start is a function
            await start.call_async()
        except Exception as exc:
            await self._failed_while_starting(index, exc)
            raise
        else:
            await self._failed_while_starting(index, None)
        finally:
            self.instances.pop(instance, None)
            stats = instance.statistics()
            self.retired[0] += stats.fuel_used
            self.retired[1] += stats.guest_time
            self.retired[2] += stats.host_calls
            instance.close()

    async def _failed_while_starting(self, index: int, exc: Optional[BaseException]) -> None:
        """While starting, a life that ends is the generation's failure: say
        so and park until the generation is cancelled (no restart)."""
        if not self.starting:
            return
        if self.failure is None:
            self.failure = f"instance {index} {describe_end(exc)}"
            self.gate._changed.unpark_all()
        await trio.sleep_forever()

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the instances until :meth:`cancel`; started once every
        instance started (or failed to)."""
        try:
            with self.scope:
                await self.supervisor.run(task_status=task_status)
        finally:
            self.stopped.set()

    @property
    def ready(self) -> bool:
        """Every instance has waited for a connection at least once."""
        return len(self.gate.arrived) >= self.supervisor.count

    async def wait_ready(self, timeout: float) -> bool:
        """True once ready; False when a life failed (:attr:`failure`) or
        ``timeout`` seconds passed."""
        with trio.move_on_after(timeout):
            await self.gate.wait_until(lambda: self.failure is not None or self.ready)
        if self.failure is None and not self.ready:
            self.failure = (f"not ready within {timeout:g} s ({len(self.gate.arrived)} of "
                            f"{self.supervisor.count} instances reached sock_accept)")
        return self.failure is None

    def serving(self) -> None:
        """It is switched to: lives that end from now on are restarted."""
        self.starting = False

    async def drain(self, seconds: float) -> int:
        """No more connections come: stop restarting, wait until the
        instances closed every connection they hold or ``seconds`` passed,
        then stop. Returns how many connections the deadline cut."""
        self.supervisor.stop_restarting()
        with trio.move_on_after(seconds):
            await self.gate.wait_until(lambda: self.gate.open == 0 and self.gate.pending == 0)
        cut = self.gate.open
        await self.stop()
        return cut

    async def stop(self) -> None:
        """Cancel every instance (closing what they hold) and wait until they are gone."""
        self.scope.cancel()
        await self.stopped.wait()

    # -- counting ------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Instances busy with a connection (not waiting for one), plus
        connections accepted for them but not yet taken."""
        return max(0, self.supervisor.running - self.gate.waiting) + self.gate.pending

    def guest_totals(self) -> tuple[int, float, int]:
        """(fuel, engine seconds, host calls) of every life, the running ones included."""
        fuel, seconds, calls = self.retired
        for instance in self.instances:
            stats = instance.statistics()
            fuel += stats.fuel_used
            seconds += stats.guest_time
            calls += stats.host_calls
        return int(fuel), float(seconds), int(calls)

    def restarts(self) -> dict[str, int]:
        return {reason: self.supervisor.restarts_by_reason.get(reason, 0) for reason in REASONS}
