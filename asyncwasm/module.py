"""Module: compiled WebAssembly code, immutable and shareable.

    >>> import asyncwasm
    >>> module = asyncwasm.Module.from_file("hello.wasm")
    >>> module.kind
    'command'
    >>> [str(i) for i in module.imports]
    ['wasi_snapshot_preview1.fd_write: func [i32 i32 i32 i32] -> [i32]', ...]
    >>> module.exports[0]
    ExportType(name='memory', type=MemoryType(min=2, max=None, is_64=False))

Compiling runs the engine's stages once, in order (decode, then validate and
compile every function body); instantiating the same Module many times, from
many trio tasks, reuses that work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, Optional, Union, final

from . import _engine
from .costs import CostTable, packed_or_none
from ._types import ExternType, FuncType

__all__ = ["Module", "ImportType", "ExportType", "ModuleKind"]

ModuleKind = Literal["command", "reactor", "library"]

BytesLike = Union[bytes, bytearray, memoryview]


@final
@dataclass(frozen=True)
class ImportType:
    """One import of a module: ``module.name`` of the given extern type.

        >>> imp = module.imports[0]
        >>> imp.module, imp.name, str(imp.type)
        ('wasi_snapshot_preview1', 'fd_write', 'func [i32 i32 i32 i32] -> [i32]')
    """

    module: str
    name: str
    type: ExternType

    def __str__(self) -> str:
        return f"{self.module}.{self.name}: {self.type}"


@final
@dataclass(frozen=True)
class ExportType:
    """One export of a module: ``name`` of the given extern type.

        >>> [e.name for e in module.exports if isinstance(e.type, asyncwasm.FuncType)]
        ['_start']
    """

    name: str
    type: ExternType

    def __str__(self) -> str:
        return f"{self.name}: {self.type}"


@final
class Module:
    """A compiled WebAssembly module.

    ``Module(data)`` takes the binary format as any bytes-like object;
    :meth:`from_file` reads a ``.wasm`` file. Both raise
    :class:`~asyncwasm.MalformedError` (broken binary format) or
    :class:`~asyncwasm.ValidationError` (type rules broken); the message names
    the byte offset, the function index when inside a body, and the rule.

    A Module never changes after construction, so one Module may be
    instantiated any number of times and shared by any number of trio tasks.

    ``costs``, a :class:`~asyncwasm.CostTable`, weighs instructions for fuel
    (default: one unit each); ``Limits(fuel=N)`` is then a cost limit.

        >>> module = Module(open("add.wasm", "rb").read())   # or Module.from_file("add.wasm")
        >>> module.kind, [str(e) for e in module.exports]
        ('library', ['add: func [i32 i32] -> [i32]'])
        >>> Module(b"\\0asm\\2\\0\\0\\0")
        Traceback (most recent call last):
        asyncwasm.MalformedError: unknown binary version at offset 0x4
    """

    __slots__ = ("_compiled", "_imports", "_exports", "_costs", "__weakref__")
    _compiled: _engine.CompiledModule
    _imports: tuple[ImportType, ...]
    _exports: tuple[ExportType, ...]
    _costs: Optional[CostTable]

    def __init__(self, data: BytesLike, *, costs: Optional[CostTable] = None) -> None:
        if isinstance(data, str):
            raise TypeError("Module() takes the binary format as bytes; the text format is not supported")
        try:
            view = memoryview(data)
        except TypeError:
            raise TypeError(f"Module() takes a bytes-like object, not {type(data).__name__}") from None
        compiled = _engine.compile(view, packed_or_none(costs))
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_costs", costs)
        object.__setattr__(self, "_imports", tuple(ImportType(m, n, t) for m, n, t in compiled.imports))
        object.__setattr__(self, "_exports", tuple(ExportType(n, t) for n, t in compiled.exports))

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"], *, costs: Optional[CostTable] = None) -> "Module":
        """Read and compile a ``.wasm`` file. Blocks on the file read.

            >>> Module.from_file("add.wasm").exports
            [ExportType(name='add', type=FuncType(params=(i32, i32), results=(i32,)))]
        """
        with open(path, "rb") as f:
            return cls(f.read(), costs=costs)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Module is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Module is immutable")

    @property
    def costs(self) -> Optional[CostTable]:
        """The cost table the module was compiled with, or None (1 per instruction)."""
        return self._costs

    @property
    def imports(self) -> list[ImportType]:
        """The imports, in the order the instantiation needs them."""
        return list(self._imports)

    @property
    def exports(self) -> list[ExportType]:
        """The exports, in module order."""
        return list(self._exports)

    @property
    def kind(self) -> ModuleKind:
        """``"command"`` when the module exports a ``_start`` function (WASI
        programs with a main), ``"reactor"`` when it exports ``_initialize``
        (libraries with WASI state), otherwise ``"library"``."""
        funcs = {e.name for e in self._exports if isinstance(e.type, FuncType)}
        if "_start" in funcs:
            return "command"
        if "_initialize" in funcs:
            return "reactor"
        return "library"

    @property
    def name(self) -> Optional[str]:
        """The module name from the ``name`` custom section, if any."""
        return self._compiled.name

    @property
    def start(self) -> Optional[int]:
        """Index of the start function (run at instantiation), if any."""
        return self._compiled.start

    def custom_sections(self, name: Optional[str] = None) -> list[bytes]:
        """The contents of every custom section called ``name``, in module
        order (empty when there is none). Without a name: every custom
        section's contents; use :meth:`custom_section_names` for the names.

            >>> module.custom_sections("producers")
            [b'\\x01\\x0cprocessed-by\\x01\\x05clang\\x0617.0.6']
            >>> module.custom_sections("absent")
            []
        """
        return [data for n, data in self._compiled.custom_sections if name is None or n == name]

    def custom_section_names(self) -> list[str]:
        """The names of the custom sections, in module order (repeats kept).

            >>> module.custom_section_names()
            ['name', 'producers', 'target_features']
        """
        return [n for n, _ in self._compiled.custom_sections]

    def __repr__(self) -> str:
        if not hasattr(self, "_exports"):
            return "<asyncwasm.Module (not compiled)>"
        label = f" {self.name!r}" if self.name else ""
        return f"<asyncwasm.Module{label} {self.kind}: {len(self._imports)} imports, {len(self._exports)} exports>"
