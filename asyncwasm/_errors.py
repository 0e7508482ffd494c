"""The exception hierarchy, in one place.

    WasmError
    ├── ModuleError          the bytes are not a valid module
    │   ├── MalformedError   binary format broken (decode)
    │   └── ValidationError  type rules broken (validate)
    ├── LinkError            instantiation failed before any code ran
    ├── Trap                 the guest trapped (kind is the spec's message)
    │   └── FuelExhausted    the fuel budget ran out
    ├── WasmException        a Wasm exception nothing in the guest caught (tag, values)
    ├── Exit                 the guest called proc_exit(code)
    └── Interrupted          the run was cancelled or timed out; the instance is unusable
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from ._engine import Tag


class WasmError(Exception):
    """Base class of every error asyncwasm raises on purpose.

        >>> try:
        ...     instance.exports["run"]()
        ... except asyncwasm.Trap as exc:       # the guest failed: exc.kind, exc.frames
        ...     ...
        ... except asyncwasm.WasmError as exc:  # any other asyncwasm error
        ...     ...
    """


class ModuleError(WasmError):
    """The module bytes were rejected. ``offset`` is the byte offset of the
    problem, ``func`` the function index when inside a body (else None), and
    ``rule`` the message without location (it starts with the spec's wording).

        >>> try:
        ...     asyncwasm.Module(b"\\0asm\\1\\0\\0\\0\\x0a")
        ... except asyncwasm.ModuleError as exc:
        ...     print(type(exc).__name__, exc.offset, exc.rule)
        MalformedError 9 unexpected end of section or function
    """

    kind = "module"

    def __init__(self, rule: str, offset: int, func: Optional[int] = None):
        self.rule = rule
        self.offset = offset
        self.func = func
        where = f" at offset {offset:#x}"
        if func is not None:
            where += f" (function {func})"
        head, sep, tail = rule.partition(": ")
        super().__init__(f"{head}{where}{sep}{tail}")


class MalformedError(ModuleError):
    """The binary format is broken (the spec's ``assert_malformed``)."""

    kind = "malformed"


class ValidationError(ModuleError):
    """The module decodes but breaks a typing rule (``assert_invalid``)."""

    kind = "invalid"


class LinkError(WasmError):
    """An import is missing or has the wrong type, or instantiation failed
    before any guest code ran.

        >>> asyncwasm.Linker().instantiate(module_importing_env_log)
        Traceback (most recent call last):
        asyncwasm.LinkError: unknown import: "env"."log" (func [i32] -> []) is not defined
    """


@dataclass(frozen=True)
class Frame:
    """One guest frame of a trap's backtrace (``Trap.frames``, innermost
    first): function index, its name from the ``name`` section (or None),
    and the byte offset in the module of the instruction (or None).

        >>> str(Frame(3, "fib", 0x4A))
        'fib at offset 0x4a'
    """

    func_index: int
    func_name: Optional[str]
    module_offset: Optional[int]

    def __str__(self) -> str:
        name = self.func_name or f"<func {self.func_index}>"
        at = "" if self.module_offset is None else f" at offset {self.module_offset:#x}"
        return f"{name}{at}"


class Trap(WasmError):
    """The guest trapped. ``kind`` is the spec's trap message (for example
    ``"integer divide by zero"``); ``frames`` is the guest backtrace, innermost
    first. Host functions may raise ``Trap("message")`` to trap the guest.

        >>> def check(n: int) -> None:
        ...     if n < 0:
        ...         raise asyncwasm.Trap("negative size")     # traps the calling guest
        >>> try:
        ...     instance.exports["div"](1, 0)
        ... except asyncwasm.Trap as exc:
        ...     print(exc.kind, exc.frames[0].func_name)
        integer divide by zero div
    """

    def __init__(self, kind: str, frames: Sequence[Frame] = ()):
        self.kind = kind
        self.frames = tuple(frames)
        text = kind
        if self.frames:
            text += " in " + str(self.frames[0])
            if len(self.frames) > 1:
                text += "\nguest backtrace:\n" + "\n".join(f"  {i}: {f}" for i, f in enumerate(self.frames))
        super().__init__(text)


class FuelExhausted(Trap):
    """The instance's fuel budget (``Limits.fuel``) ran out. ``consumed``
    is the fuel used. The instance stays usable, but its budget is spent.

        >>> instance = linker.instantiate(module, limits=Limits(fuel=1000))
        >>> instance.exports["spin"]()
        Traceback (most recent call last):
        asyncwasm.FuelExhausted: fuel exhausted
    """

    def __init__(self, consumed: int, frames: Sequence[Frame] = ()):
        self.consumed = consumed
        super().__init__("fuel exhausted", frames)


class WasmException(WasmError):
    """A WebAssembly exception (Wasm 3.0 exception handling): an instance of
    ``tag`` (an :class:`asyncwasm.Tag`) carrying ``values``, its payload, as
    Python values converted by the tag's parameter types.

    A call raises it when the guest throws and nothing in the guest catches
    the exception; the instance stays usable (an outcome, like a trap). A
    host function raises it to throw into the guest, where ``try_table`` /
    ``catch`` clauses of the same tag catch it. Raising one that came from
    a guest rethrows that very exception (what ``catch_ref`` and
    ``throw_ref`` see is the same reference), and it is also how an
    ``exnref`` value looks in Python.

        >>> tag = asyncwasm.Tag(FuncType([I32], []))
        >>> linker.define("env", "error", tag)               # the guest imports it
        >>> def check(n: int) -> None:
        ...     if n < 0:
        ...         raise asyncwasm.WasmException(tag, [n])   # the guest may catch it
        >>> try:
        ...     instance.exports["run"]()
        ... except asyncwasm.WasmException as exc:
        ...     if exc.tag is tag:
        ...         print("uncaught error", exc.values[0])
    """

    #: The engine's exception object this stands for (None until it is thrown).
    _exn: Any = None

    def __init__(self, tag: "Tag", values: Sequence[Any] = ()):
        self.tag = tag
        self.values = tuple(values)
        super().__init__(f"uncaught Wasm exception of {tag!r} with values {self.values!r}")

    def __reduce__(self) -> Any:
        return (type(self), (self.tag, self.values))


class Exit(WasmError):
    """The guest asked to exit with ``code`` (WASI ``proc_exit``).

        >>> try:
        ...     await instance.exports["_start"].call_async()
        ... except asyncwasm.Exit as exc:
        ...     status = exc.code
    """

    def __init__(self, code: int):
        self.code = code
        super().__init__(f"guest exited with code {code}")


class Interrupted(WasmError):
    """The call was stopped mid-run, or its instance was: cancelled
    (``Execution.cancel()``, a trio cancel scope around a handle) or past
    ``Limits.timeout`` (then ``timeout`` is that limit in seconds, else
    None). The instance refuses further calls: instantiate the module again.

        >>> instance = linker.instantiate(module, limits=Limits(timeout=0.5))
        >>> try:
        ...     instance.exports["spin"]()
        ... except asyncwasm.Interrupted as exc:
        ...     print(exc.timeout, instance.interrupted)
        0.5 True
    """

    def __init__(self, message: str = "the call was interrupted", *, timeout: Optional[float] = None):
        self.timeout = timeout
        super().__init__(message)
