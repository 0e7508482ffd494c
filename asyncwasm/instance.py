"""Instance: a module's memories, tables, globals and functions, alive.

    >>> import asyncwasm
    >>> module = asyncwasm.Module(wasm_bytes)
    >>> instance = asyncwasm.Instance(module, linker)      # or linker.instantiate(module)
    >>> add = instance.exports["add"]                      # an asyncwasm.Func
    >>> add(1, 2)
    3
    >>> memory = instance.exports["memory"]                # an asyncwasm.Memory
    >>> memory.read(0, 4)
    b'\\x00\\x00\\x00\\x00'

``Func``, ``Memory``, ``Table`` and ``Global`` are the engine's own objects
(see ``asyncwasm._engine``); they keep their instance alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, final

from . import _engine
from ._pacer import Pacer
from ._stats import Meter, Statistics
from ._types import FuncType
from .execution import DEFAULT_MAX_MEMORY_PAGES, DEFAULT_MAX_TABLE_ELEMENTS, Deadline, Limits, _Gate
from .linker import Extern, Linker, _check_module
from .module import Module

if TYPE_CHECKING:
    from .wasi import WasiContext

__all__ = ["Instance", "Exports", "OneShot"]


@final
class Exports(Mapping[str, Extern]):
    """An instance's exports by name, in module order (read-only).

    Use ``exports["name"]``: export names are arbitrary strings, so they are
    deliberately not attributes. Values are Func, Memory, Table or Global;
    typed code narrows with ``isinstance``.

        >>> instance.exports
        Exports({'add': Func, 'memory': Memory})
        >>> add = instance.exports["add"]
        >>> assert isinstance(add, asyncwasm.Func)
        >>> instance.exports["sub"]
        Traceback (most recent call last):
        KeyError: "no export named 'sub' (exports: 'add', 'memory')"
    """

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, Extern]) -> None:
        self._items = items

    def __getitem__(self, name: str) -> Extern:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self._items) or "none"
            raise KeyError(f"no export named {name!r} (exports: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items  # without building __getitem__'s message

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n!r}: {type(e).__name__}" for n, e in self._items.items())
        return f"Exports({{{inner}}})"


@final
class Instance:
    """An instantiated :class:`~asyncwasm.Module`.

    ``Instance(module, linker=None, *, limits=None)`` resolves the module's
    imports through ``linker`` (see :class:`~asyncwasm.Linker`), creates its
    memories, tables and globals, applies the active element and data
    segments, then runs the start function to completion. Blocks while the
    start function runs; ``await linker.instantiate_async(module)`` lets it
    suspend instead.

    Raises :class:`~asyncwasm.LinkError` for unresolved or mismatched
    imports, :class:`~asyncwasm.Trap` for an out-of-bounds segment or a trap
    in the start function (Wasm 2.0: segment writes made before the failure
    stay visible in imported memories and tables).

    An instance linked with WASI (``linker.define_wasi``) owns its
    :class:`~asyncwasm.wasi.WasiContext` (``instance.wasi``): close the
    instance when done, or use it as a context manager::

        with linker.instantiate(module) as instance:
            instance.exports["_start"]()
    """

    __slots__ = ("_raw", "_gate", "_exports", "__weakref__")

    def __init__(self, module: Module, linker: Optional[Linker] = None, *, limits: Optional[Limits] = None) -> None:
        self._setup(module, linker, limits)
        try:
            start = self._raw.start
            if start is not None:
                self._gate.call_sync(start, ())
        except BaseException:
            self.close()
            raise

    @classmethod
    async def _create_async(cls, module: Module, linker: Optional[Linker], limits: Optional[Limits]) -> "Instance":
        """Like ``Instance(...)``, with the start function run by the trio driver."""
        self = cls.__new__(cls)
        self._setup(module, linker, limits)
        try:
            start = self._raw.start
            if start is not None:
                await self._gate.call_async(start, (), Meter())
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def _over(cls, raw: _engine.Instance, gate: _Gate) -> "Instance":
        """An Instance for an engine instance and gate that already exist
        (what ``Caller.instance`` gives when nobody holds the first one)."""
        self = cls.__new__(cls)
        self._raw = raw
        self._gate = gate
        self._exports = None
        return self

    def _setup(self, module: Module, linker: Optional[Linker], limits: Optional[Limits]) -> None:
        _check_module(module, "instantiate()")
        if linker is not None and not isinstance(linker, Linker):
            raise TypeError(f"linker must be an asyncwasm.Linker or None, not {type(linker).__name__}")
        limits = Limits() if limits is None else limits
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be an asyncwasm.Limits or None, not {type(limits).__name__}")
        self._gate = None  # close() before the gate exists
        externs, wasi = (linker if linker is not None else Linker())._link(module)
        try:
            raw = _new_engine_instance(module, externs, limits)
            gate = _Gate(raw, limits, module, wasi)
            if wasi is not None:
                # WASI functions reach guest memory through the context: bind it
                # before the start function can call one.
                memory = raw.default_memory
                if memory is not None:
                    wasi.bind(memory)
        except BaseException:
            if wasi is not None:
                wasi.close()
            raise
        self._raw = raw
        self._gate = gate
        self._exports = None
        gate._owner = weakref.ref(self)

    @property
    def module(self) -> Module:
        """The module this is an instance of."""
        return self._gate.module

    @property
    def limits(self) -> Limits:
        """The limits this instance was created with."""
        return self._gate.limits

    @property
    def exports(self) -> Exports:
        """The exports by name: ``instance.exports["memory"]``."""
        exports = self._exports
        if exports is None:
            exports = self._exports = Exports(self._raw.exports)
        return exports

    @property
    def wasi(self) -> Optional["WasiContext"]:
        """This instance's WASI context (fds, sockets, args), or None when it
        was not linked with ``Linker.define_wasi`` or imports nothing from WASI."""
        return self._gate.wasi

    @property
    def interrupted(self) -> bool:
        """True once a call into the instance was stopped mid-run (cancelled,
        timed out): every later call raises :class:`~asyncwasm.Interrupted`."""
        return self._gate.interrupted is not None

    def statistics(self) -> Statistics:
        """Totals over every call into this instance so far (the start
        function included): see :class:`~asyncwasm.Statistics`.

            >>> instance.statistics().fuel_used
            120000
        """
        return self._gate.statistics()

    def close(self) -> None:
        """Release what the instance holds outside its memory: its WASI
        context's fds and sockets (a guest task still waiting on one of them
        wakes with an error). Idempotent; the instance's exports stay usable
        for code that does not need WASI."""
        gate = getattr(self, "_gate", None)
        if gate is not None and gate.wasi is not None:
            gate.wasi.close()

    def __enter__(self) -> "Instance":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        module = self._gate.module
        label = f" {module.name!r}" if module.name else ""
        state = " (interrupted)" if self.interrupted else ""
        return f"<asyncwasm.Instance{label}: {len(module.exports)} exports{state}>"


@final
class OneShot:
    """Fresh instances of one module, each made, run once and destroyed: the
    fast path for an instance per job (HTTP handler mode makes one per
    request).

        >>> shot = OneShot(module, linker.resolve(module), limits=Limits(fuel=10**8))
        >>> ctx.renew(env=[b"NAME=value"], stdout=out.append)   # a WasiContext whose functions
        >>> await shot.run(wasi=ctx)                             # ... the externs are
        >>> shot.statistics().calls                              # totals over every run
        2

    ``externs`` are the module's imports, resolved once (as
    :meth:`Linker.resolve` gives them); ``export`` is the function each run
    calls (a WASI command's ``_start``). :meth:`run` blocks (in the current
    trio task) until the instance's start function, then ``export``, have
    run; it raises what :meth:`Func.call_async` would (:class:`Trap`,
    :class:`Exit`, :class:`FuelExhausted`, :class:`Interrupted`, a host
    function's error, :class:`trio.Cancelled`) and :class:`LinkError` when
    the module cannot be instantiated (a memory over ``limits``).

    Rule: every run gets a new instance with the limits (the fuel budget is
    per run); nothing of one run is visible to the next. Once the run is
    over the instance is released (``_engine.Instance.release``): its
    memory's reservation goes back to the engine's pool at once, even when
    a table of its own functions would keep it in a reference cycle, and a
    Func of it that escaped (a funcref handed to a host function) raises
    :class:`RuntimeError` when called afterwards.

    Strategy (speed): no linking per run (the externs are checked by the
    engine's own import matching), no :class:`Instance` object (one is made
    only if a host function asks its Caller for it; its ``statistics()``
    are then this OneShot's totals), the gate, fiber and meters of
    :meth:`Func.call_async`, and an instance free of reference cycles: a
    run leaves nothing for the cyclic garbage collector.
    """

    __slots__ = ("module", "limits", "export", "_externs", "_sizes", "_totals", "_pacer")

    def __init__(self, module: Module, externs: Sequence[Extern], *, limits: Optional[Limits] = None,
                 export: str = "_start") -> None:
        _check_module(module, "OneShot()")
        limits = Limits() if limits is None else limits
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be an asyncwasm.Limits or None, not {type(limits).__name__}")
        if not any(e.name == export and isinstance(e.type, FuncType) for e in module.exports):
            raise ValueError(f"the module exports no function named {export!r}")
        self.module = module
        self.limits = limits
        self.export = export
        self._externs = list(externs)
        self._sizes = _engine_sizes(limits)
        self._totals = Meter()
        self._pacer = Pacer()  # the guest's speed, learned over the runs

    async def run(self, *, wasi: Optional["WasiContext"] = None, timeout: Optional[float] = None) -> None:
        """Instantiate, run the start function and ``export``, release.
        ``wasi``: the context the externs' WASI functions use; it is bound
        to the new instance's memory (and neither renewed nor closed here).
        ``timeout``: seconds for the whole run, after which it stops with
        :class:`Interrupted` (``timeout`` set); unlike a cancel scope around
        the call, it costs nothing unless the guest waits or runs longer
        than a slice."""
        deadline = None
        if timeout is not None:
            deadline = Deadline(timeout, lambda: f"a run ran past its timeout of {timeout:g} s",
                                lambda: f"the run took longer than its timeout of {timeout:g} s")
        raw = _engine.Instance(self.module._compiled, self._externs, **self._sizes)
        gate = _Gate(raw, self.limits, self.module, wasi, self._totals, self._pacer)
        try:
            if wasi is not None:
                memory = raw.default_memory
                if memory is not None:
                    wasi.bind(memory)
            start = raw.start
            if start is not None:
                await gate.call_async(start, (), Meter(), deadline)
            await gate.call_async(raw.exports[self.export], (), Meter(), deadline)
        finally:
            if gate.holder is None and not gate.running:  # nothing runs in it any more
                raw.release()

    def check(self) -> None:
        """Instantiate once without running anything: raises the
        :class:`LinkError` every run would (a memory over the limits)."""
        _new_engine_instance(self.module, self._externs, self.limits).release()

    def statistics(self) -> Statistics:
        """Totals over every run so far (start functions included)."""
        return self._totals.snapshot()

    def __repr__(self) -> str:
        label = f" {self.module.name!r}" if self.module.name else ""
        return f"<asyncwasm.OneShot{label} {self.export}: {self._totals.calls} calls>"


def _new_engine_instance(module: Module, externs: Sequence[Extern], limits: Limits) -> _engine.Instance:
    return _engine.Instance(module._compiled, externs, **_engine_sizes(limits))


def _engine_sizes(limits: Limits) -> dict[str, int]:
    """``_engine.Instance``'s size arguments for ``limits``."""
    return {
        "max_memory_pages": _or(limits.max_memory_pages, DEFAULT_MAX_MEMORY_PAGES),
        "max_table_elements": _or(limits.max_table_elements, DEFAULT_MAX_TABLE_ELEMENTS),
        "max_call_depth": limits.call_depth,
    }


def _or(value: Optional[int], default: int) -> int:
    return default if value is None else value
