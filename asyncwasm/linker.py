"""Linker: names host functions and other instances' exports as imports.

    >>> import asyncwasm
    >>> from asyncwasm import FuncType, I32
    >>> linker = asyncwasm.Linker()
    >>> linker.define_func("env", "log", FuncType([I32], []), print)
    >>> instance = linker.instantiate(asyncwasm.Module.from_file("app.wasm"))
    >>> instance.exports["run"](3)

WASI and trio (inside a trio task):

    >>> linker.define_wasi(asyncwasm.WasiConfig(argv=["app"]))    # a context per instance
    >>> with await linker.instantiate_async(module) as instance:   # start function may suspend
    ...     await instance.exports["_start"].call_async()

Import matching follows the spec's extern subtyping ("Import Matching"):
functions by exact type; tables by element type and limits; memories by
limits (an existing memory's *current* size is its minimum); globals by
exact content type and mutability; tags by exact type. A missing import
raises ``LinkError("unknown import ...")``, a mismatched one
``LinkError("incompatible import type ...")`` naming both types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Optional, Union, final

from ._engine import Func, Global, Memory, Table, Tag
from ._errors import LinkError
from ._types import ExternType, FuncType, GlobalType, MemoryType, TableType, TagType, valtype_matches
from .module import ImportType, Module

if TYPE_CHECKING:
    from .execution import Limits
    from .wasi import WasiConfig, WasiContext
    from .instance import Instance

__all__ = ["Linker", "Extern"]

Extern = Union[Func, Memory, Table, Global, Tag]
_EXTERN_CLASSES = (Func, Memory, Table, Global, Tag)


def extern_type(extern: Extern) -> ExternType:
    """The type an extern has *now*: a memory's or table's minimum is its
    current size, which is what import matching compares."""
    if isinstance(extern, Memory):
        return MemoryType(extern.size, extern.type.max, extern.type.is_64)
    if isinstance(extern, Table):
        table = extern.type
        return TableType(table.element, extern.size, table.max, table.is_64)
    if isinstance(extern, (Func, Global, Tag)):
        return extern.type
    raise TypeError(f"not an extern (Func, Memory, Table, Global or Tag): {type(extern).__name__}")


def _limits_match(actual_min: int, actual_max: Optional[int], expected_min: int, expected_max: Optional[int]) -> bool:
    if actual_min < expected_min:
        return False
    if expected_max is None:
        return True
    return actual_max is not None and actual_max <= expected_max


def import_matches(expected: ExternType, actual: ExternType) -> bool:
    """Whether an extern of type ``actual`` may satisfy an import declared
    as ``expected``."""
    if isinstance(expected, FuncType):
        return isinstance(actual, FuncType) and actual == expected
    if isinstance(expected, TableType):
        return (
            isinstance(actual, TableType)
            and actual.element == expected.element
            and actual.is_64 == expected.is_64
            and _limits_match(actual.min, actual.max, expected.min, expected.max)
        )
    if isinstance(expected, MemoryType):
        return (
            isinstance(actual, MemoryType)
            and actual.is_64 == expected.is_64
            and _limits_match(actual.min, actual.max, expected.min, expected.max)
        )
    if isinstance(expected, GlobalType):
        # An immutable global may have a subtype; a mutable one is written
        # through the import too, so its type must be the same.
        return (
            isinstance(actual, GlobalType)
            and actual.mutable == expected.mutable
            and (actual.content == expected.content if expected.mutable else valtype_matches(actual.content, expected.content))
        )
    if isinstance(expected, TagType):
        return isinstance(actual, TagType) and actual == expected
    raise TypeError(f"not an extern type: {expected!r}")


def _check_module(module: object, who: str) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"{who} needs an asyncwasm.Module, not {type(module).__name__}")


def _quote(module: str, name: str) -> str:
    return f'"{module}"."{name}"'


_WASI_MODULE = "wasi_snapshot_preview1"


def _wasi_import(imp: "ImportType", ctx: Optional["WasiContext"]) -> Func:
    """The WASI function of ``ctx`` for import ``imp`` (by name and type)."""
    where = _quote(imp.module, imp.name)
    if ctx is None:
        raise LinkError(f"{where} is provided by define_wasi(), which needs an instance: use instantiate()")
    if not isinstance(imp.type, FuncType):
        raise LinkError(f"unknown import: {where} ({imp.type}): WASI provides only functions")
    found = ctx.import_for(imp.name, imp.type)
    if found is None:
        from .wasi import FUNCTIONS

        known = FUNCTIONS.get(imp.name)
        hint = f"; WASI's {imp.name} has type {known.functype}" if known is not None else ": no WASI function has that name"
        raise LinkError(f"unknown WASI import {where} ({imp.type}){hint}")
    functype, func = found
    return Func(functype, func)


@final
class Linker:
    """A namespace of externs, keyed by ``(module, name)``, that satisfies
    the imports of the modules it instantiates.

    Defining the same ``(module, name)`` twice raises :class:`ValueError`
    unless ``allow_shadowing`` is true, in which case the later definition
    wins (the spec testsuite's ``register`` works that way).

        >>> linker = Linker()
        >>> linker.define("env", "memory", Memory(MemoryType(1)))
        >>> log = linker.define_func("env", "log", FuncType([I32], []), print)
        >>> linker.define_wasi()                       # wasi_snapshot_preview1.*
        >>> instance = linker.instantiate(module, limits=Limits(fuel=1_000_000))
    """

    def __init__(self, *, allow_shadowing: bool = False) -> None:
        self.allow_shadowing = allow_shadowing
        self._externs: dict[tuple[str, str], Extern] = {}
        self._wasi: Optional["WasiConfig"] = None

    # -- defining ---------------------------------------------------------

    def define(self, module: str, name: str, extern: Extern) -> None:
        """Make ``extern`` (a Func, Memory, Table, Global or Tag) importable as
        ``module.name``.

            >>> linker.define("env", "memory", Memory(MemoryType(1, 16)))
            >>> linker.define("env", "error", Tag(FuncType([I32], [])))   # an exception tag
        """
        if not isinstance(module, str) or not isinstance(name, str):
            raise TypeError(f"module and name must be str, not {type(module).__name__} and {type(name).__name__}")
        if not isinstance(extern, _EXTERN_CLASSES):
            raise TypeError(f"can only define a Func, Memory, Table, Global or Tag, not {type(extern).__name__}")
        key = (module, name)
        if not self.allow_shadowing and key in self._externs:
            raise ValueError(f"import {_quote(module, name)} is already defined (use Linker(allow_shadowing=True))")
        self._externs[key] = extern

    def define_func(
        self,
        module: str,
        name: str,
        functype: FuncType,
        func: Callable[..., object],
        *,
        access_caller: bool = False,
    ) -> Func:
        """Define a host function of type ``functype`` as ``module.name`` and
        return the :class:`~asyncwasm.Func` wrapping it.

        ``func`` receives plain Python numbers converted by the declared
        parameter types and returns ``None``, a value, or a tuple for several
        results. It may raise :class:`~asyncwasm.Trap` to trap the guest. An
        ``async def`` function (or one returning an awaitable) suspends the
        guest while the awaitable runs; that needs the async driver.

            >>> linker.define_func("env", "add", FuncType([I32, I32], [I32]), lambda a, b: a + b)

        With ``access_caller=True``, ``func(caller, *args)`` first receives an
        :class:`~asyncwasm.Caller`: the instance whose guest made the call,
        its exports, memory and WASI context, valid during the call (for an
        ``async def``, until it returns). One linker then serves any number
        of instances:

            >>> def log(caller: Caller, ptr: int, length: int) -> None:
            ...     print(caller.memory.read(ptr, length).decode())
            >>> linker.define_func("env", "log", FuncType([I32, I32], []), log, access_caller=True)
        """
        if not isinstance(functype, FuncType):
            raise TypeError(f"functype must be a FuncType, not {type(functype).__name__}")
        if not callable(func):
            raise TypeError(f"{type(func).__name__} object is not callable")
        wrapped = Func(functype, func, access_caller=access_caller)
        self.define(module, name, wrapped)
        return wrapped

    def define_wasi(self, config: Optional["WasiConfig"] = None) -> None:
        """Provide WASI preview1 (``wasi_snapshot_preview1``) to the modules
        this linker instantiates, configured by ``config`` (a
        :class:`~asyncwasm.WasiConfig`; default: no args, env, files or
        network, stdio discarded).

        Each instance gets its own :class:`~asyncwasm.wasi.WasiContext` made
        from the config (which stays reusable), as ``instance.wasi``; close
        the instance to close it. Each WASI import is resolved by name *and*
        type (so WasmEdge's socket extension links by signature); an import
        with no such function raises :class:`~asyncwasm.LinkError`. Explicit
        definitions of ``wasi_snapshot_preview1`` names take precedence.

            >>> linker.define_wasi(WasiConfig(argv=["app", "--fast"], stdout=sys.stdout))
            >>> with linker.instantiate(module) as instance:
            ...     instance.exports["_start"]()
        """
        from .wasi import WasiConfig

        if config is None:
            config = WasiConfig()
        if not isinstance(config, WasiConfig):
            raise TypeError(f"define_wasi() needs an asyncwasm.WasiConfig, not {type(config).__name__}")
        if self._wasi is not None and not self.allow_shadowing:
            raise ValueError("WASI is already defined in this linker (use Linker(allow_shadowing=True))")
        config.check()
        self._wasi = config

    def define_instance(self, module_name: str, instance: "Instance") -> None:
        """Make every export of ``instance`` importable under ``module_name``.

            >>> linker.define_instance("app", instance)     # imports "app"."add", ...
        """
        from .instance import Instance

        if not isinstance(instance, Instance):
            raise TypeError(f"define_instance() needs an asyncwasm.Instance, not {type(instance).__name__}")
        for name, extern in instance.exports.items():
            self.define(module_name, name, extern)

    # -- looking up ---------------------------------------------------------

    def get(self, module: str, name: str) -> Optional[Extern]:
        """The extern defined as ``module.name``, or None (WASI functions
        are made per instance and are not listed).

            >>> linker.get("env", "memory").size, linker.get("env", "nothing")
            (1, None)
        """
        return self._externs.get((module, name))

    def __iter__(self) -> Iterator[tuple[str, str, Extern]]:
        """Yields ``(module, name, extern)`` for every definition.

            >>> [(m, n) for m, n, _ in linker]
            [('env', 'memory'), ('env', 'log')]
        """
        for (module, name), extern in self._externs.items():
            yield module, name, extern

    def __len__(self) -> int:
        return len(self._externs)

    def resolve(self, module: "Module") -> list[Extern]:
        """The extern for each import of ``module``, in import order.

        Raises :class:`~asyncwasm.LinkError` for the first import that is
        missing (``"unknown import"``) or does not match
        (``"incompatible import type"``). WASI imports provided by
        :meth:`define_wasi` need a per-instance context, so only
        :meth:`instantiate` resolves those.

            >>> [type(extern).__name__ for extern in linker.resolve(module)]
            ['Func', 'Memory']
        """
        _check_module(module, "resolve()")
        return [self._resolve_one(imp, None) for imp in module.imports]

    def _link(self, module: "Module") -> tuple[list[Extern], Optional["WasiContext"]]:
        """The externs for an instance of ``module``, and its WASI context
        (made here when the module imports WASI and :meth:`define_wasi` was
        called; the caller owns it)."""
        ctx = None
        if self._wasi is not None and any(
            imp.module == _WASI_MODULE and (imp.module, imp.name) not in self._externs for imp in module.imports
        ):
            from .wasi import WasiContext

            ctx = WasiContext(self._wasi)
        try:
            return [self._resolve_one(imp, ctx) for imp in module.imports], ctx
        except BaseException:
            if ctx is not None:
                ctx.close()
            raise

    def _resolve_one(self, imp: "ImportType", ctx: Optional["WasiContext"]) -> Extern:
        extern = self._externs.get((imp.module, imp.name))
        if extern is None and imp.module == _WASI_MODULE and self._wasi is not None:
            return _wasi_import(imp, ctx)
        if extern is None:
            raise LinkError(f"unknown import: {_quote(imp.module, imp.name)} ({imp.type}) is not defined")
        actual = extern_type(extern)
        if not import_matches(imp.type, actual):
            raise LinkError(
                f"incompatible import type for {_quote(imp.module, imp.name)}: expected {imp.type}, found {actual}"
            )
        return extern

    # -- instantiating --------------------------------------------------------

    def instantiate(self, module: "Module", limits: Optional["Limits"] = None) -> "Instance":
        """Instantiate ``module`` with this linker's definitions and run its
        start function, if any. Blocks until the start function returns (it
        must not suspend: use :meth:`instantiate_async` for that).

        Raises :class:`~asyncwasm.LinkError` for unresolved imports,
        :class:`~asyncwasm.Trap` when a segment is out of bounds or the start
        function traps.

            >>> instance = linker.instantiate(module, Limits(max_memory_pages=256))
            >>> instance.exports["add"](2, 40)
            42
        """
        from .instance import Instance

        return Instance(module, self, limits=limits)

    async def instantiate_async(self, module: "Module", limits: Optional["Limits"] = None) -> "Instance":
        """:meth:`instantiate` with the start function run by the trio driver,
        so it may suspend on async host functions and is cancellable.

            >>> instance = await linker.instantiate_async(module, limits=Limits(timeout=10))
        """
        from .instance import Instance

        return await Instance._create_async(module, self, limits)

    def __repr__(self) -> str:
        return f"<asyncwasm.Linker: {len(self._externs)} definitions>"
