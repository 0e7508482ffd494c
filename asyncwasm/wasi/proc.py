"""WASI ``proc_exit`` and ``proc_raise``.

Spec: https://github.com/WebAssembly/WASI/blob/main/legacy/preview1/docs.md#proc_exit

``proc_exit(code)`` ends the run by raising :class:`asyncwasm.Exit` with the
code as the unsigned ``exitcode`` (u32) the witx declares.

``proc_raise`` returns ``NOSYS`` (``INVAL`` for a number that is no
``$signal``): a sandboxed guest has no process to signal, and an errno lets
``raise()`` fail the POSIX way instead of killing the run unexpectedly. This
matches wazero; WASI removed the function after preview1, and wasi-libc no
longer imports it (``abort()`` traps with ``unreachable``).
"""

from __future__ import annotations

from typing import Any, Awaitable, NoReturn, Union

from .._errors import Exit
from .abi import Errno, Signal, WasiError
from .decl import U32, host_function

ErrnoResult = Union[int, Awaitable[int]]


@host_function(results=(), rval=U32)
def proc_exit(ctx: Any, rval: int) -> NoReturn:
    """End the run: raises :class:`asyncwasm.Exit` (``exit.code == rval``).
    Returns nothing to the guest; writes nothing."""
    raise Exit(rval)


@host_function(sig=U32)
def proc_raise(ctx: Any, sig: int) -> ErrnoResult:
    """Always fails: NOSYS for a valid ``$signal``, INVAL otherwise."""
    if sig > max(Signal):
        raise WasiError(Errno.INVAL)
    return Errno.NOSYS
