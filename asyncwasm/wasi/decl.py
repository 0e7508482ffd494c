"""Host functions declared as data: name, named parameters, results, code.

Each WASI function is written once as a plain Python function and declared
with :func:`host_function`, whose keyword arguments name every parameter and
its ABI kind, in order:

    @host_function(fd=FD, iovs=PTR, iovs_len=U32, nwritten=PTR)
    def fd_write(ctx, fd, iovs, iovs_len, nwritten): ...

From that declaration :func:`bind` builds the callable the engine calls: it
converts the engine's signed ints to the ABI's unsigned ones, calls the code,
translates :class:`~asyncwasm.wasi.abi.WasiError` and :class:`OSError` into
the errno returned to the guest (the single translation boundary), and
reports ``(name, args, result)`` to an optional trace callback. When the code
returns an awaitable (it would block), the callable returns an awaitable too
that does the same translation once the wait is over.

Rule: a declaration's keyword names must equal the function's parameter
names after ``ctx``; :func:`host_function` checks this at import time.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Optional, Union

from .._types import I32, I64, FuncType, ValType
from .abi import Errno, WasiError, errno_from_oserror
from .later import Later

__all__ = ["Kind", "U32", "PTR", "FD", "U64", "S64", "HostFunction", "host_function", "REGISTRY", "bind", "format_call"]


@dataclass(frozen=True)
class Kind:
    """How one parameter travels: its Wasm type and how to read the engine's
    signed int (``mask`` turns it unsigned; ``None`` keeps it signed)."""

    name: str
    valtype: ValType
    mask: Optional[int]


U32 = Kind("u32", I32, 0xFFFFFFFF)
PTR = Kind("ptr", I32, 0xFFFFFFFF)
FD = Kind("fd", I32, 0xFFFFFFFF)
U64 = Kind("u64", I64, 0xFFFFFFFFFFFFFFFF)
S64 = Kind("s64", I64, None)

ErrnoResult = Union[int, Awaitable[int]]


@dataclass(frozen=True)
class HostFunction:
    """One ``wasi_snapshot_preview1`` function: its name, named parameters,
    Wasm type, and implementation ``impl(ctx, *params)``."""

    name: str
    params: tuple[tuple[str, Kind], ...]
    functype: FuncType
    impl: Callable[..., Any]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.params)


#: Every declared function by name; filled as the family modules import.
REGISTRY: dict[str, HostFunction] = {}


def host_function(*, results: tuple[ValType, ...] = (I32,), **params: Kind) -> Callable[[Callable], Callable]:
    """Declare the decorated function as the WASI import of the same name."""

    def register(impl: Callable) -> Callable:
        names = list(inspect.signature(impl).parameters)[1:]
        if names != list(params):
            raise TypeError(f"{impl.__name__}: declared parameters {list(params)} != signature {names}")
        if impl.__name__ in REGISTRY:
            raise ValueError(f"WASI function {impl.__name__} declared twice")
        functype = FuncType([kind.valtype for kind in params.values()], results)
        REGISTRY[impl.__name__] = HostFunction(impl.__name__, tuple(params.items()), functype, impl)
        return impl

    return register


Trace = Callable[[str, dict, Optional[int]], None]


def bind(function: HostFunction, ctx: Any, trace: Optional[Trace]) -> Callable[..., Any]:
    """The callable the engine calls for ``function`` on context ``ctx``."""
    impl = function.impl
    masks = tuple(kind.mask for _, kind in function.params)
    name = function.name
    if trace is None:
        call = _caller_factory(masks)(impl, ctx)
    else:
        call = _traced_call(impl, ctx, masks, name, function.param_names, trace)
    call.__name__ = name
    call.__qualname__ = f"wasi_snapshot_preview1.{name}"
    call.__doc__ = impl.__doc__
    return call


# -- the untraced callable: straight-line code per signature ------------------------------
#
# Why generated: this wrapper runs on every host call of every guest (twice
# per HTTP request), and a generic loop over the parameters (masking each
# through zip, collecting a list, unpacking it again) costs more than the
# WASI function it wraps. One factory per distinct tuple of masks (a handful
# in all of WASI) is compiled on first use; binding a context only makes a
# closure. The try/except is free in CPython 3.11+ when nothing is raised.

_FACTORY_SOURCE = """
def make(impl, ctx):
    def call({params}):
        try:
            result = impl(ctx{args})
        except WasiError as exc:
            return int(exc.errno)
        except OSError as exc:
            return int(errno_from_oserror(exc))
        if result.__class__ is int:
            return result
        return _settle(result)
    return call
"""

_FACTORIES: dict[tuple[Optional[int], ...], Callable[[Callable, Any], Callable[..., Any]]] = {}


def _caller_factory(masks: tuple[Optional[int], ...]) -> Callable[[Callable, Any], Callable[..., Any]]:
    """``make(impl, ctx)`` building the engine-facing callable for parameters
    with ``masks`` (``None``: passed as is, signed)."""
    factory = _FACTORIES.get(masks)
    if factory is None:
        names = [f"a{i}" for i in range(len(masks))]
        args = "".join(f", {n}" if m is None else f", {n} & {m:#x}" for n, m in zip(names, masks))
        namespace = {"WasiError": WasiError, "errno_from_oserror": errno_from_oserror, "_settle": _settle}
        exec(_FACTORY_SOURCE.format(params=", ".join(names), args=args), namespace)  # noqa: S102 - fixed template
        factory = _FACTORIES[masks] = namespace["make"]
    return factory


def _settle(result: Any) -> Any:
    """A non-``int`` outcome of a WASI function: an ``int`` subclass (an
    :class:`Errno`) or None as a plain int, an awaitable wrapped to translate
    its outcome when awaited."""
    if isinstance(result, int):
        return int(result)
    if result is None:
        return int(Errno.SUCCESS)
    return Later(_finish, result, None)


def _traced_call(impl: Callable, ctx: Any, masks: tuple[Optional[int], ...], name: str,
                 names: tuple[str, ...], trace: Trace) -> Callable[..., Any]:
    def call(*args: int) -> Any:
        values = [a if m is None else a & m for a, m in zip(args, masks)]
        trace_args = dict(zip(names, values))
        try:
            result = _errno_of(impl, ctx, values)
        except BaseException:
            trace(name, trace_args, None)
            raise
        if isinstance(result, int):
            trace(name, trace_args, result)
            return result
        return Later(_finish, result, lambda r: trace(name, trace_args, r))

    return call


def _errno_of(impl: Callable, ctx: Any, values: list) -> Any:
    """Run ``impl``; an int result is returned as a plain int, an awaitable as is."""
    try:
        result = impl(ctx, *values)
    except WasiError as exc:
        return int(exc.errno)
    except OSError as exc:
        return int(errno_from_oserror(exc))
    if isinstance(result, int):
        return int(result)
    if result is None:
        return int(Errno.SUCCESS)
    return result


async def _finish(awaitable: Awaitable, report: Optional[Callable[[int], None]]) -> int:
    """Await a blocking host call and translate its outcome like :func:`bind`."""
    try:
        result = await awaitable
        errno = int(Errno.SUCCESS if result is None else result)
    except WasiError as exc:
        errno = int(exc.errno)
    except OSError as exc:
        errno = int(errno_from_oserror(exc))
    if report is not None:
        report(errno)
    return errno


def format_call(name: str, args: dict, result: Optional[int]) -> str:
    """Render one traced call, strace-style:

        >>> format_call("fd_close", {"fd": 3}, 0)
        'fd_close(fd=3) -> SUCCESS'
    """
    function = REGISTRY.get(name)
    kinds = dict(function.params) if function else {}
    shown = ", ".join(f"{k}={v:#x}" if kinds.get(k) is PTR else f"{k}={v}" for k, v in args.items())
    if result is None:
        outcome = "(no return)"
    else:
        try:
            outcome = Errno(result).name
        except ValueError:
            outcome = str(result)
    return f"{name}({shown}) -> {outcome}"
