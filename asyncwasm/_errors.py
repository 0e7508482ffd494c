"""The exception hierarchy, in one place.

    WasmError
    ├── ModuleError          the bytes are not a valid module
    │   ├── MalformedError   binary format broken (decode)
    │   └── ValidationError  type rules broken (validate)
    ├── LinkError            instantiation failed before any code ran
    ├── Trap                 the guest trapped (kind is the spec's message)
    │   └── FuelExhausted    the fuel budget ran out
    ├── Exit                 the guest called proc_exit(code)
    └── Interrupted          the run was cancelled or timed out; the instance is unusable
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence


class WasmError(Exception):
    """Base class of every error asyncwasm raises on purpose."""


class ModuleError(WasmError):
    """The module bytes were rejected. ``offset`` is the byte offset of the
    problem, ``func`` the function index when inside a body (else None), and
    ``rule`` the message without location (it starts with the spec's wording)."""

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
    before any guest code ran."""


@dataclass(frozen=True)
class Frame:
    """One guest frame of a trap's backtrace."""

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
    first. Host functions may raise ``Trap("message")`` to trap the guest."""

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
    """The instance's fuel budget ran out. ``consumed`` is the fuel used."""

    def __init__(self, consumed: int, frames: Sequence[Frame] = ()):
        self.consumed = consumed
        super().__init__("fuel exhausted", frames)


class Exit(WasmError):
    """The guest asked to exit with ``code`` (WASI ``proc_exit``)."""

    def __init__(self, code: int):
        self.code = code
        super().__init__(f"guest exited with code {code}")


class Interrupted(WasmError):
    """The call was stopped mid-run, or its instance was: cancelled
    (``Execution.cancel()``, a trio cancel scope around a handle) or past
    ``Limits.timeout`` (then ``timeout`` is that limit in seconds, else
    None). The instance refuses further calls: instantiate the module again."""

    def __init__(self, message: str = "the call was interrupted", *, timeout: Optional[float] = None):
        self.timeout = timeout
        super().__init__(message)
