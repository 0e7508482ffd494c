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

from collections.abc import Mapping
from typing import Iterator, Optional, final

from . import _engine
from .execution import DEFAULT_MAX_MEMORY_PAGES, DEFAULT_MAX_TABLE_ELEMENTS, Limits, call_sync
from .linker import Extern, Linker
from .module import Module

__all__ = ["Instance", "Exports"]


@final
class Exports(Mapping[str, Extern]):
    """An instance's exports by name, in module order (read-only).

    Use ``exports["name"]``: export names are arbitrary strings, so they are
    deliberately not attributes."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, Extern]) -> None:
        self._items = items

    def __getitem__(self, name: str) -> Extern:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self._items) or "none"
            raise KeyError(f"no export named {name!r} (exports: {known})") from None

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
    start function runs.

    Raises :class:`~asyncwasm.LinkError` for unresolved or mismatched
    imports, :class:`~asyncwasm.Trap` for an out-of-bounds segment or a trap
    in the start function (Wasm 2.0: segment writes made before the failure
    stay visible in imported memories and tables), and
    :class:`NotImplementedError` for limits only the async driver applies.
    """

    __slots__ = ("_module", "_limits", "_raw", "_exports", "__weakref__")

    def __init__(self, module: Module, linker: Optional[Linker] = None, *, limits: Optional[Limits] = None) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"Instance() needs an asyncwasm.Module, not {type(module).__name__}")
        limits = Limits() if limits is None else limits
        limits.check_supported()
        externs = (linker if linker is not None else Linker()).resolve(module)
        raw = _engine.Instance(
            module._compiled,
            externs,
            max_memory_pages=_or(limits.max_memory_pages, DEFAULT_MAX_MEMORY_PAGES),
            max_table_elements=_or(limits.max_table_elements, DEFAULT_MAX_TABLE_ELEMENTS),
        )
        self._module = module
        self._limits = limits
        self._raw = raw
        engine_exports = raw.exports
        self._exports = Exports({e.name: engine_exports[e.name] for e in module.exports})
        if raw.start is not None:
            call_sync(raw.start, (), limits=limits)

    @property
    def module(self) -> Module:
        """The module this is an instance of."""
        return self._module

    @property
    def limits(self) -> Limits:
        """The limits this instance was created with."""
        return self._limits

    @property
    def exports(self) -> Exports:
        """The exports by name: ``instance.exports["memory"]``."""
        return self._exports

    def __repr__(self) -> str:
        label = f" {self._module.name!r}" if self._module.name else ""
        return f"<asyncwasm.Instance{label}: {len(self._exports)} exports>"


def _or(value: Optional[int], default: int) -> int:
    return default if value is None else value
